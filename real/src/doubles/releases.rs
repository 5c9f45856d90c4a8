//! A local double of the GitHub REST API's releases, the store lifeboat publishes its
//! signed snapshot bundles to.
//!
//! It exists so that the real [`crate::clients::ReleasesClient`] (and a cold restore that
//! reads the snapshot chain back) can be exercised without a repository or a token. It
//! keeps releases and their assets in memory, for any `owner/repo`, and answers the
//! documented JSON (`docs.github.com/rest/releases`):
//!
//! - `POST /repos/{o}/{r}/releases` (`tag_name` required) → 201; an existing tag → 422
//!   `Validation Failed` with `code: already_exists` on `tag_name`;
//! - `GET /repos/{o}/{r}/releases?per_page=&page=` (newest first, with a `Link` header),
//!   `GET …/releases/latest` (newest non-draft, non-prerelease), `GET …/releases/tags/{tag}`,
//!   `GET …/releases/{id}`, `DELETE …/releases/{id}`;
//! - `POST /repos/{o}/{r}/releases/{id}/assets?name=N` with the raw bytes (on real GitHub
//!   this goes to `uploads.github.com`; the double serves uploads on its one address) →
//!   201; an existing name → 422 `already_exists`; `GET …/releases/{id}/assets`;
//! - `GET /repos/{o}/{r}/releases/assets/{id}`: the asset's JSON, or with
//!   `Accept: application/octet-stream` a 302 to its `browser_download_url`
//!   (`/{o}/{r}/releases/download/{tag}/{name}`, which needs no token, as on github.com);
//!   `DELETE …/releases/assets/{id}`.
//!
//! Every API call needs `Authorization: Bearer <token>` (or `token <token>`): anything
//! else is 401 `Bad credentials`. Like GitHub, it refuses requests without a `User-Agent`
//! (403). URLs in answers are built from the request's `Host` header.

use super::ServerTask;
use super::{
    bearer, iso8601, parse_query, path_segments, query_get, spawn_router, unix_now, Guarded,
};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The token `lifeboat serve releases` uses when none is given. It is not a secret: it
/// only opens this double.
pub const TEST_TOKEN: &str = "ghp_lifeboatDoubleTestTokenNotASecret000";

/// The largest asset the double accepts, GitHub's documented limit per file (2 GiB).
pub const MAX_ASSET_BYTES: usize = 2 * 1024 * 1024 * 1024;

const DOCS: &str = "https://docs.github.com/rest/releases";

#[derive(Clone)]
struct Asset {
    id: u64,
    name: String,
    label: Option<String>,
    content_type: String,
    bytes: Bytes,
    created: u64,
    downloads: u64,
}

#[derive(Clone)]
struct Release {
    id: u64,
    owner: String,
    repo: String,
    tag_name: String,
    name: Option<String>,
    body: Option<String>,
    target_commitish: String,
    draft: bool,
    prerelease: bool,
    created: u64,
    assets: Vec<Asset>,
}

struct Inner {
    /// Oldest first; "newest" means last created.
    releases: Vec<Release>,
    next_release_id: u64,
    next_asset_id: u64,
}

type Shared = Guarded<Inner>;

/// A GitHub Releases double: a cheap handle to its state, shared with the server task.
#[derive(Clone)]
pub struct ReleasesDouble {
    shared: Arc<Shared>,
}

impl fmt::Debug for ReleasesDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasesDouble")
            .field("releases", &self.shared.lock().releases.len())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ReleasesDouble {
    /// An empty store that accepts this token.
    pub fn new(token: impl Into<String>) -> ReleasesDouble {
        ReleasesDouble {
            shared: Arc::new(Guarded::new(
                token.into(),
                Inner {
                    releases: Vec::new(),
                    next_release_id: 180_000_001,
                    next_asset_id: 210_000_001,
                },
            )),
        }
    }

    /// Serves the double on `addr` (`127.0.0.1:0` picks a free port); returns the bound
    /// address and the server task.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<(SocketAddr, ServerTask)> {
        spawn_router(addr, self.router()).await
    }

    /// The double's routes, for embedding in another server.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_ASSET_BYTES))
            .with_state(self.shared.clone())
    }

    /// The tags of `owner/repo`'s releases, oldest first.
    pub fn tags(&self, owner: &str, repo: &str) -> Vec<String> {
        self.shared
            .lock()
            .releases
            .iter()
            .filter(|r| r.owner == owner && r.repo == repo)
            .map(|r| r.tag_name.clone())
            .collect()
    }
}

/// Starts a GitHub Releases double for `token` on `addr`; returns the bound address and
/// the server task. Use [`ReleasesDouble`] to keep a handle on its state.
pub async fn serve_releases(
    addr: SocketAddr,
    token: String,
) -> anyhow::Result<(SocketAddr, ServerTask)> {
    ReleasesDouble::new(token).serve(addr).await
}

fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({
            "message": message,
            "documentation_url": DOCS,
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

fn not_found() -> Response {
    gh_error(StatusCode::NOT_FOUND, "Not Found")
}

fn validation_failed(resource: &str, code: &str, field: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": code, "field": field}],
            "documentation_url": DOCS,
            "status": "422",
        })),
    )
        .into_response()
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `http://<Host>` of the request: the base every URL in an answer starts with.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn asset_json(base: &str, r: &Release, a: &Asset) -> Value {
    json!({
        "url": format!("{base}/repos/{}/{}/releases/assets/{}", r.owner, r.repo, a.id),
        "browser_download_url":
            format!("{base}/{}/{}/releases/download/{}/{}", r.owner, r.repo, r.tag_name, a.name),
        "id": a.id,
        "node_id": format!("RA_double{}", a.id),
        "name": a.name,
        "label": a.label,
        "state": "uploaded",
        "content_type": a.content_type,
        "size": a.bytes.len(),
        "download_count": a.downloads,
        "created_at": iso8601(a.created),
        "updated_at": iso8601(a.created),
        "uploader": {"login": "lifeboat-double", "id": 1, "type": "User"},
    })
}

fn release_json(base: &str, r: &Release) -> Value {
    let api = format!("{base}/repos/{}/{}/releases/{}", r.owner, r.repo, r.id);
    json!({
        "url": api,
        "html_url": format!("{base}/{}/{}/releases/tag/{}", r.owner, r.repo, r.tag_name),
        "assets_url": format!("{api}/assets"),
        "upload_url": format!("{api}/assets{{?name,label}}"),
        "tarball_url": null,
        "zipball_url": null,
        "id": r.id,
        "node_id": format!("RE_double{}", r.id),
        "tag_name": r.tag_name,
        "target_commitish": r.target_commitish,
        "name": r.name,
        "body": r.body,
        "draft": r.draft,
        "prerelease": r.prerelease,
        "created_at": iso8601(r.created),
        "published_at": if r.draft { Value::Null } else { Value::String(iso8601(r.created)) },
        "author": {"login": "lifeboat-double", "id": 1, "type": "User"},
        "assets": r.assets.iter().map(|a| asset_json(base, r, a)).collect::<Vec<_>>(),
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seg = path_segments(uri.path());
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let query = parse_query(uri.query().unwrap_or(""));
    let base = base_url(&headers);

    // The browser download URL, which (for the repositories lifeboat uses) needs no token.
    if let [owner, repo, "releases", "download", tag, name] = seg.as_slice() {
        if method != Method::GET {
            return not_found();
        }
        return download(&shared, owner, repo, tag, name);
    }
    if headers.get(header::USER_AGENT).is_none() {
        return gh_error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header",
        );
    }
    if bearer(&headers, &["Bearer", "token"]) != Some(shared.token.as_str()) {
        return gh_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let ["repos", owner, repo, "releases", rest @ ..] = seg.as_slice() else {
        return not_found();
    };
    let (owner, repo) = (*owner, *repo);
    match (&method, rest) {
        (&Method::POST, []) => create_release(&shared, &base, owner, repo, &body),
        (&Method::GET, []) => list_releases(&shared, &base, owner, repo, &query),
        (&Method::GET, ["latest"]) => {
            let g = shared.lock();
            g.releases
                .iter()
                .rev()
                .find(|r| r.owner == owner && r.repo == repo && !r.draft && !r.prerelease)
                .map_or_else(not_found, |r| Json(release_json(&base, r)).into_response())
        }
        (&Method::GET, ["tags", tag]) => {
            let g = shared.lock();
            g.releases
                .iter()
                .find(|r| r.owner == owner && r.repo == repo && r.tag_name == *tag)
                .map_or_else(not_found, |r| Json(release_json(&base, r)).into_response())
        }
        (&Method::GET, ["assets", id]) => {
            let wants_bytes = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/octet-stream"));
            let g = shared.lock();
            match find_asset(&g, owner, repo, id) {
                Some((r, a)) if wants_bytes => {
                    let json = asset_json(&base, r, a);
                    let location = json["browser_download_url"].as_str().unwrap_or_default();
                    match HeaderValue::from_str(location) {
                        Ok(loc) => (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response(),
                        Err(_) => gh_error(StatusCode::INTERNAL_SERVER_ERROR, "bad location"),
                    }
                }
                Some((r, a)) => Json(asset_json(&base, r, a)).into_response(),
                None => not_found(),
            }
        }
        (&Method::DELETE, ["assets", id]) => {
            let mut g = shared.lock();
            let id: Option<u64> = id.parse().ok();
            for r in g
                .releases
                .iter_mut()
                .filter(|r| r.owner == owner && r.repo == repo)
            {
                if let Some(pos) = r.assets.iter().position(|a| Some(a.id) == id) {
                    r.assets.remove(pos);
                    return StatusCode::NO_CONTENT.into_response();
                }
            }
            not_found()
        }
        (&Method::GET, [id]) => {
            let g = shared.lock();
            find_release(&g.releases, owner, repo, id).map_or_else(not_found, |i| {
                Json(release_json(&base, &g.releases[i])).into_response()
            })
        }
        (&Method::DELETE, [id]) => {
            let mut g = shared.lock();
            match find_release(&g.releases, owner, repo, id) {
                Some(i) => {
                    g.releases.remove(i);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => not_found(),
            }
        }
        (&Method::POST, [id, "assets"]) => {
            upload_asset(&shared, &base, owner, repo, id, &query, &headers, body)
        }
        (&Method::GET, [id, "assets"]) => {
            let g = shared.lock();
            match find_release(&g.releases, owner, repo, id) {
                Some(i) => {
                    let r = &g.releases[i];
                    let list: Vec<Value> =
                        r.assets.iter().map(|a| asset_json(&base, r, a)).collect();
                    Json(Value::Array(list)).into_response()
                }
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn find_release(releases: &[Release], owner: &str, repo: &str, id: &str) -> Option<usize> {
    let id: u64 = id.parse().ok()?;
    releases
        .iter()
        .position(|r| r.owner == owner && r.repo == repo && r.id == id)
}

fn find_asset<'a>(
    g: &'a Inner,
    owner: &str,
    repo: &str,
    id: &str,
) -> Option<(&'a Release, &'a Asset)> {
    let id: u64 = id.parse().ok()?;
    g.releases
        .iter()
        .filter(|r| r.owner == owner && r.repo == repo)
        .find_map(|r| r.assets.iter().find(|a| a.id == id).map(|a| (r, a)))
}

fn create_release(shared: &Shared, base: &str, owner: &str, repo: &str, body: &[u8]) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return gh_error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let tag_name = match req.get("tag_name") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) => return validation_failed("Release", "invalid", "tag_name"),
        None | Some(Value::Null) => {
            return validation_failed("Release", "missing_field", "tag_name")
        }
        Some(_) => return validation_failed("Release", "invalid", "tag_name"),
    };
    // Each check fails with the name of the offending field.
    let text = |key: &'static str| -> Result<Option<String>, &'static str> {
        match req.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(key),
        }
    };
    let flag = |key: &'static str| -> Result<bool, &'static str> {
        match req.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(key),
        }
    };
    let fields = (|| {
        Ok::<_, &'static str>((
            text("name")?,
            text("body")?,
            text("target_commitish")?,
            flag("draft")?,
            flag("prerelease")?,
        ))
    })();
    let (name, notes, target, draft, prerelease) = match fields {
        Ok(f) => f,
        Err(field) => return validation_failed("Release", "invalid", field),
    };
    let mut g = shared.lock();
    if g.releases
        .iter()
        .any(|r| r.owner == owner && r.repo == repo && r.tag_name == tag_name)
    {
        return validation_failed("Release", "already_exists", "tag_name");
    }
    let id = g.next_release_id;
    g.next_release_id += 1;
    let release = Release {
        id,
        owner: owner.to_string(),
        repo: repo.to_string(),
        tag_name,
        name,
        body: notes,
        target_commitish: target.unwrap_or_else(|| "main".into()),
        draft,
        prerelease,
        created: unix_now(),
        assets: Vec::new(),
    };
    let json = release_json(base, &release);
    g.releases.push(release);
    created(json)
}

fn list_releases(
    shared: &Shared,
    base: &str,
    owner: &str,
    repo: &str,
    query: &[(String, String)],
) -> Response {
    let number = |key: &str, default: usize| {
        query_get(query, key)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_page = number("per_page", 30).clamp(1, 100);
    let page = number("page", 1).max(1);
    let g = shared.lock();
    let all: Vec<&Release> = g
        .releases
        .iter()
        .rev()
        .filter(|r| r.owner == owner && r.repo == repo)
        .collect();
    let list: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| release_json(base, r))
        .collect();
    let last = all.len().div_ceil(per_page).max(1);
    let link = |p: usize, rel: &str| {
        format!(
            "<{base}/repos/{owner}/{repo}/releases?per_page={per_page}&page={p}>; rel=\"{rel}\""
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    let mut resp = Json(Value::Array(list)).into_response();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn upload_asset(
    shared: &Shared,
    base: &str,
    owner: &str,
    repo: &str,
    id: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(name) = query_get(query, "name").filter(|n| !n.is_empty()) else {
        return validation_failed("ReleaseAsset", "missing_field", "name");
    };
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return validation_failed("ReleaseAsset", "missing_field", "content_type");
    };
    let mut g = shared.lock();
    let asset_id = g.next_asset_id;
    let Some(i) = find_release(&g.releases, owner, repo, id) else {
        return not_found();
    };
    if g.releases[i].assets.iter().any(|a| a.name == name) {
        return validation_failed("ReleaseAsset", "already_exists", "name");
    }
    g.next_asset_id += 1;
    let asset = Asset {
        id: asset_id,
        name: name.to_string(),
        label: query_get(query, "label").map(str::to_string),
        content_type: content_type.to_string(),
        bytes: body,
        created: unix_now(),
        downloads: 0,
    };
    let json = asset_json(base, &g.releases[i], &asset);
    g.releases[i].assets.push(asset);
    created(json)
}

fn download(shared: &Shared, owner: &str, repo: &str, tag: &str, name: &str) -> Response {
    let mut g = shared.lock();
    let asset = g
        .releases
        .iter_mut()
        .find(|r| r.owner == owner && r.repo == repo && r.tag_name == tag)
        .and_then(|r| r.assets.iter_mut().find(|a| a.name == name));
    match asset {
        Some(a) => {
            a.downloads += 1;
            let content_type = HeaderValue::from_str(&a.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                a.bytes.clone(),
            )
                .into_response()
        }
        None => not_found(),
    }
}
