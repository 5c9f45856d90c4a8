//! The fault vocabulary: everything a scenario or the fuzzer can do to a world.
//!
//! One closed enum, shared by every backend: the sim carries out all of it, the Docker
//! and Hetzner backends the part they declare in their capabilities. A fault with a
//! duration is healed by the runner when the duration passes.

use crate::ids::{Endpoint, NodeId};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a snapshot store fault alters what it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    /// One byte of one file flipped.
    FlipByte,
    /// Bytes moved from one file to the next in sorted order (v1's contentHash keeps).
    MoveBytes,
    /// A file changed and the manifest re-signed with an attacker's key.
    ReSign,
    /// The previous head served as the latest (a replay).
    Rollback,
    /// A path that escapes the bundle (`../`) added.
    EscapePath,
}

impl Tamper {
    /// Every tamper kind.
    pub const ALL: [Tamper; 5] = [
        Tamper::FlipByte,
        Tamper::MoveBytes,
        Tamper::ReSign,
        Tamper::Rollback,
        Tamper::EscapePath,
    ];
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tamper::FlipByte => "flip-byte",
            Tamper::MoveBytes => "move-bytes",
            Tamper::ReSign => "re-sign",
            Tamper::Rollback => "rollback",
            Tamper::EscapePath => "escape-path",
        })
    }
}

/// One fault. Node faults name the node; network faults name two endpoints.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// SIGKILL; the process stays down until healed (restarted).
    Kill {
        /// The node.
        node: NodeId,
    },
    /// The process dies by itself; its supervisor restarts it with back-off.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// SIGTERM (`docker stop`); stays down until healed (started again).
    Stop {
        /// The node.
        node: NodeId,
    },
    /// SIGSTOP: timers and sockets wait; healed by SIGCONT.
    Pause {
        /// The node.
        node: NodeId,
    },
    /// Cut both ways between two endpoints.
    Partition {
        /// One side.
        a: Endpoint,
        /// The other side.
        b: Endpoint,
    },
    /// Cut one way: `from` can no longer reach `to`, the other way still works.
    PartitionOneway {
        /// The sender cut off.
        from: Endpoint,
        /// The receiver it cannot reach.
        to: Endpoint,
    },
    /// Cut a node off from everything.
    Isolate {
        /// The node.
        node: NodeId,
    },
    /// The node's wall clock is off by this many ms (positive: ahead).
    ClockOffset {
        /// The node.
        node: NodeId,
        /// Offset in ms.
        ms: i64,
    },
    /// The node's wall clock steps by this many ms (an NTP step); healing steps back.
    ClockStep {
        /// The node.
        node: NodeId,
        /// Step in ms.
        ms: i64,
    },
    /// The node's clocks run fast (positive) or slow by this many parts per million.
    ClockRate {
        /// The node.
        node: NodeId,
        /// Rate error in ppm.
        ppm: i64,
    },
    /// Every message takes this much longer.
    Latency {
        /// Extra one-way latency.
        #[serde(with = "crate::time::duration_str")]
        extra: Millis,
    },
    /// This percentage of messages is lost.
    Loss {
        /// Percent, 0 to 100.
        percent: u8,
    },
    /// The snapshot store answers nothing.
    StoreDown,
    /// The snapshot store answers this much later.
    StoreSlow {
        /// Extra latency.
        #[serde(with = "crate::time::duration_str")]
        extra: Millis,
    },
    /// The snapshot store serves tampered content.
    StoreTamper {
        /// How.
        tamper: Tamper,
    },
    /// The Telegram API answers every call with this error code (5xx, 429).
    TelegramErrors {
        /// The code.
        code: u16,
    },
    /// Another process polls getUpdates with the same token (the DomCode incident).
    ForeignPoller,
    /// The host's lock file holds garbage (v1 reads it as an empty lock set).
    LockFileCorrupt {
        /// The host.
        host: String,
    },
    /// The host's disk is slow: lock file reads and renames take this much longer.
    DiskSlow {
        /// The host.
        host: String,
        /// Extra latency per operation.
        #[serde(with = "crate::time::duration_str")]
        extra: Millis,
    },
}

/// A capability a backend may or may not have; scenarios that need one a backend lacks
/// stop at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Kill, crash and stop processes.
    ProcessFaults,
    /// Pause and resume processes.
    Pause,
    /// Two-way cuts between any two endpoints.
    Partition,
    /// One-way cuts.
    PartitionOneway,
    /// Clock offsets and steps.
    ClockSkew,
    /// Clock rate errors.
    ClockRate,
    /// Message latency and loss.
    NetworkQuality,
    /// Snapshot store faults (down, slow, tampered).
    StoreFaults,
    /// Telegram API faults (errors, foreign poller).
    TelegramFaults,
    /// Lock file and disk faults.
    DiskFaults,
    /// Several node processes sharing one host's lock file.
    SharedHost,
}

impl Capability {
    /// Every capability, for backends that have them all.
    pub const ALL: [Capability; 11] = [
        Capability::ProcessFaults,
        Capability::Pause,
        Capability::Partition,
        Capability::PartitionOneway,
        Capability::ClockSkew,
        Capability::ClockRate,
        Capability::NetworkQuality,
        Capability::StoreFaults,
        Capability::TelegramFaults,
        Capability::DiskFaults,
        Capability::SharedHost,
    ];
}

impl Fault {
    /// The capability a backend needs for this fault.
    pub fn capability(&self) -> Capability {
        match self {
            Fault::Kill { .. } | Fault::Crash { .. } | Fault::Stop { .. } => {
                Capability::ProcessFaults
            }
            Fault::Pause { .. } => Capability::Pause,
            Fault::Partition { .. } | Fault::Isolate { .. } => Capability::Partition,
            Fault::PartitionOneway { .. } => Capability::PartitionOneway,
            Fault::ClockOffset { .. } | Fault::ClockStep { .. } => Capability::ClockSkew,
            Fault::ClockRate { .. } => Capability::ClockRate,
            Fault::Latency { .. } | Fault::Loss { .. } => Capability::NetworkQuality,
            Fault::StoreDown | Fault::StoreSlow { .. } | Fault::StoreTamper { .. } => {
                Capability::StoreFaults
            }
            Fault::TelegramErrors { .. } | Fault::ForeignPoller => Capability::TelegramFaults,
            Fault::LockFileCorrupt { .. } | Fault::DiskSlow { .. } => Capability::DiskFaults,
        }
    }

    /// The kind's name, as scenario files write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Crash { .. } => "crash",
            Fault::Stop { .. } => "stop",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneway { .. } => "partition-oneway",
            Fault::Isolate { .. } => "isolate",
            Fault::ClockOffset { .. } => "clock-offset",
            Fault::ClockStep { .. } => "clock-step",
            Fault::ClockRate { .. } => "clock-rate",
            Fault::Latency { .. } => "latency",
            Fault::Loss { .. } => "loss",
            Fault::StoreDown => "store-down",
            Fault::StoreSlow { .. } => "store-slow",
            Fault::StoreTamper { .. } => "store-tamper",
            Fault::TelegramErrors { .. } => "telegram-errors",
            Fault::ForeignPoller => "foreign-poller",
            Fault::LockFileCorrupt { .. } => "lock-file-corrupt",
            Fault::DiskSlow { .. } => "disk-slow",
        }
    }

    /// The node or endpoint the fault hits, for the history.
    pub fn target(&self) -> String {
        match self {
            Fault::Kill { .. }
            | Fault::Crash { .. }
            | Fault::Stop { .. }
            | Fault::Pause { .. }
            | Fault::Isolate { .. }
            | Fault::ClockOffset { .. }
            | Fault::ClockStep { .. }
            | Fault::ClockRate { .. } => self.node().expect("these faults name a node").to_string(),
            Fault::Partition { a, .. } => a.to_string(),
            Fault::PartitionOneway { from, .. } => from.to_string(),
            Fault::Latency { .. } | Fault::Loss { .. } => "network".into(),
            Fault::StoreDown | Fault::StoreSlow { .. } | Fault::StoreTamper { .. } => {
                "snapshot-store".into()
            }
            Fault::TelegramErrors { .. } | Fault::ForeignPoller => "telegram".into(),
            Fault::LockFileCorrupt { host } | Fault::DiskSlow { host, .. } => {
                format!("host {host}")
            }
        }
    }

    /// The node a process, isolation or clock fault acts on.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Fault::Kill { node }
            | Fault::Crash { node }
            | Fault::Stop { node }
            | Fault::Pause { node }
            | Fault::Isolate { node }
            | Fault::ClockOffset { node, .. }
            | Fault::ClockStep { node, .. }
            | Fault::ClockRate { node, .. } => Some(*node),
            _ => None,
        }
    }

    /// Every node the fault names, including the node ends of a cut.
    pub fn nodes(&self) -> Vec<NodeId> {
        let node_of = |e: &Endpoint| match e {
            Endpoint::Node(n) => Some(*n),
            _ => None,
        };
        match self {
            Fault::Partition { a, b } => node_of(a).into_iter().chain(node_of(b)).collect(),
            Fault::PartitionOneway { from, to } => {
                node_of(from).into_iter().chain(node_of(to)).collect()
            }
            other => other.node().into_iter().collect(),
        }
    }

    /// The rest of the fault, for the history.
    pub fn detail(&self) -> String {
        match self {
            Fault::Partition { b, .. } => format!("<-> {b}"),
            Fault::PartitionOneway { to, .. } => format!("-> {to}"),
            Fault::ClockOffset { ms, .. } | Fault::ClockStep { ms, .. } => format!("{ms:+} ms"),
            Fault::ClockRate { ppm, .. } => format!("{ppm:+} ppm"),
            Fault::Latency { extra }
            | Fault::StoreSlow { extra }
            | Fault::DiskSlow { extra, .. } => format!("+{extra}"),
            Fault::Loss { percent } => format!("{percent}%"),
            Fault::StoreTamper { tamper } => tamper.to_string(),
            Fault::TelegramErrors { code } => code.to_string(),
            _ => String::new(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.detail();
        if d.is_empty() {
            write!(f, "{} {}", self.kind(), self.target())
        } else {
            write!(f, "{} {} {}", self.kind(), self.target(), d)
        }
    }
}
