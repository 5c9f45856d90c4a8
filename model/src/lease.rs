//! Lease store semantics: etcd's compare-and-set register with leases (`fenced`), and
//! OpenTrident's read-modify-write lock file (`opentrident-v1`).
//!
//! [`LeaseStore`] is the server side of the lease protocol as a pure state machine: one
//! revision counter for the whole store, leases with a time to live counted on the
//! store's clock, a leader key that exists only while its lease lives, and watches. Its
//! revision is the fencing token. The real backends use etcd itself; this keeps etcd's
//! semantics so the sim and the real world agree.

use crate::history::Event;
use crate::ids::NodeId;
use crate::proto::{From, Holder, LeaseReq, LeaseResp, ReqId, Response};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An answer a service sends back to a node incarnation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Who asked.
    pub to: From,
    /// Which request.
    pub req: ReqId,
    /// The answer.
    pub resp: Response,
}

#[derive(Clone, Debug)]
struct Lease {
    owner: NodeId,
    ttl: Millis,
    expires_at: Millis,
}

#[derive(Clone, Debug)]
struct Watcher {
    to: From,
    req: ReqId,
    after_revision: u64,
    deadline: Millis,
}

/// etcd's semantics for one leader key.
#[derive(Clone, Debug, Default)]
pub struct LeaseStore {
    revision: u64,
    next_lease: i64,
    leases: BTreeMap<i64, Lease>,
    key: Option<Holder>,
    /// Revision at which the key last changed (put or delete).
    key_mod: u64,
    /// The newest fencing token granted (0 before the first).
    newest_token: u64,
    watchers: Vec<Watcher>,
}

impl LeaseStore {
    /// An empty store at revision 1 (etcd starts there).
    pub fn new() -> LeaseStore {
        LeaseStore {
            revision: 1,
            next_lease: 1,
            ..LeaseStore::default()
        }
    }

    /// The newest fencing token granted so far, whether or not its lease still runs: the
    /// snapshot store refuses publishes below it.
    pub fn newest_token(&self) -> u64 {
        self.newest_token
    }

    /// The current holder of the leader key.
    pub fn holder(&self) -> Option<&Holder> {
        self.key.as_ref()
    }

    /// The earliest time at which [`LeaseStore::advance`] has work to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        let lease = self.leases.values().map(|l| l.expires_at).min();
        let watch = self.watchers.iter().map(|w| w.deadline).min();
        match (lease, watch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires leases and times out watches up to `now`.
    pub fn advance(&mut self, now: Millis, replies: &mut Vec<Reply>, events: &mut Vec<Event>) {
        let expired: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_lease(id, "expired", replies, events);
        }
        let (due, keep): (Vec<Watcher>, Vec<Watcher>) =
            self.watchers.drain(..).partition(|w| w.deadline <= now);
        self.watchers = keep;
        for w in due {
            replies.push(self.value_reply(w.to, w.req));
        }
    }

    fn value_reply(&self, to: From, req: ReqId) -> Reply {
        Reply {
            to,
            req,
            resp: Response::Lease(LeaseResp::Value {
                holder: self.key.clone(),
                revision: self.revision,
            }),
        }
    }

    fn end_lease(&mut self, id: i64, how: &str, replies: &mut Vec<Reply>, events: &mut Vec<Event>) {
        let Some(lease) = self.leases.remove(&id) else {
            return;
        };
        if self.key.as_ref().is_some_and(|h| h.lease == id) {
            let h = self.key.take().expect("checked above");
            self.revision += 1;
            self.key_mod = self.revision;
            events.push(Event::LeaseEnded {
                node: lease.owner,
                lease: id,
                token: h.revision,
                how: how.to_string(),
            });
            self.wake_watchers(replies);
        }
    }

    fn wake_watchers(&mut self, replies: &mut Vec<Reply>) {
        let (wake, keep): (Vec<Watcher>, Vec<Watcher>) = self
            .watchers
            .drain(..)
            .partition(|w| self.key_mod > w.after_revision);
        self.watchers = keep;
        for w in wake {
            replies.push(self.value_reply(w.to, w.req));
        }
    }

    /// Handles one request at `now` (after [`LeaseStore::advance`] to `now`).
    pub fn handle(
        &mut self,
        now: Millis,
        from: From,
        req_id: ReqId,
        req: LeaseReq,
        replies: &mut Vec<Reply>,
        events: &mut Vec<Event>,
    ) {
        self.advance(now, replies, events);
        let reply = |resp: LeaseResp| Reply {
            to: from,
            req: req_id,
            resp: Response::Lease(resp),
        };
        match req {
            LeaseReq::Grant { ttl } => {
                let id = self.next_lease;
                self.next_lease += 1;
                self.leases.insert(
                    id,
                    Lease {
                        owner: from.node,
                        ttl,
                        expires_at: now + ttl,
                    },
                );
                replies.push(reply(LeaseResp::Granted { lease: id, ttl }));
            }
            LeaseReq::KeepAlive { lease } => {
                let ttl = match self.leases.get_mut(&lease) {
                    Some(l) => {
                        l.expires_at = now + l.ttl;
                        if self.key.as_ref().is_some_and(|h| h.lease == lease) {
                            events.push(Event::LeaseRenewed {
                                node: l.owner,
                                lease,
                                expires_at: l.expires_at,
                            });
                        }
                        l.ttl
                    }
                    None => Millis::ZERO,
                };
                replies.push(reply(LeaseResp::KeptAlive { lease, ttl }));
            }
            LeaseReq::Campaign { lease, value } => {
                let lease_alive = self.leases.contains_key(&lease);
                let won = self.key.is_none() && lease_alive;
                if won {
                    self.revision += 1;
                    self.key_mod = self.revision;
                    self.newest_token = self.revision;
                    self.key = Some(Holder {
                        value,
                        revision: self.revision,
                        lease,
                    });
                    events.push(Event::LeaseGranted {
                        node: from.node,
                        token: self.revision,
                        lease,
                        expires_at: self.leases[&lease].expires_at,
                    });
                    self.wake_watchers(replies);
                }
                replies.push(reply(LeaseResp::Campaign {
                    won,
                    holder: self.key.clone(),
                    revision: self.revision,
                }));
            }
            LeaseReq::Get => replies.push(self.value_reply(from, req_id)),
            LeaseReq::Watch {
                after_revision,
                timeout,
            } => {
                if self.key_mod > after_revision {
                    replies.push(self.value_reply(from, req_id));
                } else {
                    self.watchers.push(Watcher {
                        to: from,
                        req: req_id,
                        after_revision,
                        deadline: now + timeout,
                    });
                }
            }
            LeaseReq::Revoke { lease } => {
                self.end_lease(lease, "revoked", replies, events);
                replies.push(reply(LeaseResp::Revoked));
            }
        }
    }

    /// Drops the watches of a node incarnation whose connection closed.
    pub fn disconnect(&mut self, who: From) {
        self.watchers.retain(|w| w.to != who);
    }
}

/// The five lock scopes of `instance-locks-v1.json`.
pub const V1_SCOPES: [&str; 5] = [
    "telegram-bot",
    "public-channel",
    "leader-heartbeat",
    "planner-write",
    "migration-lock",
];

/// One entry of OpenTrident's lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// The scope.
    pub scope: String,
    /// 16 hex chars of SHA-256 of `hostname:pid`.
    pub instance_id: String,
    /// `os.hostname()` (the container id in Docker).
    pub hostname: String,
    /// The process id (1 in a container).
    pub pid: u32,
    /// Epoch ms.
    pub acquired_at: u64,
    /// Epoch ms of the last refresh, by the writer's wall clock.
    pub last_seen_at: u64,
}

/// `instance-locks-v1.json`: five scopes and a dead `updatedAt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFileDoc {
    /// Scope → entry or null.
    pub locks: BTreeMap<String, Option<LockEntry>>,
    /// Epoch ms; never updated after creation.
    pub updated_at: u64,
}

impl LockFileDoc {
    /// A fresh all-null lock set: what OpenTrident reads from a missing or corrupt file.
    pub fn empty(now_wall: u64) -> LockFileDoc {
        LockFileDoc {
            locks: V1_SCOPES.iter().map(|s| (s.to_string(), None)).collect(),
            updated_at: now_wall,
        }
    }

    /// The entry for a scope.
    pub fn entry(&self, scope: &str) -> Option<&LockEntry> {
        self.locks.get(scope).and_then(|e| e.as_ref())
    }
}

/// OpenTrident's `instanceId`: the first 16 hex chars of SHA-256 of `hostname:pid`.
pub fn v1_instance_id(hostname: &str, pid: u32) -> String {
    crate::snapshot::sha256_hex(format!("{hostname}:{pid}").as_bytes())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(n: u8) -> From {
        From {
            node: NodeId(n),
            incarnation: 1,
        }
    }

    fn campaign(s: &mut LeaseStore, now: u64, n: u8) -> (bool, Vec<Event>) {
        let mut r = Vec::new();
        let mut e = Vec::new();
        s.handle(
            Millis(now),
            from(n),
            1,
            LeaseReq::Grant { ttl: Millis(1000) },
            &mut r,
            &mut e,
        );
        let Response::Lease(LeaseResp::Granted { lease, .. }) = r.pop().unwrap().resp else {
            panic!("grant failed")
        };
        s.handle(
            Millis(now),
            from(n),
            2,
            LeaseReq::Campaign {
                lease,
                value: NodeId(n).to_string(),
            },
            &mut r,
            &mut e,
        );
        let Response::Lease(LeaseResp::Campaign { won, .. }) = r.pop().unwrap().resp else {
            panic!("campaign failed")
        };
        (won, e)
    }

    #[test]
    fn second_campaign_loses_until_lease_expires() {
        let mut s = LeaseStore::new();
        assert!(campaign(&mut s, 0, 0).0);
        assert!(!campaign(&mut s, 500, 1).0);
        let (won, events) = campaign(&mut s, 1000, 1);
        assert!(won, "the first lease expired at 1000");
        assert!(matches!(events[0], Event::LeaseEnded { .. }));
        let tokens: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::LeaseGranted { token, .. } => Some(*token),
                _ => None,
            })
            .collect();
        assert_eq!(tokens.len(), 1);
        assert!(tokens[0] > 2, "tokens rise with the store revision");
    }

    #[test]
    fn instance_id_is_stable_per_host_and_pid() {
        assert_eq!(v1_instance_id("abc", 1), v1_instance_id("abc", 1));
        assert_ne!(v1_instance_id("abc", 1), v1_instance_id("abd", 1));
        assert_eq!(v1_instance_id("abc", 1).len(), 16);
    }
}
