//! The history: every observable event of a run, with its time and node.
//!
//! Checkers judge a history and nothing else. Events come from three places: the world
//! (faults it injected, processes it started, stopped or paused), the services (what the
//! lease store granted, which polls Telegram saw, what the snapshot store accepted or
//! served) and the nodes' own reports (role changes, restores), the way a log or a
//! dashboard would show them. A history can be written as JSON lines and read back, and
//! its hash is the run's trace hash.

use crate::fault::Fault;
use crate::ids::NodeId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A node's role, as the node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Starting up.
    Booting,
    /// Restoring from the snapshot chain.
    Restoring,
    /// Following an observed leader.
    Follower,
    /// Trying to take the lock.
    Candidate,
    /// Leading: polling Telegram and publishing snapshots.
    Leader,
    /// Giving up the lock before it can expire.
    SteppingDown,
    /// Not running.
    Stopped,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Role::Booting => "booting",
            Role::Restoring => "restoring",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::SteppingDown => "stepping-down",
            Role::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// How a getUpdates long poll ended, as the Telegram server saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollOutcome {
    /// Returned this many updates.
    Updates(u32),
    /// The long-poll timeout passed with nothing to return.
    Timeout,
    /// Ended with 409 because another poll arrived.
    Conflict,
    /// The poller's connection closed (process killed or stopped).
    Closed,
    /// Answered with an injected error code.
    Error(u16),
}

/// One observable event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    // ---- the world ----
    /// A fault was injected: the scenario's own fault, typed, so checkers judge its kind
    /// and size (a `latency +0ms` is no fault at all) rather than parse words.
    Fault(Fault),
    /// A fault was healed.
    Heal(Fault),
    /// A node process started (first boot or restart).
    ProcessStarted {
        /// The node.
        node: NodeId,
        /// Its incarnation number.
        incarnation: u32,
    },
    /// A node process ended.
    ProcessExited {
        /// The node.
        node: NodeId,
        /// Exit code; `None` when killed.
        code: Option<i32>,
        /// Why (`exit`, `kill`, `stop`).
        how: String,
    },
    /// A node process was frozen (SIGSTOP): its timers and sockets wait.
    Paused {
        /// The node.
        node: NodeId,
    },
    /// A frozen node process resumed.
    Resumed {
        /// The node.
        node: NodeId,
    },
    /// The operator (or a test) sent a chat message to the bot.
    ChatSent {
        /// The update id Telegram gave it.
        update_id: i64,
        /// Its text.
        text: String,
    },
    /// A health probe of a node, and what the node said about itself.
    HealthProbe {
        /// The node probed.
        node: NodeId,
        /// `/healthz` answered 200.
        healthz: bool,
        /// `/readyz` answered 200.
        readyz: bool,
        /// The role on the dashboard.
        role: Role,
        /// The leader the node says it observes.
        observed_leader: Option<NodeId>,
    },

    // ---- the node's own reports ----
    /// A node reports a role change.
    RoleChanged {
        /// The node.
        node: NodeId,
        /// The new role.
        role: Role,
        /// The fencing token it holds, if any.
        token: Option<u64>,
        /// Why, in words (`lock file entry absent`, `lease expired`, …).
        why: String,
    },
    /// A node began a restore from the snapshot chain.
    RestoreStarted {
        /// The node.
        node: NodeId,
        /// The snapshot it asked for (`None` for the head).
        wanted: Option<String>,
    },
    /// A node verified and restored a snapshot.
    RestoreVerified {
        /// The node.
        node: NodeId,
        /// The store's fetch id this came from.
        fetch_id: u64,
        /// The snapshot restored.
        snapshot: String,
        /// Its version (v1: 0).
        version: u64,
        /// The state version the restored files carry.
        state_version: u64,
        /// Hashes the manifest records, by file.
        recorded: Vec<(String, String)>,
        /// Hashes of the files as restored, by file.
        restored: Vec<(String, String)>,
    },
    /// What a node knew when it judged a fetched snapshot, recorded just before its
    /// verdict ([`Event::RestoreVerified`] or [`Event::RestoreRefused`] for the same
    /// fetch): restoring anything older than this is a rollback accepted.
    RestoreBasis {
        /// The node.
        node: NodeId,
        /// The store's fetch id being judged.
        fetch_id: u64,
        /// The head its bootstrap manifest names, if it has one.
        manifest_head: Option<String>,
        /// The snapshot it last wrote or restored (its disk's head), if any.
        known_head: Option<String>,
        /// The highest version its verifier has persisted (lifeboat chains only).
        persisted_version: Option<u64>,
    },
    /// A node refused a snapshot.
    RestoreRefused {
        /// The node.
        node: NodeId,
        /// The store's fetch id, if a bundle was served.
        fetch_id: Option<u64>,
        /// Why, in the verifier's words.
        reason: String,
    },
    /// The leader applied a chat message to its state.
    StateChanged {
        /// The node.
        node: NodeId,
        /// The state version after the change.
        version: u64,
    },

    // ---- the lease store ----
    /// The store put the leader key for a node: it won the election.
    LeaseGranted {
        /// The winner.
        node: NodeId,
        /// The key's revision: the fencing token.
        token: u64,
        /// The lease.
        lease: i64,
        /// When the store will expire the lease unless kept alive.
        expires_at: Millis,
    },
    /// The store restarted a lease's countdown.
    LeaseRenewed {
        /// The holder.
        node: NodeId,
        /// The lease.
        lease: i64,
        /// The new expiry.
        expires_at: Millis,
    },
    /// The store expired or revoked the lease holding the leader key.
    LeaseEnded {
        /// The holder.
        node: NodeId,
        /// The lease.
        lease: i64,
        /// The token that ended with it.
        token: u64,
        /// `expired` or `revoked`.
        how: String,
    },

    // ---- OpenTrident's lock file ----
    /// A node read its host's lock file.
    LockFileRead {
        /// The node.
        node: NodeId,
        /// The host whose file it read.
        host: String,
        /// The `leader-heartbeat` entry's owner, if present and readable.
        holder: Option<String>,
        /// The entry's `lastSeenAt` (wall ms), if present.
        last_seen_at: Option<u64>,
        /// False when the file was missing, unreadable or corrupt (read as empty).
        readable: bool,
    },
    /// A node replaced its host's lock file.
    LockFileWritten {
        /// The node.
        node: NodeId,
        /// The host.
        host: String,
        /// The `leader-heartbeat` owner after the write.
        holder: Option<String>,
        /// What the write was for (`acquire leader-heartbeat`, `refresh telegram-bot`, …).
        op: String,
    },

    // ---- Telegram ----
    /// Telegram received a getUpdates long poll.
    PollStarted {
        /// The poller (`None` for a foreign poller injected as a fault).
        node: Option<NodeId>,
        /// Server-side poll id.
        poll: u64,
        /// The offset asked for.
        offset: Option<i64>,
        /// The long-poll timeout asked for.
        timeout: Millis,
    },
    /// A getUpdates long poll ended.
    PollEnded {
        /// The poller.
        node: Option<NodeId>,
        /// Server-side poll id.
        poll: u64,
        /// How it ended.
        outcome: PollOutcome,
        /// On a conflict: the poller whose request ended this one.
        by: Option<Option<NodeId>>,
    },
    /// Telegram handed an update to a poller.
    ChatDelivered {
        /// The update.
        update_id: i64,
        /// The poller.
        node: NodeId,
    },
    /// A node answered an update with sendMessage.
    ChatReplied {
        /// The update.
        update_id: i64,
        /// The node that answered.
        node: NodeId,
        /// The process incarnation that sent it, where the recorder can tell (the
        /// simulator can; a real Telegram double sees only the node).
        incarnation: Option<u32>,
        /// The fencing token it held.
        token: Option<u64>,
        /// When the sender sent it (true time), where the recorder can tell (the simulator
        /// can; a real Telegram double sees only its arrival, the entry's time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_at: Option<Millis>,
    },

    // ---- the snapshot store ----
    /// The store received a publish; recorded before it decides (its decision is the
    /// [`Event::SnapshotPublished`] that follows), so a check the store skipped shows.
    PublishAttempted {
        /// The publisher.
        node: NodeId,
        /// The snapshot id.
        id: String,
        /// Its version (v1: 0).
        version: u64,
        /// Its parent's id.
        parent: Option<String>,
        /// The publisher's fencing token.
        token: Option<u64>,
        /// SHA-256 over its files ([`crate::store::content_digest`]).
        digest: String,
    },
    /// The store accepted or refused a publish.
    SnapshotPublished {
        /// The publisher.
        node: NodeId,
        /// The snapshot id.
        id: String,
        /// Its version (v1: 0).
        version: u64,
        /// Its parent's id.
        parent: Option<String>,
        /// The publisher's token.
        token: Option<u64>,
        /// The state version it captures.
        state_version: u64,
        /// Whether the store made it the head.
        accepted: bool,
        /// Why it was refused, or `clobbered` when v1's upload replaced an asset.
        note: String,
    },
    /// The store served a fetch.
    SnapshotServed {
        /// Who fetched.
        node: NodeId,
        /// Fetch id.
        fetch_id: u64,
        /// The snapshot served.
        id: Option<String>,
        /// The tamper applied by an injected fault, if any (`flip-byte`, `re-sign`, …).
        tamper: Option<String>,
    },
    /// The store served its head (a fetch that named no snapshot).
    HeadServed {
        /// Who fetched.
        node: NodeId,
        /// Fetch id.
        fetch_id: u64,
        /// The head served (`None`: the store was empty).
        id: Option<String>,
        /// Its version (v1: 0).
        version: u64,
        /// Its parent's id.
        parent: Option<String>,
        /// The tamper an injected fault applied to it, if any.
        tamper: Option<String>,
    },
}

impl Event {
    /// The node an event is about, if any.
    pub fn node(&self) -> Option<NodeId> {
        use Event::*;
        match self {
            Fault(_) | Heal(_) | ChatSent { .. } => None,
            ProcessStarted { node, .. }
            | ProcessExited { node, .. }
            | Paused { node }
            | Resumed { node }
            | HealthProbe { node, .. }
            | RoleChanged { node, .. }
            | RestoreStarted { node, .. }
            | RestoreVerified { node, .. }
            | RestoreRefused { node, .. }
            | StateChanged { node, .. }
            | LeaseGranted { node, .. }
            | LeaseRenewed { node, .. }
            | LeaseEnded { node, .. }
            | LockFileRead { node, .. }
            | LockFileWritten { node, .. }
            | ChatDelivered { node, .. }
            | ChatReplied { node, .. }
            | SnapshotPublished { node, .. }
            | SnapshotServed { node, .. }
            | RestoreBasis { node, .. }
            | PublishAttempted { node, .. }
            | HeadServed { node, .. } => Some(*node),
            PollStarted { node, .. } | PollEnded { node, .. } => *node,
        }
    }
}

/// An event with its true time (the world's clock, not a node's) and sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the history.
    pub seq: u64,
    /// True time.
    pub at: Millis,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// An append-only history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The entries, in order.
    pub entries: Vec<Entry>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Appends an event at `at`. Time never goes backwards in a history.
    pub fn push(&mut self, at: Millis, event: Event) {
        if let Some(last) = self.entries.last() {
            assert!(
                at >= last.at,
                "history time went backwards: {} after {}",
                at,
                last.at
            );
        }
        let seq = self.entries.len() as u64;
        self.entries.push(Entry { seq, at, event });
    }

    /// The entries.
    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// The time of the last entry.
    pub fn end(&self) -> Millis {
        self.entries.last().map_or(Millis::ZERO, |e| e.at)
    }

    /// The history as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&serde_json::to_string(e).expect("entries serialize"));
            out.push('\n');
        }
        out
    }

    /// Reads JSON lines written by [`History::to_jsonl`].
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut h = History::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: Entry = serde_json::from_str(line)
                .map_err(|err| format!("history line {}: {err}", i + 1))?;
            h.entries.push(e);
        }
        Ok(h)
    }

    /// The trace hash: SHA-256 over the JSON lines. Same seed, same hash.
    pub fn trace_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for e in &self.entries {
            hasher.update(serde_json::to_vec(e).expect("entries serialize"));
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }
}
