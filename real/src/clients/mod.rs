//! The HTTP clients lifeboat uses against the real Telegram Bot API, GitHub Releases and
//! Hetzner Cloud.
//!
//! Why they are here: the node daemon and the Hetzner backend need exactly these calls,
//! and every client takes its base URL, so the same code runs against the real service in
//! production and against a double from [`crate::doubles`] in tests and rehearsals.
//!
//! Secrets: a client keeps its token to itself. Its `Debug` output shows `<redacted>`
//! instead, and no [`ClientError`] carries the token: the Telegram token travels in the
//! URL path, so transport errors are stripped of their URL and every error text is
//! scrubbed of the token. Every error names the service, the call and the HTTP status.

pub mod hetzner;
pub mod releases;
pub mod telegram;

pub use hetzner::HetznerClient;
pub use releases::ReleasesClient;
pub use telegram::TelegramClient;

use std::fmt;
use std::time::Duration;

/// The `User-Agent` every client sends (GitHub refuses requests without one).
pub const USER_AGENT: &str = concat!("lifeboat/", env!("CARGO_PKG_VERSION"));

/// How long a client waits to connect before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client waits for an ordinary call's answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call to one of the outside services.
#[derive(Debug)]
pub enum ClientError {
    /// The service answered with an error status.
    Status {
        /// The service, e.g. `Telegram Bot API`.
        service: &'static str,
        /// The call, e.g. `getUpdates`.
        call: &'static str,
        /// The HTTP status (Telegram: its `error_code`).
        status: u16,
        /// The service's machine-readable error code (`already_exists`, `invalid_input`,
        /// …), when it gives one.
        code: Option<String>,
        /// The service's description of the error.
        message: String,
        /// Seconds to wait before retrying, when the service says (Telegram's 429).
        retry_after: Option<u64>,
    },
    /// No answer: the connection failed, timed out or was cut.
    Transport {
        /// The service.
        service: &'static str,
        /// The call.
        call: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// An answer with a success status that is not what the service documents, or that
    /// lacks what was asked for (a price for an unknown location, …).
    Unexpected {
        /// The service.
        service: &'static str,
        /// The call.
        call: &'static str,
        /// The HTTP status of the answer, when known.
        status: Option<u16>,
        /// What was wrong with it.
        detail: String,
    },
    /// The client could not be set up or the request could not be built (a bad base URL).
    Setup {
        /// The service.
        service: &'static str,
        /// The call, or `new` for the client itself.
        call: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Status {
                service,
                call,
                status,
                code,
                message,
                ..
            } => {
                write!(f, "{service} {call}: HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " ({code})")?;
                }
                write!(f, ": {message}")
            }
            ClientError::Transport {
                service,
                call,
                detail,
            } => write!(
                f,
                "{service} {call}: no HTTP status, the request failed: {detail}"
            ),
            ClientError::Unexpected {
                service,
                call,
                status,
                detail,
            } => match status {
                Some(s) => write!(f, "{service} {call}: HTTP {s}, unexpected answer: {detail}"),
                None => write!(
                    f,
                    "{service} {call}: HTTP success status, unexpected answer: {detail}"
                ),
            },
            ClientError::Setup {
                service,
                call,
                detail,
            } => write!(f, "{service} {call}: no request sent: {detail}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Unexpected { status, .. } => *status,
            ClientError::Transport { .. } | ClientError::Setup { .. } => None,
        }
    }

    /// The service's machine-readable error code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The service's description of an error status, if there was one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ClientError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The service that failed.
    pub fn service(&self) -> &'static str {
        match self {
            ClientError::Status { service, .. }
            | ClientError::Transport { service, .. }
            | ClientError::Unexpected { service, .. }
            | ClientError::Setup { service, .. } => service,
        }
    }

    /// The call that failed.
    pub fn call(&self) -> &'static str {
        match self {
            ClientError::Status { call, .. }
            | ClientError::Transport { call, .. }
            | ClientError::Unexpected { call, .. }
            | ClientError::Setup { call, .. } => call,
        }
    }

    /// Replaces every occurrence of `secret` in the error's text with `<redacted>`.
    pub(crate) fn redact(mut self, secret: &str) -> ClientError {
        if secret.is_empty() {
            return self;
        }
        let scrub = |s: &mut String| {
            if s.contains(secret) {
                *s = s.replace(secret, "<redacted>");
            }
        };
        match &mut self {
            ClientError::Status { code, message, .. } => {
                scrub(message);
                if let Some(c) = code {
                    scrub(c);
                }
            }
            ClientError::Transport { detail, .. }
            | ClientError::Unexpected { detail, .. }
            | ClientError::Setup { detail, .. } => scrub(detail),
        }
        self
    }

    /// A transport failure, described without the request URL (which may hold a token).
    pub(crate) fn transport(
        service: &'static str,
        call: &'static str,
        err: reqwest::Error,
    ) -> ClientError {
        let err = err.without_url();
        let mut detail = if err.is_timeout() {
            "timed out".to_string()
        } else {
            err.to_string()
        };
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        ClientError::Transport {
            service,
            call,
            detail,
        }
    }
}

/// Shows a secret's first four characters and its length, never the rest:
/// `5000…(52 chars)`. Short secrets are shown as `****`.
pub fn mask_secret(secret: &str) -> String {
    let n = secret.chars().count();
    if n < 12 {
        return "****".into();
    }
    let head: String = secret.chars().take(4).collect();
    format!("{head}…({n} chars)")
}

/// The reqwest client every service client starts from: rustls, timeouts, our User-Agent.
pub(crate) fn http_client(service: &'static str) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| ClientError::Setup {
            service,
            call: "new",
            detail: e.without_url().to_string(),
        })
}

/// At most `max` characters of `text`, for quoting an answer in an error.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets() {
        assert_eq!(mask_secret("short"), "****");
        assert_eq!(mask_secret("123456789:abcdefghij"), "1234…(20 chars)");
    }

    #[test]
    fn redaction_covers_every_text() {
        let e = ClientError::Status {
            service: "Telegram Bot API",
            call: "getMe",
            status: 404,
            code: Some("tok".into()),
            message: "no /bottok/getMe".into(),
            retry_after: None,
        }
        .redact("tok");
        assert!(!e.to_string().contains("tok"), "{e}");
        assert!(!format!("{e:?}").contains("tok"), "{e:?}");
    }
}
