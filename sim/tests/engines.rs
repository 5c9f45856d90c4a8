//! The basic behaviour of both engines, from one set of tests run on each: election,
//! takeover, chat, split brain under OpenTrident's host-local lock file, replay from a
//! seed, and a leader cut off from the lease store.
//!
//! Contents (in `fast::` for the event-driven engine and `turmoil::` for turmoil):
//! - `fenced_elects_then_fails_over_after_kill`
//! - `v1_node_b_leads_at_once_from_its_own_empty_lock_file`
//! - `same_seed_same_trace_hash`: a run replays exactly from its seed.
//! - `fenced_leader_cut_from_lease_store_steps_down_before_takeover`: a partition.

/// The same tests over an engine type with the `World` API.
macro_rules! engine_tests {
    ($module:ident, $engine:ty) => {
        mod $module {
            use lifeboat_model::fault::Fault;
            use lifeboat_model::history::{Event, PollOutcome, Role};
            use lifeboat_model::ids::{Endpoint, NodeId};
            use lifeboat_model::profile::{Profile, ProfileName};
            use lifeboat_model::time::Millis;
            use lifeboat_sim::world::{NodeSetup, WorldConfig};

            type Engine = $engine;

            const A: NodeId = NodeId(0);
            const B: NodeId = NodeId(1);

            fn world(profile: ProfileName, seed: u64) -> Engine {
                let nodes = vec![
                    NodeSetup {
                        id: A,
                        host: "a".into(),
                        blank: false,
                    },
                    NodeSetup {
                        id: B,
                        host: "b".into(),
                        blank: true,
                    },
                ];
                Engine::new(WorldConfig::new(seed, Profile::default_for(profile), nodes))
            }

            fn conflicts(w: &Engine) -> usize {
                w.history()
                    .iter()
                    .filter(|e| {
                        matches!(
                            &e.event,
                            Event::PollEnded {
                                outcome: PollOutcome::Conflict,
                                ..
                            }
                        )
                    })
                    .count()
            }

            /// a leads, b restores from the bootstrap manifest and follows.
            fn fenced_pair(seed: u64) -> Engine {
                let mut w = world(ProfileName::Fenced, seed);
                w.start(A);
                w.run_for(Millis::secs(5));
                assert_eq!(w.role(A), Role::Leader);
                let m = w.bootstrap_manifest().unwrap();
                w.set_bootstrap(B, m);
                w.start(B);
                w.run_for(Millis::secs(10));
                assert_eq!(w.role(B), Role::Follower, "b follows while a leads");
                w
            }

            #[test]
            fn fenced_elects_then_fails_over_after_kill() {
                let mut w = fenced_pair(1);
                let u = w.send_chat("ping 1");
                w.run_for(Millis::secs(2));
                assert_eq!(w.answered_by(u), Some(A));
                w.inject(&Fault::Kill { node: A }).unwrap();
                let u2 = w.send_chat("ping 2");
                w.run_for(Millis::secs(30));
                assert_eq!(w.role(B), Role::Leader);
                assert_eq!(w.answered_by(u2), Some(B));
                assert_eq!(conflicts(&w), 0);
            }

            #[test]
            fn v1_node_b_leads_at_once_from_its_own_empty_lock_file() {
                let mut w = world(ProfileName::OpentridentV1, 1);
                w.start(A);
                w.run_for(Millis::secs(70));
                assert_eq!(w.role(A), Role::Leader);
                let m = w.bootstrap_manifest().unwrap();
                w.set_bootstrap(B, m);
                w.start(B);
                w.run_for(Millis::secs(60));
                assert_eq!(
                    w.role(B),
                    Role::Leader,
                    "host-local lock file: b sees no lock"
                );
                assert!(conflicts(&w) > 0);
            }

            #[test]
            fn same_seed_same_trace_hash() {
                let run = |seed: u64| {
                    let mut w = fenced_pair(seed);
                    w.send_chat("ping");
                    w.inject(&Fault::Crash { node: A }).unwrap();
                    w.run_for(Millis::secs(20));
                    w.into_history()
                };
                let first = run(7);
                let second = run(7);
                assert!(first.entries.len() > 20, "the run did something");
                assert_eq!(first.trace_hash(), second.trace_hash());
            }

            #[test]
            fn fenced_leader_cut_from_lease_store_steps_down_before_takeover() {
                let mut w = fenced_pair(3);
                let cut = Fault::Partition {
                    a: Endpoint::Node(A),
                    b: Endpoint::LeaseStore,
                };
                w.inject(&cut).unwrap();
                let cut_at = w.now();
                w.run_for(Millis::secs(30));
                assert_eq!(
                    w.role(B),
                    Role::Leader,
                    "b takes over once a's lease expires"
                );
                assert_ne!(
                    w.role(A),
                    Role::Leader,
                    "a cannot renew, so it does not lead"
                );

                let h = w.history();
                let a_stepped_down = h
                    .iter()
                    .find(|e| {
                        e.at >= cut_at
                            && matches!(&e.event, Event::RoleChanged { node, role, .. } if *node == A && *role != Role::Leader)
                    })
                    .map(|e| e.at)
                    .expect("a steps down");
                let b_leads = h
                    .iter()
                    .find(|e| matches!(&e.event, Event::RoleChanged { node, role: Role::Leader, .. } if *node == B))
                    .map(|e| e.at)
                    .expect("b leads");
                assert!(
                    a_stepped_down < b_leads,
                    "a stops leading ({a_stepped_down}) before b leads ({b_leads})"
                );

                let u = w.send_chat("after the cut");
                w.run_for(Millis::secs(10));
                assert_eq!(w.answered_by(u), Some(B));
                assert_eq!(conflicts(&w), 0);

                w.heal(&cut).unwrap();
                w.run_for(Millis::secs(20));
                assert_eq!(
                    w.role(B),
                    Role::Leader,
                    "healing the cut does not move leadership back"
                );
                assert_eq!(
                    w.role(A),
                    Role::Follower,
                    "a follows again once it reaches the store"
                );
            }
        }
    };
}

engine_tests!(fast, lifeboat_sim::world::World);
engine_tests!(turmoil, lifeboat_sim::turmoil_engine::TurmoilWorld);
