//! The Hetzner Cloud client: renting and returning the drill's machines.
//!
//! It exists so that the Hetzner backend provisions through one small interface (create a
//! server, read it, list the drill's servers by label, delete them, look up a price, make
//! sure the SSH key is there) built on the `hcloud` crate, the generated client for
//! Hetzner Cloud API v1. Its base URL is configurable (`hcloud`'s base path mapping), so
//! the same code runs against [`crate::doubles::hetzner`] in tests. The API token is sent
//! as a bearer token and kept out of `Debug` (which `hcloud`'s own configuration would
//! print) and out of errors.

use super::{excerpt, http_client, ClientError};
use hcloud::apis::configuration::Configuration;
use hcloud::apis::{server_types_api, servers_api, ssh_keys_api, Error as HcloudError};
use hcloud::models;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

const SERVICE: &str = "Hetzner Cloud";

/// The real API's base URL, which `hcloud` is generated for.
pub const OFFICIAL_BASE: &str = "https://api.hetzner.cloud/v1";

/// The most pages a listing reads before giving up (50 entries a page).
const MAX_PAGES: i64 = 100;

/// A server, as lifeboat needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `initializing`, `starting`, `running`, `stopping`, `off`, `deleting`, …
    pub status: String,
    /// Its public IPv4 address, if it has one.
    pub ip: Option<IpAddr>,
    /// Its server type's name (`cpx11`, …).
    pub server_type: String,
    /// Its location's name (`fsn1`, …).
    pub location: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl ServerInfo {
    fn from_model(s: &models::Server) -> ServerInfo {
        ServerInfo {
            id: s.id,
            name: s.name.clone(),
            status: serde_json::to_value(s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into()),
            ip: s.public_net.ipv4.as_ref().and_then(|v4| v4.ip.parse().ok()),
            server_type: s.server_type.name.clone(),
            location: s.location.name.clone(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A server to create, for [`HetznerClient::create_server_with`].
#[derive(Clone, Copy)]
pub struct NewServer<'a> {
    /// Its name (unique in the project, a valid hostname).
    pub name: &'a str,
    /// Its server type's name (`cpx11`, …).
    pub server_type: &'a str,
    /// The image's name or id (`ubuntu-24.04`, …).
    pub image: &'a str,
    /// The location's name (`fsn1`, …); `None` lets Hetzner choose.
    pub location: Option<&'a str>,
    /// The SSH keys to install, by name or id.
    pub ssh_keys: &'a [String],
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Cloud-init user data. It may carry secrets (a host key), so it is never printed
    /// and is scrubbed from errors.
    pub user_data: Option<&'a str>,
}

impl fmt::Debug for NewServer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewServer")
            .field("name", &self.name)
            .field("server_type", &self.server_type)
            .field("image", &self.image)
            .field("location", &self.location)
            .field("ssh_keys", &self.ssh_keys)
            .field("labels", &self.labels)
            .field("user_data", &self.user_data.map(|_| "<redacted>"))
            .finish()
    }
}

/// A server type's gross prices in one location, as the API writes them (decimal
/// strings in EUR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationPrice {
    /// The location's name.
    pub location: String,
    /// The price per hour, VAT included (`"0.0083300000000000"`).
    pub hourly_gross: String,
    /// The most a month costs, VAT included.
    pub monthly_gross: String,
}

/// A client for one Hetzner Cloud project (one API token).
#[derive(Clone)]
pub struct HetznerClient {
    config: Configuration,
    base: String,
}

impl fmt::Debug for HetznerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HetznerClient")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Turns an `hcloud` error into a [`ClientError`] naming the call and the status.
fn from_hcloud<T>(call: &'static str, err: HcloudError<T>) -> ClientError {
    match err {
        HcloudError::Reqwest(e) => ClientError::transport(SERVICE, call, e),
        HcloudError::Io(e) => ClientError::Transport {
            service: SERVICE,
            call,
            detail: e.to_string(),
        },
        HcloudError::Serde(e) => ClientError::Unexpected {
            service: SERVICE,
            call,
            status: None,
            detail: format!("not the documented JSON: {e}"),
        },
        HcloudError::ResponseError(rc) => {
            let parsed: Option<models::ErrorResponse> = serde_json::from_str(&rc.content).ok();
            let (code, message) = match parsed {
                Some(body) => (Some(body.error.code), body.error.message),
                None => (None, excerpt(&rc.content, 200)),
            };
            ClientError::Status {
                service: SERVICE,
                call,
                status: rc.status.as_u16(),
                code,
                message,
                retry_after: None,
            }
        }
    }
}

/// The first two fields of an OpenSSH public key line (type and blob), without comment.
fn key_material(public_key: &str) -> String {
    public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl HetznerClient {
    /// A client for the API at `base` (e.g. `https://api.hetzner.cloud/v1`, or a double's
    /// `http://127.0.0.1:PORT/v1`) with this API token.
    pub fn new(base: &str, token: impl Into<String>) -> Result<HetznerClient, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base() => {}
            _ => {
                return Err(ClientError::Setup {
                    service: SERVICE,
                    call: "new",
                    detail: format!("`{base}` is not an http(s) base URL"),
                })
            }
        }
        let mut config = Configuration::new();
        config
            .base_path_mapping
            .insert(OFFICIAL_BASE.to_string(), base.clone());
        config.client = http_client(SERVICE)?;
        config.user_agent = Some(format!("{} (hcloud-rust)", super::USER_AGENT));
        config.bearer_access_token = Some(token.into());
        Ok(HetznerClient { config, base })
    }

    /// A client for the real API with this token.
    pub fn official(token: impl Into<String>) -> Result<HetznerClient, ClientError> {
        HetznerClient::new(OFFICIAL_BASE, token)
    }

    /// The base URL the client calls.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn scrub(&self, e: ClientError) -> ClientError {
        match &self.config.bearer_access_token {
            Some(t) => e.redact(t),
            None => e,
        }
    }

    /// Creates a server (started once created) from `image`, reachable with the SSH keys
    /// named (or numbered) in `ssh_keys`, carrying `labels`. The answer says
    /// `initializing`; poll [`HetznerClient::get_server`] until it says `running`.
    pub async fn create_server(
        &self,
        name: &str,
        server_type: &str,
        image: &str,
        ssh_keys: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Result<ServerInfo, ClientError> {
        self.create_server_with(&NewServer {
            name,
            server_type,
            image,
            location: None,
            ssh_keys,
            labels,
            user_data: None,
        })
        .await
    }

    /// Creates a server as [`HetznerClient::create_server`] does, with a location and
    /// cloud-init user data when given. The user data never appears in an error.
    pub async fn create_server_with(&self, s: &NewServer<'_>) -> Result<ServerInfo, ClientError> {
        let mut request =
            models::CreateServerRequest::new(s.image.into(), s.name.into(), s.server_type.into());
        request.location = s.location.map(str::to_string);
        request.ssh_keys = Some(s.ssh_keys.to_vec());
        request.labels = Some(
            s.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
        request.user_data = s.user_data.map(str::to_string);
        request.start_after_create = Some(true);
        let params = servers_api::CreateServerParams {
            create_server_request: request,
        };
        let resp = servers_api::create_server(&self.config, params)
            .await
            .map_err(|e| {
                let mut e = self.scrub(from_hcloud("create server", e));
                if let Some(data) = s.user_data {
                    // The whole text, and each substantial line, in case an answer quotes
                    // part of it.
                    e = e.redact(data);
                    for line in data.lines().map(str::trim).filter(|l| l.len() >= 16) {
                        e = e.redact(line);
                    }
                }
                e
            })?;
        Ok(ServerInfo::from_model(&resp.server))
    }

    /// The server with this id, or `None` if there is none (404).
    pub async fn get_server(&self, id: i64) -> Result<Option<ServerInfo>, ClientError> {
        match servers_api::get_server(&self.config, servers_api::GetServerParams { id }).await {
            Ok(resp) => Ok(resp.server.as_deref().map(ServerInfo::from_model)),
            Err(e) => {
                let e = self.scrub(from_hcloud("get server", e));
                if e.status() == Some(404) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Replaces all of a server's labels with `labels` (`PUT /v1/servers/{id}`).
    pub async fn set_server_labels(
        &self,
        id: i64,
        labels: &BTreeMap<String, String>,
    ) -> Result<ServerInfo, ClientError> {
        let mut request = models::ReplaceServerRequest::new();
        request.labels = Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        let resp = servers_api::replace_server(
            &self.config,
            servers_api::ReplaceServerParams {
                id,
                replace_server_request: request,
            },
        )
        .await
        .map_err(|e| self.scrub(from_hcloud("relabel server", e)))?;
        resp.server
            .as_deref()
            .map(ServerInfo::from_model)
            .ok_or_else(|| ClientError::Unexpected {
                service: SERVICE,
                call: "relabel server",
                status: Some(200),
                detail: format!("no server in the answer for server {id}"),
            })
    }

    /// Deletes the server with this id (the deletion finishes in the background).
    pub async fn delete_server(&self, id: i64) -> Result<(), ClientError> {
        servers_api::delete_server(&self.config, servers_api::DeleteServerParams { id })
            .await
            .map_err(|e| self.scrub(from_hcloud("delete server", e)))?;
        Ok(())
    }

    /// Every server matching a label selector (`k=v`, `k!=v`, `k`, `!k`, joined by
    /// commas), reading all pages.
    pub async fn list_servers_by_label(
        &self,
        selector: &str,
    ) -> Result<Vec<ServerInfo>, ClientError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let params = servers_api::ListServersParams {
                label_selector: Some(selector.into()),
                page: Some(page),
                per_page: Some(50),
                ..Default::default()
            };
            let resp = servers_api::list_servers(&self.config, params)
                .await
                .map_err(|e| self.scrub(from_hcloud("list servers", e)))?;
            out.extend(resp.servers.iter().map(ServerInfo::from_model));
            match resp.meta.pagination.next_page {
                Some(next) if next > page && next <= MAX_PAGES => page = next,
                _ => return Ok(out),
            }
        }
    }

    /// The gross hourly price of `server_type` in `location`, as the API writes it (a
    /// decimal string in EUR, e.g. `"0.0083300000000000"`).
    pub async fn server_type_price(
        &self,
        server_type: &str,
        location: &str,
    ) -> Result<String, ClientError> {
        let params = server_types_api::ListServerTypesParams {
            name: Some(server_type.into()),
            ..Default::default()
        };
        let resp = server_types_api::list_server_types(&self.config, params)
            .await
            .map_err(|e| self.scrub(from_hcloud("list server types", e)))?;
        let missing = |detail: String| ClientError::Unexpected {
            service: SERVICE,
            call: "list server types",
            status: Some(200),
            detail,
        };
        let t = resp
            .server_types
            .iter()
            .find(|t| t.name == server_type)
            .ok_or_else(|| missing(format!("no server type named `{server_type}`")))?;
        t.prices
            .iter()
            .find(|p| p.location == location)
            .map(|p| p.price_hourly.gross.clone())
            .ok_or_else(|| {
                missing(format!(
                    "server type `{server_type}` has no price in location `{location}`"
                ))
            })
    }

    /// The gross prices of `server_type` in every location that offers it.
    pub async fn server_type_prices(
        &self,
        server_type: &str,
    ) -> Result<Vec<LocationPrice>, ClientError> {
        let params = server_types_api::ListServerTypesParams {
            name: Some(server_type.into()),
            ..Default::default()
        };
        let resp = server_types_api::list_server_types(&self.config, params)
            .await
            .map_err(|e| self.scrub(from_hcloud("list server types", e)))?;
        let t = resp
            .server_types
            .iter()
            .find(|t| t.name == server_type)
            .ok_or_else(|| ClientError::Unexpected {
                service: SERVICE,
                call: "list server types",
                status: Some(200),
                detail: format!("no server type named `{server_type}`"),
            })?;
        Ok(t.prices
            .iter()
            .map(|p| LocationPrice {
                location: p.location.clone(),
                hourly_gross: p.price_hourly.gross.clone(),
                monthly_gross: p.price_monthly.gross.clone(),
            })
            .collect())
    }

    /// The name of the SSH key with this id, or `None` if there is none (404).
    pub async fn ssh_key_name(&self, id: i64) -> Result<Option<String>, ClientError> {
        match ssh_keys_api::get_ssh_key(&self.config, ssh_keys_api::GetSshKeyParams { id }).await {
            Ok(resp) => Ok(Some(resp.ssh_key.name)),
            Err(e) => {
                let e = self.scrub(from_hcloud("get SSH key", e));
                if e.status() == Some(404) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Makes sure the project has this SSH public key under `name`; returns its id. A key
    /// already there under that name is used if it is the same key (an error otherwise);
    /// the same key under another name is used as it is.
    pub async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> Result<i64, ClientError> {
        let wanted = key_material(public_key);
        let by_name = self.ssh_keys(Some(name)).await?;
        if let Some(k) = by_name.iter().find(|k| k.name == name) {
            if key_material(&k.public_key) == wanted {
                return Ok(k.id);
            }
            return Err(ClientError::Unexpected {
                service: SERVICE,
                call: "list SSH keys",
                status: Some(200),
                detail: format!("an SSH key named `{name}` exists with a different public key"),
            });
        }
        let params = ssh_keys_api::CreateSshKeyParams {
            create_ssh_key_request: models::CreateSshKeyRequest {
                labels: None,
                name: name.into(),
                public_key: public_key.trim().into(),
            },
        };
        match ssh_keys_api::create_ssh_key(&self.config, params).await {
            Ok(resp) => Ok(resp.ssh_key.id),
            Err(e) => {
                let e = self.scrub(from_hcloud("create SSH key", e));
                if e.status() != Some(409) {
                    return Err(e);
                }
                // The same key under another name (fingerprints are unique per project).
                self.ssh_keys(None)
                    .await?
                    .into_iter()
                    .find(|k| key_material(&k.public_key) == wanted)
                    .map(|k| k.id)
                    .ok_or(e)
            }
        }
    }

    async fn ssh_keys(&self, name: Option<&str>) -> Result<Vec<models::SshKey>, ClientError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let params = ssh_keys_api::ListSshKeysParams {
                name: name.map(str::to_string),
                page: Some(page),
                per_page: Some(50),
                ..Default::default()
            };
            let resp = ssh_keys_api::list_ssh_keys(&self.config, params)
                .await
                .map_err(|e| self.scrub(from_hcloud("list SSH keys", e)))?;
            out.extend(resp.ssh_keys);
            match resp.meta.pagination.next_page {
                Some(next) if next > page && next <= MAX_PAGES => page = next,
                _ => return Ok(out),
            }
        }
    }
}
