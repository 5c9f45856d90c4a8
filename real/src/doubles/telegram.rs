//! A local double of the Telegram Bot API, for one bot.
//!
//! It exists so that lifeboat's real Telegram client (and a real node daemon) can be run
//! against something that behaves like `api.telegram.org` without a bot: long polls that
//! really wait, offsets that confirm updates, redelivery of unconfirmed updates, and the
//! 409 `Conflict: terminated by other getUpdates request` that ends a poll when a second
//! poller arrives. Those semantics are not reimplemented here: the double wraps the
//! model's pure [`BotApi`] (the same state machine the simulator runs) in HTTP, feeding it
//! wall-clock time measured from the double's start.
//!
//! Bot API routes (`/bot<token>/<method>`, GET or POST with a query string, a JSON body or
//! a form body; method names are case-insensitive as in Telegram):
//! - `getMe` → the bot's User;
//! - `getUpdates` (`offset`, `limit` 1–100, `timeout` seconds) → an array of Update;
//! - `sendMessage` (`chat_id`, `text`) → the sent Message.
//!
//! Every answer is `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":…}`
//! with the HTTP status equal to `error_code`; a wrong token is `401 Unauthorized`.
//!
//! Test-only routes, which the real API does not have:
//! - `POST /inject/message {"chat_id":…,"text":…}` → `{"update_id":…}`: a user writes to
//!   the bot (a waiting long poll returns it at once);
//! - `GET /inject/replies` → every message the bot sent, as [`SentReply`] objects;
//! - `POST /inject/fault {"code":502}` makes every Bot API call fail with that code until
//!   `DELETE /inject/fault`;
//! - `GET /inject/history?since=N` → what the double saw as model history events
//!   (polls started and ended, 409s with their culprit, deliveries, replies, messages
//!   sent), stamped with true time: a drill merges them into its history.
//!
//! A caller that sends the [`CALLER_HEADER`] (`X-Lifeboat-Node: b`) is recorded as that
//! node; any other caller is a foreign poller to the history. A `sendMessage` whose
//! `reply_parameters.message_id` (or `reply_to_message_id`) names a message a user sent
//! is recorded as the answer to that message's update.

use super::{parse_query, spawn_router, unix_now, ServerTask};
use crate::clients::telegram::{CALLER_HEADER, TOKEN_HEADER};
use crate::events::{EventLog, HistoryPage};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use lifeboat_model::history::Event;
use lifeboat_model::lease::Reply;
use lifeboat_model::proto::{From, ReqId, Response as ModelResponse, TgResp, Update};
use lifeboat_model::telegram::{ApiFault, BotApi, MAX_UPDATES};
use lifeboat_model::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The token `lifeboat serve telegram` uses when none is given. It is not a secret: it
/// only opens this double.
pub const TEST_TOKEN: &str = "5000000001:LIFEBOAT-DOUBLE-test-token-not-a-secret";

/// The double bot's `username`.
pub const BOT_USERNAME: &str = "lifeboat_double_bot";

/// The longest long poll the double holds, in seconds; longer timeouts are cut to this.
pub const MAX_POLL_SECS: i64 = 3600;

/// A caller that does not name itself: to [`BotApi`] one more poller, to the history a
/// foreign one. Requests are told apart by their request id, unique per double.
const ANONYMOUS: NodeId = NodeId(25);

fn caller_from(node: Option<NodeId>) -> From {
    From {
        node: node.unwrap_or(ANONYMOUS),
        incarnation: 0,
    }
}

/// The history's view of an event: anonymous callers are foreign pollers, and what they
/// were delivered or sent is not ours to judge.
fn foreign_view(e: Event) -> Option<Event> {
    let ours = |n: Option<NodeId>| n.filter(|n| *n != ANONYMOUS);
    match e {
        Event::PollStarted {
            node,
            poll,
            offset,
            timeout,
        } => Some(Event::PollStarted {
            node: ours(node),
            poll,
            offset,
            timeout,
        }),
        Event::PollEnded {
            node,
            poll,
            outcome,
            by,
        } => Some(Event::PollEnded {
            node: ours(node),
            poll,
            outcome,
            by: by.map(ours),
        }),
        Event::ChatDelivered { node, .. } | Event::ChatReplied { node, .. }
            if node == ANONYMOUS =>
        {
            None
        }
        other => Some(other),
    }
}

/// A message the bot sent with `sendMessage`, as `GET /inject/replies` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentReply {
    /// The chat it went to.
    pub chat_id: i64,
    /// Its text.
    pub text: String,
    /// The `message_id` the double gave it.
    pub message_id: i64,
    /// When it arrived, in milliseconds since the double started.
    pub time_ms: u64,
    /// When it arrived, in Unix seconds (Telegram's `date`).
    pub date: u64,
}

/// What the double remembers about an injected user message beyond [`Update`].
#[derive(Clone, Copy, Debug)]
struct Incoming {
    message_id: i64,
    date: u64,
}

struct Inner {
    api: BotApi,
    next_req: ReqId,
    /// Open HTTP requests waiting for their answer from [`BotApi`].
    waiters: HashMap<ReqId, oneshot::Sender<TgResp>>,
    /// The HTTP request whose long poll is the active one inside [`BotApi`], if any.
    active: Option<ReqId>,
    incoming: HashMap<i64, Incoming>,
    next_incoming_message_id: i64,
    fault: Option<u16>,
    replies: Vec<SentReply>,
    /// Users' message ids to their updates, for replies that name the message.
    message_updates: HashMap<i64, i64>,
}

impl Inner {
    /// Hands each reply [`BotApi`] emitted to the HTTP request waiting for it.
    fn deliver(&mut self, replies: Vec<Reply>) {
        for reply in replies {
            if self.active == Some(reply.req) {
                self.active = None;
            }
            if let (Some(tx), ModelResponse::Telegram(resp)) =
                (self.waiters.remove(&reply.req), reply.resp)
            {
                // The receiver is gone when the client hung up; nothing to do then.
                let _ = tx.send(resp);
            }
        }
    }
}

struct Shared {
    token: String,
    bot_id: i64,
    start: Instant,
    inner: Mutex<Inner>,
    log: EventLog,
}

impl Shared {
    /// Records what [`BotApi`] emitted, as the history sees it.
    fn record(&self, events: Vec<Event>) {
        for e in events.into_iter().filter_map(foreign_view) {
            self.log.record(e);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wall-clock time since the double started, as the model's [`Millis`].
    fn now(&self) -> Millis {
        Millis(self.start.elapsed().as_millis() as u64)
    }

    fn instant_at(&self, t: Millis) -> Instant {
        self.start + std::time::Duration::from_millis(t.0)
    }

    fn inject(&self, chat_id: i64, text: &str) -> i64 {
        let mut g = self.lock();
        let (mut replies, mut events) = (Vec::new(), Vec::new());
        let update_id = g.api.user_message(chat_id, text, &mut replies, &mut events);
        let message_id = g.next_incoming_message_id;
        g.next_incoming_message_id += 1;
        g.incoming.insert(
            update_id,
            Incoming {
                message_id,
                date: unix_now(),
            },
        );
        g.message_updates.insert(message_id, update_id);
        g.deliver(replies);
        self.record(events);
        update_id
    }

    fn set_fault(&self, code: Option<u16>) {
        let mut g = self.lock();
        g.fault = code;
        g.api.set_fault(code.map(|code| ApiFault::Errors { code }));
    }
}

/// A Telegram Bot API double: a cheap handle to its state, shared with the server task.
#[derive(Clone)]
pub struct TelegramDouble {
    shared: Arc<Shared>,
}

impl fmt::Debug for TelegramDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramDouble")
            .field("bot_id", &self.shared.bot_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl TelegramDouble {
    /// A double for the bot with this token; its clock starts now.
    ///
    /// The bot's id is the token's part before `:`, as in real tokens (1 if that is not a
    /// number).
    pub fn new(token: impl Into<String>) -> TelegramDouble {
        let token = token.into();
        let bot_id = token
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .unwrap_or(1);
        TelegramDouble {
            shared: Arc::new(Shared {
                token,
                bot_id,
                start: Instant::now(),
                inner: Mutex::new(Inner {
                    api: BotApi::new(),
                    next_req: 1,
                    waiters: HashMap::new(),
                    active: None,
                    incoming: HashMap::new(),
                    next_incoming_message_id: 1,
                    fault: None,
                    replies: Vec::new(),
                    message_updates: HashMap::new(),
                }),
                log: EventLog::new(),
            }),
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
            .route("/inject/message", post(inject_message))
            .route("/inject/replies", get(inject_replies))
            .route("/inject/fault", post(inject_fault).delete(clear_fault))
            .route("/inject/history", get(inject_history))
            .route("/{bot}/{method}", any(bot_call))
            .fallback(|| async { tg_error(404, "Not Found", None) })
            .with_state(self.shared.clone())
    }

    /// A user sends the bot `text` in `chat_id`; returns the new update's id.
    pub fn inject_message(&self, chat_id: i64, text: &str) -> i64 {
        self.shared.inject(chat_id, text)
    }

    /// Every message the bot has sent so far, oldest first.
    pub fn replies(&self) -> Vec<SentReply> {
        self.shared.lock().replies.clone()
    }

    /// Makes every Bot API call fail with `code` (`None` clears the fault).
    pub fn set_fault(&self, code: Option<u16>) {
        self.shared.set_fault(code);
    }

    /// Updates not yet confirmed by an offset.
    pub fn pending(&self) -> usize {
        self.shared.lock().api.pending()
    }
}

/// Starts a Telegram Bot API double for `token` on `addr`; returns the bound address and
/// the server task. Use [`TelegramDouble`] to keep a handle on its state.
pub async fn serve_telegram(
    addr: SocketAddr,
    token: String,
) -> anyhow::Result<(SocketAddr, ServerTask)> {
    TelegramDouble::new(token).serve(addr).await
}

fn tg_ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn tg_error(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({ "retry_after": s });
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn tg_resp_error(resp: TgResp) -> Response {
    match resp {
        TgResp::Error {
            code,
            description,
            retry_after,
        } => tg_error(
            code,
            &description,
            retry_after.map(|m| m.0.div_ceil(1000).max(1)),
        ),
        TgResp::Updates(_) | TgResp::Sent { .. } => {
            tg_error(500, "Internal Server Error: unexpected answer", None)
        }
    }
}

/// The fault answer for calls that [`BotApi`] does not see (`getMe`), worded as it words
/// its own.
fn fault_answer(code: u16) -> Response {
    if code == 429 {
        tg_error(code, "Too Many Requests: retry after 1", Some(1))
    } else {
        tg_error(code, &format!("Internal Server Error ({code})"), None)
    }
}

/// Collects a call's parameters from the query string and the body (JSON or form).
fn call_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    for (k, v) in parse_query(query.unwrap_or("")) {
        params.insert(k, Value::String(v));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => params.extend(m),
            Ok(_) => return Err("Bad Request: the body must be a JSON object".into()),
            Err(e) => return Err(format!("Bad Request: can't parse JSON: {e}")),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(body).map_err(|_| "Bad Request: body is not UTF-8")?;
        for (k, v) in parse_query(text) {
            params.insert(k, Value::String(v));
        }
    } else {
        return Err(format!(
            "Bad Request: unsupported Content-Type `{content_type}`"
        ));
    }
    Ok(params)
}

/// An integer parameter, given as a JSON number or a decimal string.
fn int_param(params: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("Bad Request: invalid {key} specified")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("Bad Request: invalid {key} specified")),
        Some(_) => Err(format!("Bad Request: invalid {key} specified")),
    }
}

async fn bot_call(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    http_method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return tg_error(404, "Not Found", None);
    };
    if token != shared.token {
        return tg_error(401, "Unauthorized", None);
    }
    if http_method != Method::GET && http_method != Method::POST {
        return tg_error(405, "Method Not Allowed", None);
    }
    let params = match call_params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(description) => return tg_error(400, &description, None),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let caller = header(CALLER_HEADER).and_then(|v| NodeId::parse(v.trim()).ok());
    let token = header(TOKEN_HEADER).and_then(|v| v.trim().parse::<u64>().ok());
    match method.to_ascii_lowercase().as_str() {
        "getme" => get_me(&shared),
        "getupdates" => get_updates(shared, caller, &params).await,
        "sendmessage" => send_message(&shared, caller, token, &params),
        _ => tg_error(404, "Not Found: method not found", None),
    }
}

fn get_me(shared: &Shared) -> Response {
    if let Some(code) = shared.lock().fault {
        return fault_answer(code);
    }
    tg_ok(json!({
        "id": shared.bot_id,
        "is_bot": true,
        "first_name": "lifeboat double",
        "username": BOT_USERNAME,
        "can_join_groups": true,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false,
    }))
}

/// Ends the long poll inside [`BotApi`] when the HTTP request goes away unanswered (the
/// client hung up), as Telegram ends a poll whose connection closed.
struct PollGuard {
    shared: Arc<Shared>,
    req: ReqId,
    caller: From,
    finished: bool,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut g = self.shared.lock();
        g.waiters.remove(&self.req);
        if g.active == Some(self.req) {
            let mut events = Vec::new();
            g.api.disconnect_from(self.caller, &mut events);
            g.active = None;
            self.shared.record(events);
        }
    }
}

async fn get_updates(
    shared: Arc<Shared>,
    caller: Option<NodeId>,
    params: &Map<String, Value>,
) -> Response {
    let caller = caller_from(caller);
    let (offset, limit, timeout) = match (
        int_param(params, "offset"),
        int_param(params, "limit"),
        int_param(params, "timeout"),
    ) {
        (Ok(o), Ok(l), Ok(t)) => (o, l, t),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return tg_error(400, &e, None),
    };
    let limit = limit
        .unwrap_or(MAX_UPDATES as i64)
        .clamp(1, MAX_UPDATES as i64) as usize;
    let timeout = Millis::secs(timeout.unwrap_or(0).clamp(0, MAX_POLL_SECS) as u64);

    let (tx, mut rx) = oneshot::channel();
    let (req, mut deadline) = {
        let mut g = shared.lock();
        let req = g.next_req;
        g.next_req += 1;
        g.waiters.insert(req, tx);
        let now = shared.now();
        let (mut replies, mut events) = (Vec::new(), Vec::new());
        g.api.get_updates(
            now,
            Some(caller),
            req,
            offset,
            timeout,
            &mut replies,
            &mut events,
        );
        let answered = replies.iter().any(|r| r.req == req);
        g.deliver(replies);
        if !answered {
            g.active = Some(req);
        }
        if let Some(o) = offset.filter(|o| *o >= 0) {
            g.incoming.retain(|id, _| *id >= o);
        }
        // Recorded under the double's lock, so the history keeps BotApi's order.
        shared.record(events);
        drop(g);
        (req, now + timeout)
    };
    let mut guard = PollGuard {
        shared: shared.clone(),
        req,
        caller,
        finished: false,
    };
    let answer = loop {
        tokio::select! {
            biased;
            answer = &mut rx => break answer,
            _ = tokio::time::sleep_until(shared.instant_at(deadline)) => {
                let mut g = shared.lock();
                let (mut replies, mut events) = (Vec::new(), Vec::new());
                g.api.advance(shared.now(), &mut replies, &mut events);
                g.deliver(replies);
                shared.record(events);
                drop(g);
                // The timeout has passed, so `advance` answered this poll; should it
                // somehow not have, look again a little later rather than spin.
                deadline = deadline + Millis(10);
            }
        }
    };
    guard.finished = true;
    match answer {
        Ok(TgResp::Updates(updates)) => {
            let g = shared.lock();
            let list: Vec<Value> = updates
                .iter()
                .take(limit)
                .map(|u| update_json(u, g.incoming.get(&u.update_id).copied()))
                .collect();
            tg_ok(Value::Array(list))
        }
        Ok(other) => tg_resp_error(other),
        Err(_) => tg_error(500, "Internal Server Error: poll abandoned", None),
    }
}

/// An Update as the Bot API serializes it; the sender of a private chat is the chat's
/// user, as in Telegram (group chats have negative ids).
fn update_json(u: &Update, meta: Option<Incoming>) -> Value {
    let meta = meta.unwrap_or(Incoming {
        message_id: 0,
        date: unix_now(),
    });
    let (chat, from_id) = if u.chat_id >= 0 {
        (
            json!({"id": u.chat_id, "type": "private", "first_name": "Operator"}),
            u.chat_id,
        )
    } else {
        (
            json!({"id": u.chat_id, "type": "group", "title": "lifeboat drill"}),
            1,
        )
    };
    json!({
        "update_id": u.update_id,
        "message": {
            "message_id": meta.message_id,
            "from": {"id": from_id, "is_bot": false, "first_name": "Operator"},
            "chat": chat,
            "date": meta.date,
            "text": u.text,
        }
    })
}

fn send_message(
    shared: &Shared,
    caller: Option<NodeId>,
    token: Option<u64>,
    params: &Map<String, Value>,
) -> Response {
    let chat_id = match params.get("chat_id") {
        None | Some(Value::Null) => return tg_error(400, "Bad Request: chat_id is empty", None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return tg_error(400, "Bad Request: chat_id is empty", None)
        }
        Some(Value::String(s)) if s.starts_with('@') => {
            return tg_error(400, "Bad Request: chat not found", None)
        }
        Some(_) => match int_param(params, "chat_id") {
            Ok(Some(id)) => id,
            _ => return tg_error(400, "Bad Request: chat not found", None),
        },
    };
    let text = match params.get("text") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return tg_error(400, "Bad Request: message text is empty", None),
    };
    if text.chars().count() > 4096 {
        return tg_error(400, "Bad Request: message is too long", None);
    }
    let reply_to_message = params
        .get("reply_parameters")
        .and_then(|p| p.get("message_id"))
        .and_then(Value::as_i64)
        .or_else(|| int_param(params, "reply_to_message_id").ok().flatten());
    let mut g = shared.lock();
    let req = g.next_req;
    g.next_req += 1;
    let (mut replies, mut events) = (Vec::new(), Vec::new());
    // The update answered, found from the message replied to; 0 when none is named.
    let reply_to = reply_to_message
        .and_then(|m| g.message_updates.get(&m).copied())
        .unwrap_or(0);
    g.api.send_message(
        caller_from(caller),
        req,
        reply_to,
        token,
        &mut replies,
        &mut events,
    );
    if reply_to == 0 {
        // Not an answer to a user's message: nothing for the history's chat checker.
        events.retain(|e| !matches!(e, Event::ChatReplied { .. }));
    }
    // The double sees which node called, not which process incarnation.
    for e in &mut events {
        if let Event::ChatReplied { incarnation, .. } = e {
            *incarnation = None;
        }
    }
    shared.record(events);
    let resp = replies.into_iter().find(|r| r.req == req).map(|r| r.resp);
    match resp {
        Some(ModelResponse::Telegram(TgResp::Sent { message_id })) => {
            let date = unix_now();
            g.replies.push(SentReply {
                chat_id,
                text: text.clone(),
                message_id,
                time_ms: shared.now().0,
                date,
            });
            let chat_type = if chat_id >= 0 { "private" } else { "group" };
            tg_ok(json!({
                "message_id": message_id,
                "from": {
                    "id": shared.bot_id,
                    "is_bot": true,
                    "first_name": "lifeboat double",
                    "username": BOT_USERNAME,
                },
                "chat": {"id": chat_id, "type": chat_type},
                "date": date,
                "text": text,
            }))
        }
        Some(ModelResponse::Telegram(other)) => tg_resp_error(other),
        _ => tg_error(500, "Internal Server Error: no answer", None),
    }
}

/// The body of `POST /inject/message`.
#[derive(Deserialize)]
struct InjectMessage {
    chat_id: i64,
    text: String,
}

/// The body of `POST /inject/fault`.
#[derive(Deserialize)]
struct InjectFault {
    code: u16,
}

fn inject_error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn inject_message(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<InjectMessage>(&body) {
        Ok(m) => {
            let update_id = shared.inject(m.chat_id, &m.text);
            Json(json!({ "update_id": update_id })).into_response()
        }
        Err(e) => inject_error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"chat_id\": <integer>, \"text\": <string>}}: {e}"),
        ),
    }
}

async fn inject_history(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let since = parse_query(query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "since")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let (entries, next) = shared.log.since(since);
    Json(HistoryPage { entries, next }).into_response()
}

async fn inject_replies(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().replies.clone()).into_response()
}

async fn inject_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<InjectFault>(&body) {
        Ok(InjectFault { code }) if (400..=599).contains(&code) => {
            shared.set_fault(Some(code));
            Json(json!({ "fault": code })).into_response()
        }
        Ok(InjectFault { code }) => inject_error(
            StatusCode::BAD_REQUEST,
            format!("a fault code is an HTTP error status (400-599), not {code}"),
        ),
        Err(e) => inject_error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"code\": <HTTP status>}}: {e}"),
        ),
    }
}

async fn clear_fault(State(shared): State<Arc<Shared>>) -> Response {
    shared.set_fault(None);
    Json(json!({ "fault": null })).into_response()
}
