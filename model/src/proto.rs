//! The messages between a node and the services it uses.
//!
//! A node never performs I/O: it emits a [`Request`] as an effect and later receives the
//! matching [`Response`]. The sim carries these over simulated links, the real node daemon
//! over HTTP to etcd, the Telegram Bot API and the releases store. Keeping them as plain
//! data is what lets one node implementation run in every world.

use crate::ids::NodeId;
use crate::snapshot::{Bundle, SignedManifest};
use crate::time::Millis;
use crate::v1::V1Bundle;
use serde::{Deserialize, Serialize};

/// Identifies a request so its response can be matched; unique per node incarnation.
pub type ReqId = u64;

/// A request from a node to a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// To the linearizable lease store (`fenced`).
    Lease(LeaseReq),
    /// To the node's own host-local lock file (`opentrident-v1`).
    LockFile(LockFileReq),
    /// To the Telegram Bot API.
    Telegram(TgReq),
    /// To the snapshot store.
    Store(StoreReq),
}

impl Request {
    /// The service this request goes to (the lock file is on the node's own host).
    pub fn service(&self) -> Service {
        match self {
            Request::Lease(_) => Service::LeaseStore,
            Request::LockFile(_) => Service::LocalDisk,
            Request::Telegram(_) => Service::Telegram,
            Request::Store(_) => Service::SnapshotStore,
        }
    }
}

/// Which service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// The lease store.
    LeaseStore,
    /// The node's own disk.
    LocalDisk,
    /// The Telegram Bot API.
    Telegram,
    /// The snapshot store.
    SnapshotStore,
}

/// A response from a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// From the lease store.
    Lease(LeaseResp),
    /// From the lock file.
    LockFile(LockFileResp),
    /// From the Telegram Bot API.
    Telegram(TgResp),
    /// From the snapshot store.
    Store(StoreResp),
    /// The request could not be delivered or answered (timeout, refused connection,
    /// store down). The string says why, for the history.
    Failed(String),
}

/// The lease key every node campaigns for.
pub const LEADER_KEY: &str = "/lifeboat/leader";

/// A lease store request, with etcd v3 semantics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseReq {
    /// `LeaseGrant`: a new lease with this time to live.
    Grant {
        /// Requested time to live.
        ttl: Millis,
    },
    /// `LeaseKeepAlive`: restart the lease's countdown.
    KeepAlive {
        /// The lease to keep alive.
        lease: i64,
    },
    /// A transaction: if the key does not exist (`create_revision == 0`), put `value` on
    /// it attached to `lease`; otherwise read it.
    Campaign {
        /// The lease to attach the key to.
        lease: i64,
        /// What to store (the node's name).
        value: String,
    },
    /// `Range` on the leader key.
    Get,
    /// `Watch` on the leader key: answer once its revision moves past `after_revision`
    /// (a put or a delete), or when `timeout` passes.
    Watch {
        /// Answer only for changes after this revision.
        after_revision: u64,
        /// Give up and answer with the current value after this long.
        timeout: Millis,
    },
    /// `LeaseRevoke`: end the lease now, deleting the keys attached to it.
    Revoke {
        /// The lease to revoke.
        lease: i64,
    },
}

/// Who holds the leader key, as the store reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The value stored (the holder's node name).
    pub value: String,
    /// The key's `mod_revision`: the fencing token of this holder.
    pub revision: u64,
    /// The lease the key is attached to.
    pub lease: i64,
}

/// A lease store response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseResp {
    /// A lease was granted.
    Granted {
        /// Its id.
        lease: i64,
        /// Its time to live.
        ttl: Millis,
    },
    /// Answer to a keep-alive: the remaining time to live, zero when the lease is gone.
    KeptAlive {
        /// The lease.
        lease: i64,
        /// Remaining time to live; zero means expired or unknown.
        ttl: Millis,
    },
    /// Answer to a campaign.
    Campaign {
        /// True when this request put the key.
        won: bool,
        /// The key's holder after the transaction.
        holder: Option<Holder>,
        /// The store's revision after the transaction.
        revision: u64,
    },
    /// Answer to a get or a watch: the current holder, if any.
    Value {
        /// The key's holder.
        holder: Option<Holder>,
        /// The store's revision.
        revision: u64,
    },
    /// The lease was revoked.
    Revoked,
}

/// An operation on OpenTrident's host-local lock file (`instance-locks-v1.json`).
///
/// Reads and writes are separate operations because that is the whole point: every
/// operation in OpenTrident is an unguarded read-modify-write, and other operations can
/// land between the read and the rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockFileReq {
    /// Read and parse the whole file.
    Read,
    /// Replace the whole file (temp file plus rename).
    Write(crate::lease::LockFileDoc),
}

/// The answer to a lock file operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockFileResp {
    /// The parsed file, or `None` when it was missing, unreadable or not JSON; OpenTrident
    /// treats all of those as an empty lock set.
    Contents(Option<crate::lease::LockFileDoc>),
    /// The rename happened.
    Written,
}

/// A chat message waiting in the bot's update queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Telegram's `update_id`.
    pub update_id: i64,
    /// The chat the message came from.
    pub chat_id: i64,
    /// The message text.
    pub text: String,
}

/// A Telegram Bot API call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TgReq {
    /// `getUpdates` with a long-poll timeout.
    GetUpdates {
        /// Confirms every update below it; `None` starts from the earliest unconfirmed.
        offset: Option<i64>,
        /// Long-poll timeout.
        timeout: Millis,
    },
    /// `sendMessage`.
    SendMessage {
        /// The chat to answer.
        chat_id: i64,
        /// The reply.
        text: String,
        /// The update this replies to (lifeboat's bookkeeping, carried in the text for
        /// the real API).
        reply_to: i64,
        /// The fencing token the sender held, if any.
        token: Option<u64>,
    },
}

/// A Telegram Bot API answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TgResp {
    /// `getUpdates` returned these updates (possibly none, at the timeout).
    Updates(Vec<Update>),
    /// `sendMessage` succeeded.
    Sent {
        /// The sent message's id.
        message_id: i64,
    },
    /// `{"ok": false}` with this error code (409 conflict, 429, 5xx).
    Error {
        /// HTTP-style error code.
        code: u16,
        /// Telegram's description.
        description: String,
        /// `parameters.retry_after` on 429.
        retry_after: Option<Millis>,
    },
}

/// What the snapshot store holds: a lifeboat bundle or an OpenTrident v1 bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredBundle {
    /// A signed lifeboat bundle (`fenced`).
    Lifeboat(Bundle),
    /// An OpenTrident v1 bundle (`opentrident-v1`).
    V1(V1Bundle),
}

impl StoredBundle {
    /// The bundle's snapshot id.
    pub fn id(&self) -> &str {
        match self {
            StoredBundle::Lifeboat(b) => &b.manifest.manifest.id,
            StoredBundle::V1(b) => &b.manifest.snapshot_id,
        }
    }
}

/// A snapshot store request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreReq {
    /// Publish a bundle as the new head, stamped with the publisher's fencing token.
    Publish {
        /// The bundle.
        bundle: StoredBundle,
        /// The publisher's fencing token (`None` under `opentrident-v1`).
        token: Option<u64>,
    },
    /// Fetch the chain of manifests to the head (or to `id`), and the files of that
    /// snapshot.
    Fetch {
        /// The snapshot wanted; `None` for the head.
        id: Option<String>,
    },
}

/// A snapshot store answer.
// Moved once per fetch; boxing the bundle would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreResp {
    /// The publish was accepted as the new head.
    Published {
        /// The new head's id.
        id: String,
    },
    /// The publish was refused (stale fencing token, not a child of the head, tag
    /// exists). The string says which.
    Rejected(String),
    /// The answer to a fetch: every manifest from the first to the wanted one (lifeboat
    /// bundles), and the wanted bundle itself. `None` when the store is empty.
    Fetched {
        /// The ancestors of the wanted snapshot, oldest first (lifeboat only).
        chain: Vec<SignedManifest>,
        /// The wanted snapshot, files included.
        bundle: Option<StoredBundle>,
        /// Store-side id of this answer, so the history can tie a restore to what was
        /// served.
        fetch_id: u64,
    },
}

/// Who sent a request: the node and the incarnation (process lifetime) it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct From {
    /// The node.
    pub node: NodeId,
    /// The process incarnation; answers to an older incarnation are dropped.
    pub incarnation: u32,
}
