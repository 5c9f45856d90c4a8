//! Local doubles of the three outside services lifeboat talks to: the Telegram Bot API,
//! GitHub Releases and the Hetzner Cloud API.
//!
//! Why they exist: a drill must be rehearsable without a bot, a repository or a cloud
//! account, and the real clients in [`crate::clients`] must be tested against something
//! that answers the way the real services do. Each double speaks the documented HTTP and
//! JSON of its service (the subset lifeboat uses), checks what the real service checks
//! (tokens, required fields, duplicates), keeps its state in memory and binds to any local
//! address (`127.0.0.1:0` picks a free port). `lifeboat serve …` runs one from the command
//! line.

pub mod hetzner;
pub mod releases;
pub mod telegram;

pub use hetzner::{serve_hetzner, HetznerDouble};
pub use releases::{serve_releases, ReleasesDouble};
pub use telegram::{serve_telegram, TelegramDouble};

use anyhow::Context;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The task serving a running double. It runs until aborted (or until its runtime ends);
/// it finishes by itself only when accepting connections fails.
pub type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Binds `addr` and serves `router` on it in a new task; returns the bound address.
pub(crate) async fn spawn_router(
    addr: SocketAddr,
    router: axum::Router,
) -> anyhow::Result<(SocketAddr, ServerTask)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((bound, task))
}

/// A double's state behind one lock, with the API token it accepts.
pub(crate) struct Guarded<T> {
    /// The token requests must carry.
    pub(crate) token: String,
    inner: std::sync::Mutex<T>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(token: String, inner: T) -> Guarded<T> {
        Guarded {
            token,
            inner: std::sync::Mutex::new(inner),
        }
    }

    /// The state; a handler that panicked mid-update leaves it usable for the next one.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the Unix epoch, from the wall clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats Unix seconds as an ISO 8601 UTC timestamp, `2026-11-05T09:30:00Z`.
pub(crate) fn iso8601(unix_secs: u64) -> String {
    chrono::DateTime::from_timestamp(unix_secs as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses `a=1&b=two` (a query string or a form body) into decoded pairs, in order;
/// invalid escapes stay as they are.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The first value of `key` in parsed query pairs.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The path's segments, percent-decoded, without empty ones.
pub(crate) fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The token from an `Authorization: Bearer <token>` header (GitHub also accepts
/// `token <token>`, so the prefixes are passed in).
pub(crate) fn bearer<'a>(headers: &'a axum::http::HeaderMap, prefixes: &[&str]) -> Option<&'a str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    prefixes.iter().find_map(|p| {
        let (scheme, rest) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case(p).then(|| rest.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn query_pairs_decode() {
        let q = parse_query("name=a%20b&label_selector=k%3Dv&x=1+2&flag");
        assert_eq!(query_get(&q, "name"), Some("a b"));
        assert_eq!(query_get(&q, "label_selector"), Some("k=v"));
        assert_eq!(query_get(&q, "x"), Some("1 2"));
        assert_eq!(query_get(&q, "flag"), Some(""));
        assert_eq!(path_segments("/100%/%zz%4"), ["100%", "%zz%4"]);
    }
}
