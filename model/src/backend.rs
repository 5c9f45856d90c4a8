//! The backend trait: the one seam between a drill and a world.
//!
//! The drill runner only ever talks to a [`Backend`]. The sim implements it over a
//! simulated world, the Docker backend over containers, the Hetzner backend over cloud
//! servers and SSH. Each declares its [`Capability`]s; a scenario that needs one the
//! backend lacks stops before anything runs. Each also declares the [`EventKind`]s its
//! history can hold, so a checker whose events a backend cannot see is reported as not
//! judged there instead of passing on an empty history.

use crate::bootstrap::BootstrapManifest;
use crate::fault::{Capability, Fault};
use crate::history::{Event, History};
use crate::ids::NodeId;
use crate::node::Dashboard;
use crate::profile::Profile;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// One node of a cluster as a scenario describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node.
    pub id: NodeId,
    /// Its host (nodes on one host share OpenTrident's lock file).
    pub host: String,
    /// True for the primary that starts with state; false for a blank node.
    pub primary: bool,
    /// A hostname the scenario gives it (OpenTrident's lock identity hashes it); `None`
    /// for its own, as a container's id is.
    pub hostname: Option<String>,
}

/// What a backend must build before a drill starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<ClusterNode>,
    /// The protocol and its timings.
    pub profile: Profile,
    /// The seed (simulated backends; real backends record it).
    pub seed: u64,
    /// Shortest one-way latency (simulated backends).
    pub latency_min: Millis,
    /// Longest one-way latency (simulated backends).
    pub latency_max: Millis,
}

/// The backends a scenario can name (a criterion's `out_of_scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The simulated world.
    Sim,
    /// Containers on the local Docker engine.
    Docker,
    /// Cloud servers over SSH (the live drill).
    Real,
}

impl BackendKind {
    /// The name [`Backend::name`] gives.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
            BackendKind::Docker => "docker",
            BackendKind::Real => "real",
        }
    }
}

/// A kind of history event, as a backend declares what it can observe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Faults injected and healed.
    Faults,
    /// Processes started, exited, paused and resumed.
    Processes,
    /// Chat messages the operator sent.
    ChatSent,
    /// Health probes and what the node said.
    HealthProbes,
    /// Role changes the nodes report.
    Roles,
    /// Restores begun, verified and refused.
    Restores,
    /// State changes the leader applied.
    StateChanges,
    /// What the lease store granted, renewed and ended.
    Leases,
    /// OpenTrident's lock-file reads and writes.
    LockFiles,
    /// getUpdates polls, as Telegram saw them.
    Polls,
    /// Updates Telegram handed to a poller.
    ChatDeliveries,
    /// Replies the nodes sent.
    ChatReplies,
    /// Snapshot publishes the store accepted or refused.
    Publishes,
    /// Snapshot fetches the store served.
    FetchesServed,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 14] = [
        EventKind::Faults,
        EventKind::Processes,
        EventKind::ChatSent,
        EventKind::HealthProbes,
        EventKind::Roles,
        EventKind::Restores,
        EventKind::StateChanges,
        EventKind::Leases,
        EventKind::LockFiles,
        EventKind::Polls,
        EventKind::ChatDeliveries,
        EventKind::ChatReplies,
        EventKind::Publishes,
        EventKind::FetchesServed,
    ];

    /// The kind's name in messages (`poll`, `publish`).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Faults => "fault",
            EventKind::Processes => "process",
            EventKind::ChatSent => "chat-sent",
            EventKind::HealthProbes => "health-probe",
            EventKind::Roles => "role",
            EventKind::Restores => "restore",
            EventKind::StateChanges => "state-change",
            EventKind::Leases => "lease",
            EventKind::LockFiles => "lock-file",
            EventKind::Polls => "poll",
            EventKind::ChatDeliveries => "chat-delivery",
            EventKind::ChatReplies => "chat-reply",
            EventKind::Publishes => "publish",
            EventKind::FetchesServed => "fetch-served",
        }
    }

    /// The kind of one event.
    pub fn of(event: &Event) -> EventKind {
        match event {
            Event::Fault(_) | Event::Heal(_) => EventKind::Faults,
            Event::ProcessStarted { .. }
            | Event::ProcessExited { .. }
            | Event::Paused { .. }
            | Event::Resumed { .. } => EventKind::Processes,
            Event::ChatSent { .. } => EventKind::ChatSent,
            Event::HealthProbe { .. } => EventKind::HealthProbes,
            Event::RoleChanged { .. } => EventKind::Roles,
            Event::RestoreStarted { .. }
            | Event::RestoreBasis { .. }
            | Event::RestoreVerified { .. }
            | Event::RestoreRefused { .. } => EventKind::Restores,
            Event::StateChanged { .. } => EventKind::StateChanges,
            Event::LeaseGranted { .. } | Event::LeaseRenewed { .. } | Event::LeaseEnded { .. } => {
                EventKind::Leases
            }
            Event::LockFileRead { .. } | Event::LockFileWritten { .. } => EventKind::LockFiles,
            Event::PollStarted { .. } | Event::PollEnded { .. } => EventKind::Polls,
            Event::ChatDelivered { .. } => EventKind::ChatDeliveries,
            Event::ChatReplied { .. } => EventKind::ChatReplies,
            Event::PublishAttempted { .. } | Event::SnapshotPublished { .. } => {
                EventKind::Publishes
            }
            Event::HeadServed { .. } | Event::SnapshotServed { .. } => EventKind::FetchesServed,
        }
    }
}

/// A backend failure, naming the node or resource and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend cannot do this (a capability it lacks).
    #[error("the {backend} backend cannot {what}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// What was asked.
        what: String,
    },
    /// A node could not be reached or did not answer.
    #[error("node {node}: {what}")]
    Node {
        /// The node.
        node: NodeId,
        /// What went wrong.
        what: String,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// The seam between a drill and a world. Every method works in the backend's own time:
/// simulated time in the sim, wall-clock time on real machines.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// The backend's name (`sim`, `docker`, `real`).
    fn name(&self) -> &'static str;
    /// What it can do.
    fn capabilities(&self) -> BTreeSet<Capability>;
    /// Which kinds of event its history holds: what it records, not what it does. A
    /// checker needing a kind outside this set is `not judged on <backend>`.
    fn observes(&self) -> BTreeSet<EventKind>;
    /// Builds the cluster's machines (nothing runs yet).
    fn provision(&mut self, cluster: &Cluster) -> impl Future<Output = Result<(), BackendError>>;
    /// Starts a node's process over its current disk.
    fn start(&mut self, node: NodeId) -> impl Future<Output = Result<(), BackendError>>;
    /// Gives a blank node the bootstrap manifest and starts it (`bootstrap --from URL`).
    fn bootstrap(
        &mut self,
        node: NodeId,
        manifest: &BootstrapManifest,
    ) -> impl Future<Output = Result<(), BackendError>>;
    /// Makes a bootstrap manifest from the current snapshot head (runbook phase 0).
    fn regenerate_manifest(
        &mut self,
    ) -> impl Future<Output = Result<BootstrapManifest, BackendError>>;
    /// The snapshot store's head.
    fn snapshot_head(&mut self) -> impl Future<Output = Result<Option<String>, BackendError>>;
    /// Injects a fault.
    fn inject(&mut self, fault: &Fault) -> impl Future<Output = Result<(), BackendError>>;
    /// Heals a fault.
    fn heal(&mut self, fault: &Fault) -> impl Future<Output = Result<(), BackendError>>;
    /// Reads a node's dashboard (`None` when it does not answer).
    fn probe(
        &mut self,
        node: NodeId,
    ) -> impl Future<Output = Result<Option<Dashboard>, BackendError>>;
    /// Sends the bot a chat message as the operator; returns its update id.
    fn send_chat(&mut self, text: &str) -> impl Future<Output = Result<i64, BackendError>>;
    /// The node that answered an update, if any has.
    fn reply_to(
        &mut self,
        update_id: i64,
    ) -> impl Future<Output = Result<Option<NodeId>, BackendError>>;
    /// SHA-256 of every state file on a node.
    fn file_hashes(
        &mut self,
        node: NodeId,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, BackendError>>;
    /// The backend's time since the drill began.
    fn now(&self) -> Millis;
    /// Lets `d` of the backend's time pass.
    fn sleep(&mut self, d: Millis) -> impl Future<Output = Result<(), BackendError>>;
    /// The history recorded so far.
    fn history(&mut self) -> impl Future<Output = Result<History, BackendError>>;
    /// Removes everything the run created, healing every fault first.
    fn teardown(&mut self) -> impl Future<Output = Result<(), BackendError>>;
}

/// Runs a future that never waits on anything outside itself (the sim's backend) to
/// completion on the current thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // A simulated backend never returns Pending; a real one must not use block_on.
        std::thread::yield_now();
    }
}
