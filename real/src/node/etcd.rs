//! The lease store for `fenced`: etcd, through its v3 JSON gateway.
//!
//! Why: the model's [`LeaseReq`]s have etcd's semantics ([`lifeboat_model::lease`] keeps
//! them for the sim); this carries each one to a real etcd over HTTP and maps the answer
//! back, so the node's code is the same in both worlds:
//!
//! - `Grant` → `POST /v3/lease/grant` (etcd counts TTLs in whole seconds; the model's TTL
//!   is rounded up);
//! - `KeepAlive` → `POST /v3/lease/keepalive` (one message; TTL 0 or absent: gone);
//! - `Campaign` → `POST /v3/kv/txn` comparing the key's `create_revision` with 0, putting
//!   the node's name attached to its lease, else reading the key; the key's
//!   `mod_revision` is the fencing token;
//! - `Get` → `POST /v3/kv/range`;
//! - `Watch` → the key read every [`WATCH_POLL`] until its revision moves past the one
//!   the node saw or the watch times out (a poll, not etcd's streaming watch: the answer
//!   is the same, a little later);
//! - `Revoke` → `POST /v3/lease/revoke`.
//!
//! Keys and values are base64, 64-bit integers are JSON strings, and fields equal to
//! their default (`false`, `0`) are left out, as the gateway does.

use base64::Engine;
use lifeboat_model::proto::{Holder, LeaseReq, LeaseResp, LEADER_KEY};
use lifeboat_model::Millis;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// How often a watch reads the key.
pub const WATCH_POLL: Duration = Duration::from_millis(100);

/// One call's time limit (the node's own request timer usually fires first).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for one etcd endpoint.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    base: String,
    http: reqwest::Client,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// An int64 the gateway wrote as a string (or a number); absent means 0.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn revision(v: &Value) -> u64 {
    int(&v["header"]["revision"]).max(0) as u64
}

fn holder(kvs: &Value) -> Option<Holder> {
    let kv = kvs.as_array()?.first()?;
    Some(Holder {
        value: unb64(kv["value"].as_str().unwrap_or("")),
        revision: int(&kv["mod_revision"]).max(0) as u64,
        lease: int(&kv["lease"]),
    })
}

impl EtcdClient {
    /// A client for etcd at `base` (e.g. `http://172.18.0.2:2379`).
    pub fn new(base: &str) -> anyhow::Result<EtcdClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(EtcdClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("etcd {path}: {}", e.without_url()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("etcd {path}: {}", e.without_url()))?;
        // A streaming call answers `{"result": …}` (or `{"error": …}`), one per line.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("{}");
        let v: Value = serde_json::from_str(first)
            .map_err(|e| format!("etcd {path}: HTTP {status}, not JSON ({e})"))?;
        let v = match v.get("result") {
            Some(r) => r.clone(),
            None => v,
        };
        if !status.is_success() || v.get("error").is_some() {
            let msg = v["error"]
                .as_str()
                .or(v["message"].as_str())
                .or(v["error"]["message"].as_str())
                .unwrap_or("error");
            return Err(format!("etcd {path}: HTTP {status}: {msg}"));
        }
        Ok(v)
    }

    async fn range(&self) -> Result<(Option<Holder>, u64), String> {
        let v = self
            .post("/v3/kv/range", json!({ "key": b64(LEADER_KEY) }))
            .await?;
        Ok((holder(&v["kvs"]), revision(&v)))
    }

    /// Carries out one lease store request.
    pub async fn call(&self, req: LeaseReq) -> Result<LeaseResp, String> {
        match req {
            LeaseReq::Grant { ttl } => {
                let secs = ttl.0.div_ceil(1000).max(1);
                let v = self.post("/v3/lease/grant", json!({ "TTL": secs })).await?;
                if let Some(e) = v["error"].as_str().filter(|e| !e.is_empty()) {
                    return Err(format!("etcd lease grant: {e}"));
                }
                Ok(LeaseResp::Granted {
                    lease: int(&v["ID"]),
                    ttl: Millis::secs(int(&v["TTL"]).max(0) as u64),
                })
            }
            LeaseReq::KeepAlive { lease } => {
                let v = self
                    .post("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
                    .await?;
                Ok(LeaseResp::KeptAlive {
                    lease,
                    ttl: Millis::secs(int(&v["TTL"]).max(0) as u64),
                })
            }
            LeaseReq::Campaign { lease, value } => {
                let key = b64(LEADER_KEY);
                let v = self
                    .post(
                        "/v3/kv/txn",
                        json!({
                            "compare": [{
                                "target": "CREATE", "result": "EQUAL",
                                "key": key, "create_revision": "0"
                            }],
                            "success": [{ "request_put": {
                                "key": key, "value": b64(&value), "lease": lease.to_string()
                            }}],
                            "failure": [{ "request_range": { "key": key } }],
                        }),
                    )
                    .await?;
                let rev = revision(&v);
                let won = v["succeeded"].as_bool().unwrap_or(false);
                let holder = if won {
                    Some(Holder {
                        value,
                        revision: rev,
                        lease,
                    })
                } else {
                    holder(&v["responses"][0]["response_range"]["kvs"])
                };
                Ok(LeaseResp::Campaign {
                    won,
                    holder,
                    revision: rev,
                })
            }
            LeaseReq::Get => {
                let (holder, revision) = self.range().await?;
                Ok(LeaseResp::Value { holder, revision })
            }
            LeaseReq::Watch {
                after_revision,
                timeout,
            } => {
                let deadline = Instant::now() + Duration::from_millis(timeout.0);
                loop {
                    let (holder, revision) = self.range().await?;
                    let moved = holder.as_ref().is_none_or(|h| h.revision > after_revision);
                    if moved || Instant::now() >= deadline {
                        return Ok(LeaseResp::Value { holder, revision });
                    }
                    tokio::time::sleep(WATCH_POLL.min(deadline - Instant::now())).await;
                }
            }
            LeaseReq::Revoke { lease } => {
                // A lease that is already gone is as revoked as it gets.
                match self
                    .post("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
                    .await
                {
                    Ok(_) => Ok(LeaseResp::Revoked),
                    Err(e) if e.contains("not found") => Ok(LeaseResp::Revoked),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
