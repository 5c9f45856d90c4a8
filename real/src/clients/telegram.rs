//! The Telegram Bot API client: the three calls a lifeboat node makes as the bot.
//!
//! It exists so that the node daemon talks to the real Bot API with the same code that
//! the tests run against [`crate::doubles::telegram`]: `getMe` to check the token,
//! `getUpdates` long polls to read operators' commands (the offset confirms what was
//! handled), and `sendMessage` to answer. Calls are POSTs with a JSON body to
//! `<base>/bot<token>/<method>`. The token is part of that URL, so it is kept out of every
//! error and out of `Debug`.

use super::{excerpt, http_client, ClientError, CALL_TIMEOUT};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;

const SERVICE: &str = "Telegram Bot API";

/// The real Bot API's base URL.
pub const OFFICIAL_BASE: &str = "https://api.telegram.org";

/// How much longer than the long-poll timeout the client waits for an answer before it
/// calls the poll lost.
pub const POLL_GRACE: Duration = Duration::from_secs(15);

/// A Telegram user or bot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// Whether it is a bot.
    pub is_bot: bool,
    /// Its first name.
    pub first_name: String,
    /// Its username, if it has one.
    #[serde(default)]
    pub username: Option<String>,
}

/// A chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// Its id (negative for groups).
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id within the chat.
    pub message_id: i64,
    /// Its sender, if any.
    #[serde(default)]
    pub from: Option<User>,
    /// The chat it belongs to.
    pub chat: Chat,
    /// When it was sent, in Unix seconds.
    pub date: i64,
    /// Its text, for text messages.
    #[serde(default)]
    pub text: Option<String>,
}

/// An update from `getUpdates`. Updates of kinds lifeboat does not read (edits, …) come
/// with `message: None`; they still count for the offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Its id; confirm it with an offset above it.
    pub update_id: i64,
    /// The new message, if this update is one.
    #[serde(default)]
    pub message: Option<Message>,
}

impl Update {
    /// The update as the model's node sees it: a text message in a chat. `None` for
    /// updates without a text message.
    pub fn to_model(&self) -> Option<lifeboat_model::proto::Update> {
        let m = self.message.as_ref()?;
        Some(lifeboat_model::proto::Update {
            update_id: self.update_id,
            chat_id: m.chat.id,
            text: m.text.clone()?,
        })
    }
}

/// The Bot API's answer envelope.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// The header that names the calling node to a lifeboat double (the real Bot API
/// ignores unknown headers), so the double's history can say which node polled.
pub const CALLER_HEADER: &str = "X-Lifeboat-Node";

/// The header that carries the fencing token a reply was sent under, for the history.
pub const TOKEN_HEADER: &str = "X-Lifeboat-Token";

/// A client for one bot.
#[derive(Clone)]
pub struct TelegramClient {
    base: Url,
    token: String,
    http: reqwest::Client,
    caller: Option<String>,
}

impl fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramClient")
            .field("base", &self.base.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl TelegramClient {
    /// A client for the bot with `token`, calling the Bot API at `base` (e.g.
    /// `https://api.telegram.org`, or a double's `http://127.0.0.1:PORT`).
    pub fn new(base: Url, token: impl Into<String>) -> Result<TelegramClient, ClientError> {
        let token = token.into();
        if token.is_empty() || token.contains(['/', '?', '#', ' ']) {
            return Err(ClientError::Setup {
                service: SERVICE,
                call: "new",
                detail: "the bot token is empty or contains characters a token cannot have".into(),
            });
        }
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Setup {
                service: SERVICE,
                call: "new",
                detail: format!("`{base}` is not an http(s) base URL"),
            });
        }
        Ok(TelegramClient {
            base,
            token,
            http: http_client(SERVICE)?,
            caller: None,
        })
    }

    /// The same client, naming itself as node `caller` in a [`CALLER_HEADER`] on every
    /// call (a lifeboat double records it; Telegram ignores it).
    pub fn with_caller(mut self, caller: impl Into<String>) -> TelegramClient {
        self.caller = Some(caller.into());
        self
    }

    /// A client for the bot with `token` on the real Bot API.
    pub fn official(token: impl Into<String>) -> Result<TelegramClient, ClientError> {
        let base = Url::parse(OFFICIAL_BASE).expect("the official base URL parses");
        TelegramClient::new(base, token)
    }

    /// The base URL the client calls.
    pub fn base(&self) -> &Url {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        call: &'static str,
        params: Value,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.call_with(call, params, timeout, None).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        call: &'static str,
        params: Value,
        timeout: Duration,
        fencing_token: Option<u64>,
    ) -> Result<T, ClientError> {
        let url = format!(
            "{}/bot{}/{call}",
            self.base.as_str().trim_end_matches('/'),
            self.token
        );
        let result = async {
            let mut req = self.http.post(url).timeout(timeout).json(&params);
            if let Some(c) = &self.caller {
                req = req.header(CALLER_HEADER, c);
            }
            if let Some(t) = fencing_token {
                req = req.header(TOKEN_HEADER, t.to_string());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ClientError::transport(SERVICE, call, e))?;
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|e| ClientError::transport(SERVICE, call, e))?;
            let envelope: Envelope =
                serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
                    service: SERVICE,
                    call,
                    status: Some(status),
                    detail: format!(
                        "not a Bot API answer ({e}): {}",
                        excerpt(&String::from_utf8_lossy(&body), 200)
                    ),
                })?;
            if !envelope.ok {
                return Err(ClientError::Status {
                    service: SERVICE,
                    call,
                    status: envelope.error_code.unwrap_or(status),
                    code: None,
                    message: envelope.description.unwrap_or_default(),
                    retry_after: envelope.parameters.and_then(|p| p.retry_after),
                });
            }
            serde_json::from_value(envelope.result.unwrap_or(Value::Null)).map_err(|e| {
                ClientError::Unexpected {
                    service: SERVICE,
                    call,
                    status: Some(status),
                    detail: format!("`result` is not the documented shape: {e}"),
                }
            })
        }
        .await;
        result.map_err(|e| e.redact(&self.token))
    }

    /// `getMe`: the bot itself; checks that the token works.
    pub async fn get_me(&self) -> Result<User, ClientError> {
        self.call("getMe", json!({}), CALL_TIMEOUT).await
    }

    /// `getUpdates`: waits up to `timeout_secs` for updates from `offset` on (`None`: from
    /// the earliest unconfirmed). Calling it with an offset confirms every update below
    /// the offset. A newer `getUpdates` from another poller ends this one with a 409
    /// [`ClientError::Status`].
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u32,
    ) -> Result<Vec<Update>, ClientError> {
        let mut params = json!({ "timeout": timeout_secs });
        if let Some(o) = offset {
            params["offset"] = json!(o);
        }
        let wait = Duration::from_secs(u64::from(timeout_secs)) + POLL_GRACE;
        self.call("getUpdates", params, wait).await
    }

    /// `sendMessage` as a reply to message `reply_to` of that chat (the Bot API's
    /// `reply_parameters`), sent under `fencing_token` (reported in [`TOKEN_HEADER`]).
    pub async fn send_reply(
        &self,
        chat_id: i64,
        text: &str,
        reply_to: i64,
        fencing_token: Option<u64>,
    ) -> Result<Message, ClientError> {
        self.call_with(
            "sendMessage",
            json!({
                "chat_id": chat_id,
                "text": text,
                "reply_parameters": { "message_id": reply_to, "allow_sending_without_reply": true },
            }),
            CALL_TIMEOUT,
            fencing_token,
        )
        .await
    }

    /// `sendMessage`: sends `text` to `chat_id`; returns the sent message.
    pub async fn send_message(&self, chat_id: i64, text: &str) -> Result<Message, ClientError> {
        self.call(
            "sendMessage",
            json!({ "chat_id": chat_id, "text": text }),
            CALL_TIMEOUT,
        )
        .await
    }
}
