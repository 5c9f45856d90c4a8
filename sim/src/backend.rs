//! The simulated backend: the drill runner's [`Backend`] over a deterministic world.
//!
//! Every method completes at once; `sleep` runs the world forward. This is the backend
//! `lifeboat drill` uses by default, and the one the scenario tests run on. Either engine
//! carries the world ([`Engine`]): the fast event-driven one by default, or the turmoil
//! one, whose hosts talk simulated TCP, to cross-check the fast one on the same scenario.

use crate::turmoil_engine::TurmoilWorld;
use crate::world::{NodeSetup, World, WorldConfig};
use lifeboat_model::backend::{block_on, Backend, BackendError, Cluster, EventKind};
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

/// Which engine carries a simulated run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// The event-driven world ([`crate::world`]): milliseconds per ten-minute drill.
    #[default]
    Fast,
    /// Turmoil hosts over simulated TCP ([`crate::turmoil_engine`]), a 1 ms tick: seconds
    /// per drill, for cross-checking the fast engine.
    Turmoil,
}

impl Engine {
    /// Both engines, fast first.
    pub const ALL: [Engine; 2] = [Engine::Fast, Engine::Turmoil];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fast => "fast",
            Engine::Turmoil => "turmoil",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("unknown engine `{s}`: expected `fast` or `turmoil`"))
    }
}

/// A provisioned world on one of the engines; both have the same methods. Boxed: a
/// backend holds one world for a whole run.
enum AnyWorld {
    Fast(Box<World>),
    Turmoil(Box<TurmoilWorld>),
}

/// Calls the same method on whichever engine holds the world.
macro_rules! on_world {
    ($world:expr, $w:ident => $body:expr) => {
        match $world {
            AnyWorld::Fast($w) => $body,
            AnyWorld::Turmoil($w) => $body,
        }
    };
}

/// The drill runner's backend over a simulated world.
#[derive(Default)]
pub struct SimBackend {
    engine: Engine,
    world: Option<AnyWorld>,
    /// The fast engine's event budget, for runs of untrusted scenarios.
    event_budget: Option<u64>,
}

impl SimBackend {
    /// A backend on `engine` with no world yet; `provision` builds it.
    pub fn new(engine: Engine) -> SimBackend {
        SimBackend {
            engine,
            world: None,
            event_budget: None,
        }
    }

    /// A fast-engine backend that stops the run with an error after `events` events: a
    /// bound on the time and memory one run of an untrusted scenario may take.
    pub fn with_event_budget(events: u64) -> SimBackend {
        SimBackend {
            event_budget: Some(events),
            ..SimBackend::new(Engine::Fast)
        }
    }

    fn w(&mut self) -> Result<&mut AnyWorld, BackendError> {
        self.world
            .as_mut()
            .ok_or_else(|| BackendError::Other("the sim backend was not provisioned".into()))
    }

    fn known(&mut self, node: NodeId) -> Result<&mut AnyWorld, BackendError> {
        let w = self.w()?;
        if on_world!(w, w => w.nodes()).contains(&node) {
            Ok(w)
        } else {
            Err(BackendError::Node {
                node,
                what: "not in this cluster".into(),
            })
        }
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

    fn observes(&self) -> BTreeSet<EventKind> {
        // The simulated world records every event the model defines.
        EventKind::ALL.into_iter().collect()
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
        cfg.hostnames = cluster
            .nodes
            .iter()
            .filter_map(|n| Some((n.id, n.hostname.clone()?)))
            .collect();
        self.world = Some(match self.engine {
            Engine::Fast => {
                let mut world = World::new(cfg);
                if let Some(events) = self.event_budget {
                    world.set_event_budget(events);
                }
                AnyWorld::Fast(Box::new(world))
            }
            Engine::Turmoil => AnyWorld::Turmoil(Box::new(TurmoilWorld::new(cfg))),
        });
        Ok(())
    }

    async fn start(&mut self, node: NodeId) -> Result<(), BackendError> {
        on_world!(self.known(node)?, w => w.start(node));
        Ok(())
    }

    async fn bootstrap(
        &mut self,
        node: NodeId,
        manifest: &BootstrapManifest,
    ) -> Result<(), BackendError> {
        on_world!(self.known(node)?, w => {
            w.set_bootstrap(node, manifest.clone());
            w.start(node);
        });
        Ok(())
    }

    async fn regenerate_manifest(&mut self) -> Result<BootstrapManifest, BackendError> {
        on_world!(self.w()?, w => w.bootstrap_manifest()).ok_or_else(|| {
            BackendError::Other("the snapshot store is empty: no head to name".into())
        })
    }

    async fn snapshot_head(&mut self) -> Result<Option<String>, BackendError> {
        Ok(on_world!(self.w()?, w => w.snapshot_head()))
    }

    async fn inject(&mut self, fault: &Fault) -> Result<(), BackendError> {
        on_world!(self.w()?, w => w.inject(fault)).map_err(BackendError::Other)
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), BackendError> {
        on_world!(self.w()?, w => w.heal(fault)).map_err(BackendError::Other)
    }

    async fn probe(&mut self, node: NodeId) -> Result<Option<Dashboard>, BackendError> {
        Ok(on_world!(self.known(node)?, w => w.probe(node)))
    }

    async fn send_chat(&mut self, text: &str) -> Result<i64, BackendError> {
        Ok(on_world!(self.w()?, w => w.send_chat(text)))
    }

    async fn reply_to(&mut self, update_id: i64) -> Result<Option<NodeId>, BackendError> {
        Ok(on_world!(self.w()?, w => w.answered_by(update_id)))
    }

    async fn file_hashes(
        &mut self,
        node: NodeId,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        Ok(on_world!(self.known(node)?, w => w.file_hashes(node)))
    }

    fn now(&self) -> Millis {
        self.world
            .as_ref()
            .map_or(Millis::ZERO, |w| on_world!(w, w => w.now()))
    }

    async fn sleep(&mut self, d: Millis) -> Result<(), BackendError> {
        let world = self.w()?;
        on_world!(world, w => w.run_for(d));
        if let AnyWorld::Fast(w) = world {
            if w.budget_exhausted() {
                return Err(BackendError::Other(format!(
                    "the run's event budget ({} events) is exhausted at {}",
                    w.events_processed(),
                    w.now()
                )));
            }
        }
        Ok(())
    }

    async fn history(&mut self) -> Result<History, BackendError> {
        Ok(on_world!(self.w()?, w => w.history().clone()))
    }

    async fn teardown(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Runs a scenario on the fast engine with an event budget (see
/// [`SimBackend::with_event_budget`]): how untrusted or mutated scenarios are run.
pub fn run_scenario_bounded(scenario: &Scenario, max_events: u64) -> DrillReport {
    let mut backend = SimBackend::with_event_budget(max_events);
    block_on(drill::run(
        &mut backend,
        scenario,
        scenario.profile(None),
        scenario.seed,
        &RunOptions::default(),
        &mut |_| {},
    ))
}

/// Runs a scenario on the simulated backend's `engine`: the scenario's profile and seed
/// unless overridden, with the runner's default pacing. `lifeboat drill`, `lifeboat
/// replay` and the fuzzer all run through here, so a written failure replays to the same
/// trace hash.
pub fn run_scenario(
    scenario: &Scenario,
    engine: Engine,
    profile: Option<ProfileName>,
    seed: Option<u64>,
    progress: &mut dyn FnMut(&str),
) -> DrillReport {
    let mut backend = SimBackend::new(engine);
    block_on(drill::run(
        &mut backend,
        scenario,
        scenario.profile(profile),
        seed.unwrap_or(scenario.seed),
        &RunOptions::default(),
        progress,
    ))
}
