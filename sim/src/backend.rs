//! The simulated backend: the drill runner's [`Backend`] over a deterministic world.
//!
//! Every method completes at once; `sleep` runs the world forward. This is the backend
//! `lifeboat drill` uses by default, and the one the scenario tests run on.

use crate::world::{NodeSetup, World, WorldConfig};
use lifeboat_model::backend::{block_on, Backend, BackendError, Cluster};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::drill::{self, DrillReport, RunOptions};
use lifeboat_model::fault::{Capability, Fault};
use lifeboat_model::history::History;
use lifeboat_model::ids::NodeId;
use lifeboat_model::node::Dashboard;
use lifeboat_model::profile::ProfileName;
use lifeboat_model::scenario::Scenario;
use lifeboat_model::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

/// The drill runner's backend over the fast engine.
#[derive(Default)]
pub struct SimBackend {
    world: Option<World>,
}

impl SimBackend {
    /// A backend with no world yet; `provision` builds it.
    pub fn new() -> SimBackend {
        SimBackend::default()
    }

    fn w(&mut self) -> Result<&mut World, BackendError> {
        self.world
            .as_mut()
            .ok_or_else(|| BackendError::Other("the sim backend was not provisioned".into()))
    }

    fn known(&mut self, node: NodeId) -> Result<&mut World, BackendError> {
        let w = self.w()?;
        if w.nodes().contains(&node) {
            Ok(w)
        } else {
            Err(BackendError::Node {
                node,
                what: "not in this cluster".into(),
            })
        }
    }

    /// The world, once provisioned (for tests and the fuzzer).
    pub fn world(&self) -> Option<&World> {
        self.world.as_ref()
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn capabilities(&self) -> BTreeSet<Capability> {
        // The simulated world carries out every fault kind.
        Capability::ALL.into_iter().collect()
    }

    async fn provision(&mut self, cluster: &Cluster) -> Result<(), BackendError> {
        cluster.profile.validate().map_err(BackendError::Other)?;
        let nodes = cluster
            .nodes
            .iter()
            .map(|n| NodeSetup {
                id: n.id,
                host: n.host.clone(),
                blank: !n.primary,
            })
            .collect();
        let mut cfg = WorldConfig::new(cluster.seed, cluster.profile.clone(), nodes);
        cfg.latency_min = cluster.latency_min;
        cfg.latency_max = cluster.latency_max.max(cluster.latency_min);
        self.world = Some(World::new(cfg));
        Ok(())
    }

    async fn start(&mut self, node: NodeId) -> Result<(), BackendError> {
        self.known(node)?.start(node);
        Ok(())
    }

    async fn bootstrap(
        &mut self,
        node: NodeId,
        manifest: &BootstrapManifest,
    ) -> Result<(), BackendError> {
        let w = self.known(node)?;
        w.set_bootstrap(node, manifest.clone());
        w.start(node);
        Ok(())
    }

    async fn regenerate_manifest(&mut self) -> Result<BootstrapManifest, BackendError> {
        self.w()?.bootstrap_manifest().ok_or_else(|| {
            BackendError::Other("the snapshot store is empty: no head to name".into())
        })
    }

    async fn snapshot_head(&mut self) -> Result<Option<String>, BackendError> {
        Ok(self.w()?.snapshot_head())
    }

    async fn inject(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.w()?.inject(fault);
        Ok(())
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.w()?.heal(fault);
        Ok(())
    }

    async fn probe(&mut self, node: NodeId) -> Result<Option<Dashboard>, BackendError> {
        Ok(self.known(node)?.probe(node))
    }

    async fn send_chat(&mut self, text: &str) -> Result<i64, BackendError> {
        Ok(self.w()?.send_chat(text))
    }

    async fn reply_to(&mut self, update_id: i64) -> Result<Option<NodeId>, BackendError> {
        Ok(self.w()?.answered_by(update_id))
    }

    async fn file_hashes(
        &mut self,
        node: NodeId,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        Ok(self.known(node)?.file_hashes(node))
    }

    fn now(&self) -> Millis {
        self.world.as_ref().map_or(Millis::ZERO, |w| w.now())
    }

    async fn sleep(&mut self, d: Millis) -> Result<(), BackendError> {
        self.w()?.run_for(d);
        Ok(())
    }

    async fn history(&mut self) -> Result<History, BackendError> {
        Ok(self.w()?.history().clone())
    }

    async fn teardown(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Runs a scenario on the simulated backend: the scenario's profile and seed unless
/// overridden, with the runner's default pacing. `lifeboat drill`, `lifeboat replay` and
/// the fuzzer all run through here, so a written failure replays to the same trace hash.
pub fn run_scenario(
    scenario: &Scenario,
    profile: Option<ProfileName>,
    seed: Option<u64>,
    progress: &mut dyn FnMut(&str),
) -> DrillReport {
    let mut backend = SimBackend::new();
    block_on(drill::run(
        &mut backend,
        scenario,
        scenario.profile(profile),
        seed.unwrap_or(scenario.seed),
        &RunOptions::default(),
        progress,
    ))
}
