//! Names for the things in a world: nodes and the services they talk to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node of the leader-lock service, named by a lower-case letter (`a`, `b`, `c`, …).
///
/// Letters keep histories short and match the runbook's node A, B and C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(pub u8);

impl NodeId {
    /// The most nodes a world may hold (`a` to `z`).
    pub const MAX: usize = 26;

    /// Parses a node name such as `a` or `b`.
    pub fn parse(name: &str) -> Result<NodeId, String> {
        let mut chars = name.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_lowercase() => Ok(NodeId(c as u8 - b'a')),
            _ => Err(format!(
                "node names are single lower-case letters (a, b, c, …), found `{name}`"
            )),
        }
    }

    /// The node's index (a = 0).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (b'a' + self.0) as char)
    }
}

impl TryFrom<String> for NodeId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        NodeId::parse(&s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> String {
        n.to_string()
    }
}

/// An endpoint on the network: a node or one of the shared services.
///
/// Partitions are cut between two endpoints, so a scenario can isolate a node from the
/// lease store while it still reaches Telegram (the case that separates good lease
/// handling from bad).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Endpoint {
    /// A node of the service.
    Node(NodeId),
    /// The linearizable lease store (etcd's role).
    LeaseStore,
    /// The Telegram Bot API.
    Telegram,
    /// The snapshot store (GitHub Releases' role).
    SnapshotStore,
}

impl Endpoint {
    /// Parses `a`, `lease-store`, `telegram` or `snapshot-store`.
    pub fn parse(name: &str) -> Result<Endpoint, String> {
        match name {
            "lease-store" | "etcd" => Ok(Endpoint::LeaseStore),
            "telegram" => Ok(Endpoint::Telegram),
            "snapshot-store" | "releases" => Ok(Endpoint::SnapshotStore),
            other => NodeId::parse(other).map(Endpoint::Node).map_err(|_| {
                format!(
                    "expected a node letter or one of lease-store, telegram, snapshot-store, found `{other}`"
                )
            }),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Node(n) => write!(f, "{n}"),
            Endpoint::LeaseStore => write!(f, "lease-store"),
            Endpoint::Telegram => write!(f, "telegram"),
            Endpoint::SnapshotStore => write!(f, "snapshot-store"),
        }
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Endpoint::parse(&s)
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        for i in 0..NodeId::MAX as u8 {
            let n = NodeId(i);
            assert_eq!(NodeId::parse(&n.to_string()), Ok(n));
        }
        assert!(NodeId::parse("A").is_err());
        assert!(NodeId::parse("ab").is_err());
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(Endpoint::parse("etcd"), Ok(Endpoint::LeaseStore));
        assert_eq!(Endpoint::parse("c"), Ok(Endpoint::Node(NodeId(2))));
        assert!(Endpoint::parse("zz").unwrap_err().contains("lease-store"));
    }
}
