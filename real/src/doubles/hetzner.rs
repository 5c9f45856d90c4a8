//! A local double of the Hetzner Cloud API v1 (`api.hetzner.cloud/v1`), the subset the
//! Hetzner backend uses to rent the drill's machines.
//!
//! It exists so that the backend's provisioning code, through the real
//! [`crate::clients::HetznerClient`] and the `hcloud` crate, can be run and checked without
//! an account and without paying for servers. It is strict on purpose: each request's
//! method, path, `Authorization: Bearer` header and JSON body are checked against the
//! documented shapes, and every request is recorded ([`RecordedRequest`]) so that tests can
//! see exactly what a client sent. Answers are built from `hcloud::models` types, so the
//! real `hcloud` client parses them.
//!
//! Routes:
//! - `POST /v1/servers` (`name`, `server_type`, `image` required; `location`, `ssh_keys` by
//!   name or id, `labels`, `user_data` (at most 32 KiB), `start_after_create`, …) → 201
//!   with `server` (`status: initializing`), `action`, `next_actions`, `root_password`
//!   (null when SSH keys are given); a used name → 409 `uniqueness_error`;
//! - `GET /v1/servers` (`name`, `label_selector`, `status`, `page`, `per_page`),
//!   `GET /v1/servers/{id}`, `PUT /v1/servers/{id}` (`name`, `labels`: the labels given
//!   replace all of them), `DELETE /v1/servers/{id}` (then `GET` → 404 `not_found`);
//! - `GET /v1/ssh_keys` (`name`, `fingerprint`, `label_selector`), `POST /v1/ssh_keys`,
//!   `GET`/`DELETE /v1/ssh_keys/{id}`;
//! - `GET /v1/server_types` (`name`), `GET /v1/server_types/{id}`: types with `prices` per
//!   location, `price_hourly.gross` and `price_monthly.gross` as decimal strings.
//!
//! A new server reports `initializing` until it has been read once: the first `GET` that
//! returns it still says `initializing`, every later one says `running`, so a client must
//! poll as it would against the real API. Its public IPv4 is the one set with
//! [`HetznerDouble::set_server_ip`] (default `127.0.0.1`, so SSH tests can reach a
//! loopback sshd).
//!
//! Errors are `{"error":{"code","message","details"}}` with the documented statuses:
//! 400 `json_error`, 401 `unauthorized`, 404 `not_found`, 405 `method_not_allowed`,
//! 409 `uniqueness_error`, 422 `invalid_input` (with `details.fields`). Responses carry the
//! `RateLimit-Limit/-Remaining/-Reset` headers (the limit is reported, not enforced).
//!
//! The catalogue (server types, prices, locations, images) is illustrative: close to
//! Hetzner's at the time of writing, not a price list to rely on.

use super::ServerTask;
use super::{
    bearer, iso8601, parse_query, path_segments, query_get, spawn_router, unix_now, Guarded,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hcloud::models;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The token `lifeboat serve hetzner` uses when none is given. It is not a secret: it only
/// opens this double.
pub const TEST_TOKEN: &str = "lifeboatDoubleHcloudTestTokenNotASecret000000000000000000000000";

/// The requests per hour the double reports in `RateLimit-Limit` (Hetzner's default).
pub const RATE_LIMIT: u64 = 3600;

/// One request as the double received it, for tests to inspect.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `DELETE` …
    pub method: String,
    /// The path, e.g. `/v1/servers/42`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header as sent (the double's tokens are test tokens).
    pub authorization: Option<String>,
    /// The `Content-Type` header as sent.
    pub content_type: Option<String>,
    /// The body parsed as JSON; `None` when empty or not JSON (see `body_text`).
    pub body: Option<Value>,
    /// The body as text (lossy UTF-8).
    pub body_text: String,
    /// The HTTP status the double answered.
    pub status: u16,
}

/// A location of the catalogue: id, name, city, country, network zone, latitude,
/// longitude.
type LocationSpec = (
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);

const LOCATIONS: &[LocationSpec] = &[
    (
        1,
        "fsn1",
        "Falkenstein",
        "DE",
        "eu-central",
        50.47612,
        12.370071,
    ),
    (
        2,
        "nbg1",
        "Nuremberg",
        "DE",
        "eu-central",
        49.452102,
        11.076665,
    ),
    (
        3,
        "hel1",
        "Helsinki",
        "FI",
        "eu-central",
        60.169855,
        24.938379,
    ),
    (
        4,
        "ash",
        "Ashburn, VA",
        "US",
        "us-east",
        39.043757,
        -77.487442,
    ),
    (
        5,
        "hil",
        "Hillsboro, OR",
        "US",
        "us-west",
        45.54222,
        -122.951924,
    ),
    (
        6,
        "sin",
        "Singapore",
        "SG",
        "ap-southeast",
        1.283333,
        103.833333,
    ),
];

/// A server type of the catalogue, with net prices in EUR: in the EU locations, and
/// elsewhere (`None`: not offered outside the EU).
struct TypeSpec {
    id: i64,
    name: &'static str,
    cores: i32,
    memory_gb: f64,
    disk_gb: f64,
    dedicated: bool,
    arm: bool,
    eu: (&'static str, &'static str),
    elsewhere: Option<(&'static str, &'static str)>,
}

const TYPES: &[TypeSpec] = &[
    TypeSpec {
        id: 22,
        name: "cx22",
        cores: 2,
        memory_gb: 4.0,
        disk_gb: 40.0,
        dedicated: false,
        arm: false,
        eu: ("0.0060", "3.7900"),
        elsewhere: None,
    },
    TypeSpec {
        id: 23,
        name: "cx32",
        cores: 4,
        memory_gb: 8.0,
        disk_gb: 80.0,
        dedicated: false,
        arm: false,
        eu: ("0.0110", "6.8000"),
        elsewhere: None,
    },
    TypeSpec {
        id: 45,
        name: "cax11",
        cores: 2,
        memory_gb: 4.0,
        disk_gb: 40.0,
        dedicated: false,
        arm: true,
        eu: ("0.0060", "3.7900"),
        elsewhere: None,
    },
    TypeSpec {
        id: 1022,
        name: "cpx11",
        cores: 2,
        memory_gb: 2.0,
        disk_gb: 40.0,
        dedicated: false,
        arm: false,
        eu: ("0.0070", "4.3500"),
        elsewhere: Some(("0.0080", "4.9900")),
    },
    TypeSpec {
        id: 1023,
        name: "cpx21",
        cores: 3,
        memory_gb: 4.0,
        disk_gb: 80.0,
        dedicated: false,
        arm: false,
        eu: ("0.0121", "7.5500"),
        elsewhere: Some(("0.0137", "8.4900")),
    },
    TypeSpec {
        id: 1024,
        name: "cpx31",
        cores: 4,
        memory_gb: 8.0,
        disk_gb: 160.0,
        dedicated: false,
        arm: false,
        eu: ("0.0218", "13.6000"),
        elsewhere: Some(("0.0246", "15.3900")),
    },
];

/// System images the double knows: id, name, OS flavor, OS version.
const IMAGES: &[(i64, &str, models::image::OsFlavor, &str)] = &[
    (
        161_547_269,
        "ubuntu-24.04",
        models::image::OsFlavor::Ubuntu,
        "24.04",
    ),
    (
        67_794_396,
        "ubuntu-22.04",
        models::image::OsFlavor::Ubuntu,
        "22.04",
    ),
    (
        114_690_387,
        "debian-12",
        models::image::OsFlavor::Debian,
        "12",
    ),
    (
        202_692_145,
        "debian-13",
        models::image::OsFlavor::Debian,
        "13",
    ),
];

/// Converts a decimal string with at most 16 decimals into units of 1e-16.
fn decimal_units(s: &str) -> u128 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<16}");
    whole.parse::<u128>().unwrap_or(0) * 10u128.pow(16) + frac[..16].parse::<u128>().unwrap_or(0)
}

/// Formats units of 1e-16 as Hetzner does: `"0.0071400000000000"`.
fn format_units(v: u128) -> String {
    format!("{}.{:016}", v / 10u128.pow(16), v % 10u128.pow(16))
}

/// A net price and its gross (19 % VAT, as for a German customer).
fn price(net: &str) -> models::Price {
    let net = decimal_units(net);
    models::Price {
        net: format_units(net),
        gross: format_units(net * 119 / 100),
    }
}

fn location_model(spec: &LocationSpec) -> models::Location {
    let (id, name, city, country, zone, lat, lon) = *spec;
    models::Location {
        city: city.into(),
        country: country.into(),
        description: format!("{city} DC Park 1"),
        id,
        latitude: lat,
        longitude: lon,
        name: name.into(),
        network_zone: zone.into(),
    }
}

fn type_model(t: &TypeSpec) -> models::ServerType {
    let offered: Vec<&LocationSpec> = LOCATIONS
        .iter()
        .filter(|l| l.4 == "eu-central" || t.elsewhere.is_some())
        .collect();
    models::ServerType {
        architecture: if t.arm {
            models::Architecture::Arm
        } else {
            models::Architecture::X86
        },
        category: Some(if t.dedicated { "dedicated" } else { "shared" }.into()),
        cores: t.cores,
        cpu_type: if t.dedicated {
            models::server_type::CpuType::Dedicated
        } else {
            models::server_type::CpuType::Shared
        },
        deprecated: Some(false),
        deprecation: None,
        description: t.name.to_uppercase(),
        disk: t.disk_gb,
        id: t.id,
        locations: offered
            .iter()
            .map(|l| models::ServerTypeLocation {
                deprecation: None,
                id: l.0,
                name: l.1.into(),
            })
            .collect(),
        memory: t.memory_gb,
        name: t.name.into(),
        prices: offered
            .iter()
            .map(|l| {
                let (hourly, monthly) = if l.4 == "eu-central" {
                    t.eu
                } else {
                    t.elsewhere.unwrap_or(t.eu)
                };
                models::PricePerTime {
                    included_traffic: if l.4 == "eu-central" { 20 * TIB } else { TIB },
                    location: l.1.into(),
                    price_hourly: Box::new(price(hourly)),
                    price_monthly: Box::new(price(monthly)),
                    price_per_tb_traffic: Box::new(price("1.0000")),
                }
            })
            .collect(),
        storage_type: models::server_type::StorageType::Local,
    }
}

/// A tebibyte, for included traffic in bytes.
const TIB: i64 = 1 << 40;

fn image_model(
    id: i64,
    name: &str,
    flavor: models::image::OsFlavor,
    version: &str,
) -> models::Image {
    models::Image {
        architecture: models::Architecture::X86,
        bound_to: None,
        created: "2024-04-25T00:00:00+00:00".into(),
        created_from: None,
        deleted: None,
        deprecated: None,
        description: name.replace('-', " "),
        disk_size: 5.0,
        id,
        image_size: None,
        labels: HashMap::new(),
        name: Some(name.into()),
        os_flavor: flavor,
        os_version: Some(version.into()),
        protection: Box::new(models::Protection { delete: false }),
        rapid_deploy: Some(true),
        status: models::image::Status::Available,
        r#type: models::image::Type::System,
    }
}

/// A stand-in for the key's MD5 fingerprint (the double has no MD5): 16 bytes from two
/// FNV-1a hashes of the key's base64 blob, written like one (`aa:bb:…`).
fn fingerprint(public_key: &str) -> String {
    let blob = public_key.split_whitespace().nth(1).unwrap_or(public_key);
    let fnv = |seed: u64| {
        blob.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let bytes: Vec<u8> = [fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4)]
        .iter()
        .flat_map(|h| h.to_be_bytes())
        .collect();
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct ServerEntry {
    server: models::Server,
    /// Whether a GET has returned it yet (it turns `running` after the first).
    seen: bool,
}

struct Inner {
    servers: BTreeMap<i64, ServerEntry>,
    ssh_keys: BTreeMap<i64, models::SshKey>,
    next_server_id: i64,
    next_key_id: i64,
    next_action_id: i64,
    server_ip: IpAddr,
    /// Addresses for the next servers, one each, before `server_ip` serves again.
    server_ips: std::collections::VecDeque<IpAddr>,
    requests: Vec<RecordedRequest>,
}

impl Inner {
    fn action(&mut self, command: &str, resources: Vec<(i64, &str)>) -> models::Action {
        let id = self.next_action_id;
        self.next_action_id += 1;
        models::Action {
            command: command.into(),
            error: None,
            finished: None,
            id,
            progress: 0,
            resources: resources
                .into_iter()
                .map(|(id, t)| models::Resource {
                    id,
                    r#type: t.into(),
                })
                .collect(),
            started: now_hetzner(),
            status: models::action::Status::Running,
        }
    }
}

type Shared = Guarded<Inner>;

/// A Hetzner Cloud API double: a cheap handle to its state, shared with the server task.
#[derive(Clone)]
pub struct HetznerDouble {
    shared: Arc<Shared>,
}

impl fmt::Debug for HetznerDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.shared.lock();
        f.debug_struct("HetznerDouble")
            .field("servers", &g.servers.len())
            .field("server_ip", &g.server_ip)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl HetznerDouble {
    /// An empty project that accepts this API token; new servers get `127.0.0.1`.
    pub fn new(token: impl Into<String>) -> HetznerDouble {
        HetznerDouble {
            shared: Arc::new(Guarded::new(
                token.into(),
                Inner {
                    servers: BTreeMap::new(),
                    ssh_keys: BTreeMap::new(),
                    next_server_id: 50_000_001,
                    next_key_id: 7_000_001,
                    next_action_id: 900_000_001,
                    server_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    server_ips: Default::default(),
                    requests: Vec::new(),
                },
            )),
        }
    }

    /// The public IPv4 address that servers created from now on report.
    pub fn set_server_ip(&self, ip: IpAddr) {
        self.shared.lock().server_ip = ip;
    }

    /// Gives the next servers these addresses, one each in order (then
    /// [`HetznerDouble::set_server_ip`]'s again): tests that boot one sshd per server on
    /// its own loopback address.
    pub fn set_server_ips(&self, ips: Vec<IpAddr>) {
        self.shared.lock().server_ips = ips.into();
    }

    /// The public IPv4 address of the server named `name`, while it exists.
    pub fn server_ip(&self, name: &str) -> Option<IpAddr> {
        self.shared
            .lock()
            .servers
            .values()
            .find(|e| e.server.name == name)
            .and_then(|e| e.server.public_net.ipv4.as_ref())
            .and_then(|v4| v4.ip.parse().ok())
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The names of the servers that exist now.
    pub fn server_names(&self) -> Vec<String> {
        self.shared
            .lock()
            .servers
            .values()
            .map(|e| e.server.name.clone())
            .collect()
    }

    /// Serves the double on `addr` (`127.0.0.1:0` picks a free port); returns the bound
    /// address and the server task. Clients use `http://<addr>/v1` as the API base.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<(SocketAddr, ServerTask)> {
        spawn_router(addr, self.router()).await
    }

    /// The double's routes, for embedding in another server.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(handle)
            .with_state(self.shared.clone())
    }
}

/// Starts a Hetzner Cloud API double for `token` on `addr`; returns the bound address and
/// the server task. Use [`HetznerDouble`] to keep a handle on its state or to set the IP
/// new servers report.
pub async fn serve_hetzner(
    addr: SocketAddr,
    token: String,
) -> anyhow::Result<(SocketAddr, ServerTask)> {
    HetznerDouble::new(token).serve(addr).await
}

/// Now, as Hetzner writes timestamps (`2026-11-05T09:30:00+00:00`).
fn now_hetzner() -> String {
    iso8601(unix_now()).replace('Z', "+00:00")
}

/// An answer: status and JSON body.
type Answer = (StatusCode, Value);

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn error(status: StatusCode, code: &str, message: &str, details: Option<Value>) -> Answer {
    let body = models::ErrorResponse {
        error: Box::new(models::ErrorResponseError {
            code: code.into(),
            message: message.into(),
            details: Some(details),
        }),
    };
    (status, to_value(&body))
}

fn not_found(what: &str, id: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{what} with ID '{id}' not found"),
        None,
    )
}

/// Field errors: (field, message).
type FieldErrors = Vec<(String, String)>;

fn invalid_input(errors: FieldErrors) -> Answer {
    let (first, msg) = errors.first().cloned().unwrap_or_default();
    let fields: Vec<Value> = errors
        .iter()
        .map(|(name, m)| json!({"name": name, "messages": [m]}))
        .collect();
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        &format!("invalid input in field '{first}': {msg}"),
        Some(json!({ "fields": fields })),
    )
}

fn uniqueness(message: &str, field: &str) -> Answer {
    error(
        StatusCode::CONFLICT,
        "uniqueness_error",
        message,
        Some(json!({"fields": [{"name": field}]})),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut record = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authorization: header_text(header::AUTHORIZATION),
        content_type: header_text(header::CONTENT_TYPE),
        body: parsed.clone(),
        body_text,
        status: 0,
    };

    let (status, json) = if bearer(&headers, &["Bearer"]) != Some(shared.token.as_str()) {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unable to authenticate",
            None,
        )
    } else {
        route(&shared, &method, &uri, &body, parsed)
    };

    let mut g = shared.lock();
    record.status = status.as_u16();
    g.requests.push(record);
    let used = g.requests.len() as u64;
    drop(g);

    let mut resp = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(json)).into_response()
    };
    let remaining = RATE_LIMIT.saturating_sub(used);
    for (name, value) in [
        ("ratelimit-limit", RATE_LIMIT),
        ("ratelimit-remaining", remaining),
        ("ratelimit-reset", unix_now() + (RATE_LIMIT - remaining)),
    ] {
        resp.headers_mut()
            .insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
    resp
}

fn route(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    parsed: Option<Value>,
) -> Answer {
    let seg = path_segments(uri.path());
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let query = parse_query(uri.query().unwrap_or(""));
    let json_body = || -> Result<Map<String, Value>, Answer> {
        match &parsed {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "json_error",
                if body.is_empty() {
                    "request body is empty, expected a JSON object"
                } else {
                    "invalid JSON input, expected a JSON object"
                },
                None,
            )),
        }
    };
    let not_allowed = || {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("method {method} is not allowed on {}", uri.path()),
            None,
        )
    };
    let mut g = shared.lock();
    match seg.as_slice() {
        ["v1", "servers"] => match *method {
            Method::GET => list_servers(&mut g, &query),
            Method::POST => match json_body() {
                Ok(b) => create_server(&mut g, &b),
                Err(a) => a,
            },
            _ => not_allowed(),
        },
        ["v1", "servers", id] => match *method {
            Method::GET => get_server(&mut g, id),
            Method::PUT => match json_body() {
                Ok(b) => replace_server(&mut g, id, &b),
                Err(a) => a,
            },
            Method::DELETE => delete_server(&mut g, id),
            _ => not_allowed(),
        },
        ["v1", "ssh_keys"] => match *method {
            Method::GET => list_ssh_keys(&g, &query),
            Method::POST => match json_body() {
                Ok(b) => create_ssh_key(&mut g, &b),
                Err(a) => a,
            },
            _ => not_allowed(),
        },
        ["v1", "ssh_keys", id] => {
            let key_id = id
                .parse::<i64>()
                .ok()
                .filter(|k| g.ssh_keys.contains_key(k));
            match (method.clone(), key_id) {
                (Method::GET, Some(k)) => (
                    StatusCode::OK,
                    to_value(&models::GetSshKeyResponse {
                        ssh_key: Box::new(g.ssh_keys[&k].clone()),
                    }),
                ),
                (Method::DELETE, Some(k)) => {
                    g.ssh_keys.remove(&k);
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                (Method::GET | Method::DELETE, None) => not_found("SSH key", id),
                _ => not_allowed(),
            }
        }
        ["v1", "server_types"] => match *method {
            Method::GET => {
                let name = query_get(&query, "name");
                let types: Vec<models::ServerType> = TYPES
                    .iter()
                    .filter(|t| name.is_none_or(|n| n == t.name))
                    .map(type_model)
                    .collect();
                let meta = pagination(1, 50, types.len());
                (
                    StatusCode::OK,
                    to_value(&models::ListServerTypesResponse {
                        meta: Box::new(meta),
                        server_types: types,
                    }),
                )
            }
            _ => not_allowed(),
        },
        ["v1", "server_types", id] => match *method {
            Method::GET => match TYPES.iter().find(|t| t.id.to_string() == *id) {
                Some(t) => (
                    StatusCode::OK,
                    to_value(&models::GetServerTypeResponse {
                        server_type: Box::new(type_model(t)),
                    }),
                ),
                None => not_found("server type", id),
            },
            _ => not_allowed(),
        },
        _ => error(StatusCode::NOT_FOUND, "not_found", "not found", None),
    }
}

fn pagination(page: usize, per_page: usize, total: usize) -> models::Meta {
    let last = total.div_ceil(per_page).max(1);
    models::Meta {
        pagination: Box::new(models::Pagination {
            last_page: Some(last as i64),
            next_page: (page < last).then_some(page as i64 + 1),
            page: page as i64,
            per_page: per_page as i64,
            previous_page: (page > 1).then_some(page as i64 - 1),
            total_entries: Some(total as i64),
        }),
    }
}

/// `page` and `per_page` from a query (defaults 1 and 25, `per_page` at most 50).
fn page_params(query: &[(String, String)]) -> Result<(usize, usize), Answer> {
    let number =
        |key: &str, default: usize| match query_get(query, key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                invalid_input(vec![(key.into(), "must be a positive integer".into())])
            }),
        };
    Ok((number("page", 1)?, number("per_page", 25)?.min(50)))
}

/// One label selector requirement.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Parses a label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
/// `k notin (a,b)`, joined by commas (all must hold).
fn parse_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    let valid = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("expected (v1,v2,…) in `{s}`"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    terms
        .into_iter()
        .map(str::trim)
        .map(|t| {
            let req = if let Some(k) = t.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else if let Some((k, v)) = t.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(rest)?)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                Requirement::In(k.trim().into(), set(rest)?)
            } else {
                Requirement::Exists(t.into())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _) => k,
            };
            if valid(key) {
                Ok(req)
            } else {
                Err(format!("invalid label selector `{s}`"))
            }
        })
        .collect()
}

fn selector_matches(reqs: &[Requirement], labels: &HashMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Requirement::Equals(k, v) => labels.get(k) == Some(v),
        Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
        Requirement::Exists(k) => labels.contains_key(k),
        Requirement::Absent(k) => !labels.contains_key(k),
        Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
        Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
    })
}

/// The selector from a query, if any.
fn selector_param(query: &[(String, String)]) -> Result<Option<Vec<Requirement>>, Answer> {
    query_get(query, "label_selector")
        .map(|s| parse_selector(s).map_err(|e| invalid_input(vec![("label_selector".into(), e)])))
        .transpose()
}

/// Reads a server for an answer: the first read still shows `initializing`, and flips it.
fn read_server(entry: &mut ServerEntry) -> models::Server {
    let shown = entry.server.clone();
    if !entry.seen {
        entry.seen = true;
        if entry.server.status == models::server::Status::Initializing {
            entry.server.status = models::server::Status::Running;
        }
    }
    shown
}

fn list_servers(g: &mut Inner, query: &[(String, String)]) -> Answer {
    let (page, per_page) = match page_params(query) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let selector = match selector_param(query) {
        Ok(s) => s,
        Err(a) => return a,
    };
    let name = query_get(query, "name");
    let statuses: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "status")
        .map(|(_, v)| v.as_str())
        .collect();
    let matching: Vec<i64> = g
        .servers
        .iter()
        .filter(|(_, e)| {
            let s = &e.server;
            name.is_none_or(|n| n == s.name)
                && selector
                    .as_ref()
                    .is_none_or(|r| selector_matches(r, &s.labels))
                && (statuses.is_empty()
                    || statuses.contains(&to_value(&s.status).as_str().unwrap_or("")))
        })
        .map(|(id, _)| *id)
        .collect();
    let total = matching.len();
    let servers: Vec<models::Server> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|id| g.servers.get_mut(&id).map(read_server))
        .collect();
    (
        StatusCode::OK,
        to_value(&models::ListServersResponse {
            meta: Box::new(pagination(page, per_page, total)),
            servers,
        }),
    )
}

fn get_server(g: &mut Inner, id: &str) -> Answer {
    match id.parse::<i64>().ok().and_then(|i| g.servers.get_mut(&i)) {
        Some(entry) => (
            StatusCode::OK,
            to_value(&models::GetServerResponse {
                server: Some(Box::new(read_server(entry))),
            }),
        ),
        None => not_found("server", id),
    }
}

/// `PUT /v1/servers/{id}`: a new `name` and/or `labels`; the labels given replace all
/// the server's labels (the API's documented behaviour), those left out stay.
fn replace_server(g: &mut Inner, id: &str, body: &Map<String, Value>) -> Answer {
    let Some(server_id) = id.parse::<i64>().ok().filter(|i| g.servers.contains_key(i)) else {
        return not_found("server", id);
    };
    let mut errors = FieldErrors::new();
    for key in body.keys() {
        if !["name", "labels"].contains(&key.as_str()) {
            errors.push((key.clone(), "unknown field".into()));
        }
    }
    let labels = body
        .get("labels")
        .map(|v| check_labels(Some(v), &mut errors));
    let name = match body.get("name") {
        None => None,
        Some(Value::String(n)) if valid_hostname(n) => Some(n.clone()),
        Some(_) => {
            errors.push(("name".into(), "must be a valid hostname (RFC 1123)".into()));
            None
        }
    };
    if !errors.is_empty() {
        return invalid_input(errors);
    }
    if let Some(n) = &name {
        if g.servers
            .iter()
            .any(|(i, e)| *i != server_id && e.server.name == *n)
        {
            return uniqueness("server name is already used", "name");
        }
    }
    let entry = g.servers.get_mut(&server_id).expect("checked above");
    if let Some(l) = labels {
        entry.server.labels = l;
    }
    if let Some(n) = name {
        entry.server.name = n;
    }
    (
        StatusCode::OK,
        to_value(&models::ReplaceServerResponse {
            server: Some(Box::new(read_server(entry))),
        }),
    )
}

fn delete_server(g: &mut Inner, id: &str) -> Answer {
    let Some(server_id) = id.parse::<i64>().ok().filter(|i| g.servers.contains_key(i)) else {
        return not_found("server", id);
    };
    g.servers.remove(&server_id);
    let action = g.action("delete_server", vec![(server_id, "server")]);
    (
        StatusCode::OK,
        to_value(&models::DeleteServerResponse {
            action: Some(Box::new(action)),
        }),
    )
}

/// Whether `name` is a valid hostname as RFC 1123 has it.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a `labels` object against Hetzner's label rules; returns the labels.
fn check_labels(v: Option<&Value>, errors: &mut FieldErrors) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return labels;
    };
    let Some(map) = v.as_object() else {
        errors.push(("labels".into(), "must be an object of strings".into()));
        return labels;
    };
    let segment_ok = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    for (k, val) in map {
        let name = k.rsplit_once('/').map_or(k.as_str(), |(_, n)| n);
        let key_ok = !name.is_empty() && segment_ok(name) && !k.starts_with("hetzner.cloud/");
        match val.as_str() {
            Some(s) if key_ok && segment_ok(s) => {
                labels.insert(k.clone(), s.to_string());
            }
            Some(_) if !key_ok => {
                errors.push(("labels".into(), format!("invalid label key '{k}'")))
            }
            _ => errors.push(("labels".into(), format!("invalid label value for '{k}'"))),
        }
    }
    labels
}

/// The documented limit of a server's cloud-init `user_data`: 32 KiB.
const USER_DATA_LIMIT: usize = 32 * 1024;

/// The fields `POST /v1/servers` documents.
const SERVER_FIELDS: &[&str] = &[
    "name",
    "server_type",
    "image",
    "location",
    "datacenter",
    "ssh_keys",
    "labels",
    "user_data",
    "start_after_create",
    "automount",
    "public_net",
    "networks",
    "volumes",
    "firewalls",
    "placement_group",
];

fn create_server(g: &mut Inner, body: &Map<String, Value>) -> Answer {
    let mut errors: FieldErrors = Vec::new();
    for key in body.keys() {
        if !SERVER_FIELDS.contains(&key.as_str()) {
            errors.push((key.clone(), "unknown field".into()));
        }
    }
    let required = |key: &str, errors: &mut FieldErrors| -> Option<String> {
        match body.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Number(n)) if key != "name" => Some(n.to_string()),
            None | Some(Value::Null) => {
                errors.push((key.into(), "Missing data for required field.".into()));
                None
            }
            Some(_) => {
                errors.push((key.into(), "Not a valid string.".into()));
                None
            }
        }
    };
    let name = required("name", &mut errors);
    let server_type = required("server_type", &mut errors);
    let image = required("image", &mut errors);
    if let Some(n) = &name {
        if !valid_hostname(n) {
            errors.push(("name".into(), "must be a valid hostname (RFC 1123)".into()));
        }
    }
    let type_spec = server_type.as_deref().and_then(|t| {
        let found = TYPES.iter().find(|s| s.name == t || s.id.to_string() == t);
        if found.is_none() {
            errors.push(("server_type".into(), format!("server type '{t}' not found")));
        }
        found
    });
    let image_spec = image.as_deref().and_then(|i| {
        let found = IMAGES.iter().find(|s| s.1 == i || s.0.to_string() == i);
        if found.is_none() {
            errors.push(("image".into(), format!("image '{i}' not found")));
        }
        found
    });
    let location = match body.get("location") {
        None | Some(Value::Null) => Some(&LOCATIONS[0]),
        Some(Value::String(l)) => {
            let found = LOCATIONS.iter().find(|s| s.1 == l);
            if found.is_none() {
                errors.push(("location".into(), format!("location '{l}' not found")));
            }
            found
        }
        Some(_) => {
            errors.push(("location".into(), "Not a valid string.".into()));
            None
        }
    };
    if let (Some(t), Some(l)) = (type_spec, location) {
        if t.elsewhere.is_none() && l.4 != "eu-central" {
            errors.push((
                "server_type".into(),
                format!(
                    "server type '{}' is not available in location '{}'",
                    t.name, l.1
                ),
            ));
        }
    }
    let mut key_ids = Vec::new();
    match body.get("ssh_keys") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let wanted = match item {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        errors.push(("ssh_keys".into(), "entries must be names or ids".into()));
                        continue;
                    }
                };
                match g
                    .ssh_keys
                    .values()
                    .find(|k| k.name == wanted || k.id.to_string() == wanted)
                {
                    Some(k) => key_ids.push(k.id),
                    None => {
                        errors.push(("ssh_keys".into(), format!("SSH key '{wanted}' not found")))
                    }
                }
            }
        }
        Some(_) => errors.push(("ssh_keys".into(), "must be a list".into())),
    }
    let labels = check_labels(body.get("labels"), &mut errors);
    let typed = |key: &str, ok: fn(&Value) -> bool, what: &str, errors: &mut FieldErrors| {
        if body.get(key).is_some_and(|v| !v.is_null() && !ok(v)) {
            errors.push((key.into(), format!("must be {what}")));
        }
    };
    typed("user_data", Value::is_string, "a string", &mut errors);
    if body
        .get("user_data")
        .and_then(Value::as_str)
        .is_some_and(|u| u.len() > USER_DATA_LIMIT)
    {
        errors.push((
            "user_data".into(),
            format!("must be at most {USER_DATA_LIMIT} bytes (32 KiB)"),
        ));
    }
    typed("datacenter", Value::is_string, "a string", &mut errors);
    typed(
        "start_after_create",
        Value::is_boolean,
        "a boolean",
        &mut errors,
    );
    typed("automount", Value::is_boolean, "a boolean", &mut errors);
    typed("public_net", Value::is_object, "an object", &mut errors);
    typed("networks", Value::is_array, "a list of ids", &mut errors);
    typed("volumes", Value::is_array, "a list of ids", &mut errors);
    typed("firewalls", Value::is_array, "a list", &mut errors);
    typed("placement_group", Value::is_i64, "an id", &mut errors);
    if !errors.is_empty() {
        return invalid_input(errors);
    }
    let (Some(name), Some(t), Some(img), Some(loc)) = (name, type_spec, image_spec, location)
    else {
        return invalid_input(vec![("name".into(), "incomplete request".into())]);
    };
    if g.servers.values().any(|e| e.server.name == name) {
        return uniqueness("server name is already used", "name");
    }
    let id = g.next_server_id;
    g.next_server_id += 1;
    let ipv4 = match g.server_ips.pop_front() {
        Some(ip) => ip,
        None => g.server_ip,
    }
    .to_string();
    let server = models::Server {
        backup_window: None,
        created: now_hetzner(),
        id,
        image: Some(Box::new(image_model(img.0, img.1, img.2, img.3))),
        included_traffic: Some(20 * TIB),
        ingoing_traffic: Some(0),
        iso: None,
        labels,
        load_balancers: Some(Vec::new()),
        location: Box::new(location_model(loc)),
        locked: false,
        name,
        outgoing_traffic: Some(0),
        placement_group: None,
        primary_disk_size: t.disk_gb as i32,
        private_net: Vec::new(),
        protection: Box::new(models::ServerProtection {
            delete: false,
            rebuild: false,
        }),
        public_net: Box::new(models::ServerPublicNet {
            firewalls: Some(Vec::new()),
            floating_ips: Vec::new(),
            ipv4: Some(Box::new(models::Ipv4 {
                blocked: false,
                dns_ptr: format!("static.{ipv4}.clients.your-server.de"),
                id: Some(id + 1_000_000),
                ip: ipv4,
            })),
            ipv6: Some(Box::new(models::Ipv6 {
                blocked: false,
                dns_ptr: Some(Vec::new()),
                id: Some(id + 2_000_000),
                // The documentation prefix: never routable.
                ip: "2001:db8::/64".into(),
            })),
        }),
        rescue_enabled: false,
        server_type: Box::new(type_model(t)),
        status: models::server::Status::Initializing,
        volumes: Some(Vec::new()),
    };
    let action = g.action("create_server", vec![(id, "server")]);
    let start = body
        .get("start_after_create")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let next_actions = if start {
        vec![g.action("start_server", vec![(id, "server")])]
    } else {
        Vec::new()
    };
    let root_password = key_ids.is_empty().then(|| format!("double-root-{id}"));
    let response = models::CreateServerResponse {
        action: Box::new(action),
        next_actions,
        root_password,
        server: Box::new(server.clone()),
    };
    g.servers.insert(
        id,
        ServerEntry {
            server,
            seen: false,
        },
    );
    (StatusCode::CREATED, to_value(&response))
}

fn list_ssh_keys(g: &Inner, query: &[(String, String)]) -> Answer {
    let (page, per_page) = match page_params(query) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let selector = match selector_param(query) {
        Ok(s) => s,
        Err(a) => return a,
    };
    let name = query_get(query, "name");
    let fp = query_get(query, "fingerprint");
    let matching: Vec<&models::SshKey> = g
        .ssh_keys
        .values()
        .filter(|k| {
            name.is_none_or(|n| n == k.name)
                && fp.is_none_or(|f| f == k.fingerprint)
                && selector
                    .as_ref()
                    .is_none_or(|r| selector_matches(r, &k.labels))
        })
        .collect();
    let total = matching.len();
    let keys = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    (
        StatusCode::OK,
        to_value(&models::ListSshKeysResponse {
            meta: Box::new(pagination(page, per_page, total)),
            ssh_keys: keys,
        }),
    )
}

/// Whether `key` looks like an OpenSSH public key line: a known type and a base64 blob.
fn valid_public_key(key: &str) -> bool {
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return false;
    };
    [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    ]
    .contains(&kind)
        && blob.starts_with("AAAA")
        && blob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
}

fn create_ssh_key(g: &mut Inner, body: &Map<String, Value>) -> Answer {
    let mut errors: FieldErrors = Vec::new();
    for key in body.keys() {
        if !["name", "public_key", "labels"].contains(&key.as_str()) {
            errors.push((key.clone(), "unknown field".into()));
        }
    }
    let text = |key: &str, errors: &mut FieldErrors| match body.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        None | Some(Value::Null) => {
            errors.push((key.into(), "Missing data for required field.".into()));
            None
        }
        Some(_) => {
            errors.push((key.into(), "Not a valid string.".into()));
            None
        }
    };
    let name = text("name", &mut errors);
    let public_key = text("public_key", &mut errors);
    if public_key.as_deref().is_some_and(|k| !valid_public_key(k)) {
        errors.push(("public_key".into(), "invalid public key".into()));
    }
    let labels = check_labels(body.get("labels"), &mut errors);
    if !errors.is_empty() {
        return invalid_input(errors);
    }
    let (Some(name), Some(public_key)) = (name, public_key) else {
        return invalid_input(vec![("name".into(), "incomplete request".into())]);
    };
    let fp = fingerprint(&public_key);
    if g.ssh_keys.values().any(|k| k.name == name) {
        return uniqueness("SSH key with the same name already exists", "name");
    }
    if g.ssh_keys.values().any(|k| k.fingerprint == fp) {
        return uniqueness(
            "SSH key with the same fingerprint already exists",
            "public_key",
        );
    }
    let id = g.next_key_id;
    g.next_key_id += 1;
    let key = models::SshKey {
        created: now_hetzner(),
        fingerprint: fp,
        id,
        labels,
        name,
        public_key,
    };
    g.ssh_keys.insert(id, key.clone());
    (
        StatusCode::CREATED,
        to_value(&models::CreateSshKeyResponse {
            ssh_key: Box::new(key),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_hetzner_style_decimal_strings() {
        let p = price("0.0070");
        assert_eq!(p.net, "0.0070000000000000");
        assert_eq!(p.gross, "0.0083300000000000");
        assert_eq!(price("13.6000").gross, "16.1840000000000000");
    }

    #[test]
    fn label_selectors() {
        let labels: HashMap<String, String> = [
            ("env".to_string(), "drill".to_string()),
            ("role".to_string(), "node".to_string()),
        ]
        .into();
        let yes = [
            "env=drill",
            "env==drill",
            "env",
            "!absent",
            "env in (a,drill)",
            "role!=x,env",
        ];
        for s in yes {
            assert!(
                selector_matches(&parse_selector(s).unwrap(), &labels),
                "{s}"
            );
        }
        let no = [
            "env=prod",
            "absent",
            "!env",
            "env notin (drill)",
            "env=drill,role=lock",
        ];
        for s in no {
            assert!(
                !selector_matches(&parse_selector(s).unwrap(), &labels),
                "{s}"
            );
        }
        assert!(parse_selector("env in drill").is_err());
        assert!(parse_selector("=x").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("lifeboat-a"));
        assert!(valid_hostname("a.b-c.d"));
        assert!(!valid_hostname("-bad"));
        assert!(!valid_hostname("under_score"));
        assert!(!valid_hostname(""));
    }
}
