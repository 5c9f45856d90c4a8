//! Lease semantics under every interleaving proptest generates: etcd's compare-and-set
//! register never lets two leases hold the leader key at once, and its tokens only rise.

use lifeboat_model::history::Event;
use lifeboat_model::ids::NodeId;
use lifeboat_model::lease::LeaseStore;
use lifeboat_model::proto::{From, LeaseReq, LeaseResp, Response};
use lifeboat_model::time::Millis;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Grant(u8),
    Campaign(u8),
    KeepAlive(u8),
    Revoke(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Grant),
        (0u8..3).prop_map(Op::Campaign),
        (0u8..3).prop_map(Op::KeepAlive),
        (0u8..3).prop_map(Op::Revoke),
        (0u64..4000).prop_map(Op::Advance),
    ]
}

proptest! {
    #[test]
    fn no_two_grants_overlap(ops in prop::collection::vec(op(), 1..200)) {
        let mut s = LeaseStore::new();
        let mut now = Millis::ZERO;
        let mut leases: [Option<i64>; 3] = [None; 3];
        let mut holder: Option<(NodeId, u64)> = None;
        let mut last_token = 0u64;
        for o in ops {
            let (mut replies, mut events) = (Vec::new(), Vec::new());
            let who = |n: u8| From { node: NodeId(n), incarnation: 1 };
            match o {
                Op::Grant(n) => s.handle(now, who(n), 1, LeaseReq::Grant { ttl: Millis(3000) }, &mut replies, &mut events),
                Op::Campaign(n) => match leases[n as usize] {
                    Some(lease) => s.handle(now, who(n), 2, LeaseReq::Campaign { lease, value: NodeId(n).to_string() }, &mut replies, &mut events),
                    None => continue,
                },
                Op::KeepAlive(n) => match leases[n as usize] {
                    Some(lease) => s.handle(now, who(n), 3, LeaseReq::KeepAlive { lease }, &mut replies, &mut events),
                    None => continue,
                },
                Op::Revoke(n) => match leases[n as usize].take() {
                    Some(lease) => s.handle(now, who(n), 4, LeaseReq::Revoke { lease }, &mut replies, &mut events),
                    None => continue,
                },
                Op::Advance(ms) => {
                    now = now + Millis(ms);
                    s.advance(now, &mut replies, &mut events);
                }
            }
            for r in &replies {
                if let Response::Lease(LeaseResp::Granted { lease, .. }) = r.resp {
                    leases[r.to.node.index()] = Some(lease);
                }
            }
            for e in events {
                match e {
                    Event::LeaseGranted { node, token, .. } => {
                        prop_assert!(holder.is_none(), "{node} granted token {token} while {holder:?} held the key");
                        prop_assert!(token > last_token, "token {token} not above {last_token}");
                        last_token = token;
                        holder = Some((node, token));
                    }
                    Event::LeaseEnded { token, .. } => {
                        prop_assert_eq!(holder.map(|h| h.1), Some(token));
                        holder = None;
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(s.holder().map(|h| h.revision), holder.map(|h| h.1));
        }
    }
}
