//! The GitHub Releases client: the snapshot store's calls.
//!
//! It exists because lifeboat publishes each signed snapshot bundle as a release asset
//! and a cold restore reads them back: create a release for a tag, upload its assets,
//! find a release by tag or the latest one, list them, and download an asset's bytes.
//! API calls go to the API base (`https://api.github.com`), uploads to the uploads base
//! (`https://uploads.github.com`); a double serves both on one address, so tests pass the
//! same URL twice. Requests carry `Authorization: Bearer`, the documented `Accept` and
//! `X-GitHub-Api-Version` headers and a `User-Agent`.

use super::{excerpt, http_client, ClientError, CALL_TIMEOUT};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt;
use std::time::Duration;

const SERVICE: &str = "GitHub Releases";

/// The real REST API's base URL.
pub const OFFICIAL_API: &str = "https://api.github.com";

/// The real upload endpoint's base URL.
pub const OFFICIAL_UPLOADS: &str = "https://uploads.github.com";

/// The REST API version the client asks for.
pub const API_VERSION: &str = "2022-11-28";

/// How long an upload or a download may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// A release asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Its id.
    pub id: u64,
    /// Its file name.
    pub name: String,
    /// Its label, if any.
    #[serde(default)]
    pub label: Option<String>,
    /// Its content type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// `uploaded` once complete.
    pub state: String,
    /// Where a browser downloads it.
    pub browser_download_url: String,
}

/// A release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its id.
    pub id: u64,
    /// Its tag.
    pub tag_name: String,
    /// Its title, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Its notes, if any.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether it is a draft.
    pub draft: bool,
    /// Whether it is a prerelease.
    pub prerelease: bool,
    /// When it was created (ISO 8601).
    #[serde(default)]
    pub created_at: Option<String>,
    /// The upload URL template (`…/assets{?name,label}`).
    pub upload_url: String,
    /// Its assets.
    #[serde(default)]
    pub assets: Vec<Asset>,
}

impl Release {
    /// The asset with this file name, if the release has one.
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.name == name)
    }
}

/// GitHub's error body.
#[derive(Deserialize)]
struct GithubError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<GithubFieldError>,
}

#[derive(Deserialize)]
struct GithubFieldError {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// A client for one repository's releases.
#[derive(Clone)]
pub struct ReleasesClient {
    api: Url,
    uploads: Url,
    owner: String,
    repo: String,
    token: String,
    http: reqwest::Client,
}

impl fmt::Debug for ReleasesClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasesClient")
            .field("api", &self.api.as_str())
            .field("uploads", &self.uploads.as_str())
            .field("repository", &format!("{}/{}", self.owner, self.repo))
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ReleasesClient {
    /// A client for `owner/repo`, calling the API at `api` and uploading to `uploads`.
    pub fn new(
        api: Url,
        uploads: Url,
        owner: impl Into<String>,
        repo: impl Into<String>,
        token: impl Into<String>,
    ) -> Result<ReleasesClient, ClientError> {
        for base in [&api, &uploads] {
            if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
                return Err(ClientError::Setup {
                    service: SERVICE,
                    call: "new",
                    detail: format!("`{base}` is not an http(s) base URL"),
                });
            }
        }
        let (owner, repo) = (owner.into(), repo.into());
        if owner.is_empty() || repo.is_empty() {
            return Err(ClientError::Setup {
                service: SERVICE,
                call: "new",
                detail: "the repository needs an owner and a name".into(),
            });
        }
        Ok(ReleasesClient {
            api,
            uploads,
            owner,
            repo,
            token: token.into(),
            http: http_client(SERVICE)?,
        })
    }

    /// A client for `owner/repo` on github.com.
    pub fn official(
        owner: impl Into<String>,
        repo: impl Into<String>,
        token: impl Into<String>,
    ) -> Result<ReleasesClient, ClientError> {
        let api = Url::parse(OFFICIAL_API).expect("the official API URL parses");
        let uploads = Url::parse(OFFICIAL_UPLOADS).expect("the official uploads URL parses");
        ReleasesClient::new(api, uploads, owner, repo, token)
    }

    /// `<base>/repos/<owner>/<repo>/releases/<rest…>`, each segment escaped.
    fn url(&self, base: &Url, rest: &[&str]) -> Url {
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("checked in new: a base URL")
            .pop_if_empty()
            .extend(["repos", &self.owner, &self.repo, "releases"])
            .extend(rest);
        url
    }

    fn request(&self, method: Method, url: Url, timeout: Duration) -> RequestBuilder {
        self.request_accepting(method, url, timeout, "application/vnd.github+json")
    }

    fn request_accepting(
        &self,
        method: Method,
        url: Url,
        timeout: Duration,
        accept: &str,
    ) -> RequestBuilder {
        self.http
            .request(method, url)
            .timeout(timeout)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, accept)
            .header("X-GitHub-Api-Version", API_VERSION)
    }

    /// Sends a request; an error status becomes a [`ClientError::Status`].
    async fn send(
        &self,
        call: &'static str,
        req: RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::transport(SERVICE, call, e))?;
        let status = resp.status().as_u16();
        let body: Vec<u8> = resp
            .bytes()
            .await
            .map_err(|e| ClientError::transport(SERVICE, call, e))?
            .into();
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let (code, message) = match serde_json::from_slice::<GithubError>(&body) {
            Ok(err) => {
                let first = err.errors.first();
                let code = first.and_then(|e| e.code.clone());
                let mut message = err.message;
                if let Some(e) = first {
                    message.push_str(&format!(
                        ": {}.{} {}",
                        e.resource.as_deref().unwrap_or("?"),
                        e.field.as_deref().unwrap_or("?"),
                        e.code.as_deref().unwrap_or("?")
                    ));
                }
                (code, message)
            }
            Err(_) => (None, excerpt(&String::from_utf8_lossy(&body), 200)),
        };
        Err(ClientError::Status {
            service: SERVICE,
            call,
            status,
            code,
            message,
            retry_after: None,
        }
        .redact(&self.token))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        req: RequestBuilder,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(call, req).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
            service: SERVICE,
            call,
            status: Some(status),
            detail: format!("not the documented JSON: {e}"),
        })
    }

    /// Turns a 404 into `None`.
    fn found<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a published release for `tag` (GitHub creates the tag on the default
    /// branch if it does not exist). An existing release for the tag is a 422 with code
    /// `already_exists`.
    pub async fn create_release(
        &self,
        tag: &str,
        name: &str,
        body: &str,
    ) -> Result<Release, ClientError> {
        let req = self
            .request(Method::POST, self.url(&self.api, &[]), CALL_TIMEOUT)
            .json(&json!({
                "tag_name": tag,
                "name": name,
                "body": body,
                "draft": false,
                "prerelease": false,
            }));
        self.json("create release", req).await
    }

    /// Uploads `bytes` as the asset `name` of release `release_id`. An existing asset of
    /// that name is a 422 with code `already_exists`.
    pub async fn upload_asset(
        &self,
        release_id: u64,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Asset, ClientError> {
        let mut url = self.url(&self.uploads, &[&release_id.to_string(), "assets"]);
        url.query_pairs_mut().append_pair("name", name);
        let req = self
            .request(Method::POST, url, TRANSFER_TIMEOUT)
            .header(CONTENT_TYPE, content_type)
            .body(bytes);
        self.json("upload asset", req).await
    }

    /// The release for `tag`, or `None` if there is none.
    pub async fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, ClientError> {
        let req = self.request(
            Method::GET,
            self.url(&self.api, &["tags", tag]),
            CALL_TIMEOUT,
        );
        Self::found(self.json("get release by tag", req).await)
    }

    /// The latest published release (not a draft, not a prerelease), or `None`.
    pub async fn latest(&self) -> Result<Option<Release>, ClientError> {
        let req = self.request(Method::GET, self.url(&self.api, &["latest"]), CALL_TIMEOUT);
        Self::found(self.json("get latest release", req).await)
    }

    /// One page of releases, newest first (`per_page` at most 100, pages from 1).
    pub async fn list_releases(
        &self,
        per_page: u32,
        page: u32,
    ) -> Result<Vec<Release>, ClientError> {
        let mut url = self.url(&self.api, &[]);
        url.query_pairs_mut()
            .append_pair("per_page", &per_page.to_string())
            .append_pair("page", &page.to_string());
        let req = self.request(Method::GET, url, CALL_TIMEOUT);
        self.json("list releases", req).await
    }

    /// The bytes of asset `asset_id`. GitHub answers with a redirect to the file, which
    /// the client follows (dropping the token if the redirect leaves the host).
    pub async fn download_asset(&self, asset_id: u64) -> Result<Vec<u8>, ClientError> {
        let req = self.request_accepting(
            Method::GET,
            self.url(&self.api, &["assets", &asset_id.to_string()]),
            TRANSFER_TIMEOUT,
            "application/octet-stream",
        );
        let (_, body) = self.send("download asset", req).await?;
        Ok(body)
    }
}
