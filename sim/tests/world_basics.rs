//! The fast engine's basic behaviour on both profiles: election, takeover, chat, split
//! brain under OpenTrident's host-local lock file.

use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, Role};
use lifeboat_model::ids::NodeId;
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::time::Millis;
use lifeboat_sim::world::{NodeSetup, World, WorldConfig};

const A: NodeId = NodeId(0);
const B: NodeId = NodeId(1);

fn world(profile: ProfileName, seed: u64) -> World {
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
    World::new(WorldConfig::new(seed, Profile::default_for(profile), nodes))
}

#[test]
fn fenced_elects_then_fails_over_after_kill() {
    let mut w = world(ProfileName::Fenced, 1);
    w.start(A);
    w.run_for(Millis::secs(5));
    assert_eq!(w.role(A), Role::Leader);
    let m = w.bootstrap_manifest().unwrap();
    w.set_bootstrap(B, m);
    w.start(B);
    w.run_for(Millis::secs(10));
    assert_eq!(w.role(B), Role::Follower, "b follows while a leads");
    let u = w.send_chat("ping 1");
    w.run_for(Millis::secs(2));
    assert_eq!(w.answered_by(u), Some(A));
    w.inject(&Fault::Kill { node: A });
    let u2 = w.send_chat("ping 2");
    w.run_for(Millis::secs(30));
    assert_eq!(w.role(B), Role::Leader);
    assert_eq!(w.answered_by(u2), Some(B));
    let conflicts = w
        .history()
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::PollEnded {
                    outcome: lifeboat_model::history::PollOutcome::Conflict,
                    ..
                }
            )
        })
        .count();
    assert_eq!(conflicts, 0);
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
    let conflicts = w
        .history()
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::PollEnded {
                    outcome: lifeboat_model::history::PollOutcome::Conflict,
                    ..
                }
            )
        })
        .count();
    assert!(conflicts > 0);
}
