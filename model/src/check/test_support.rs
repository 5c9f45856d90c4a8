//! Constructors shared by the checkers' tests, so a test history reads one line per event.

// The types every checker test names, so each test module needs only this glob.
pub(super) use super::{check, takeovers, CheckConfig, Invariant, Report, Violation};
pub(super) use crate::history::{Event, FaultInfo, History, PollOutcome, Role};
pub(super) use crate::ids::NodeId;
pub(super) use crate::time::Millis;

// ---- constructors that keep histories one line per event ----

pub(super) fn n(c: char) -> NodeId {
    NodeId::parse(&c.to_string()).unwrap()
}
pub(super) fn lead(node: char, token: u64, why: &str) -> Event {
    Event::RoleChanged {
        node: n(node),
        role: Role::Leader,
        token: Some(token),
        why: why.into(),
    }
}
pub(super) fn role(node: char, role: Role) -> Event {
    Event::RoleChanged {
        node: n(node),
        role,
        token: None,
        why: String::new(),
    }
}
pub(super) fn paused(node: char) -> Event {
    Event::Paused { node: n(node) }
}
pub(super) fn resumed(node: char) -> Event {
    Event::Resumed { node: n(node) }
}
pub(super) fn killed(node: char) -> Event {
    Event::ProcessExited {
        node: n(node),
        code: None,
        how: "kill".into(),
    }
}
pub(super) fn lock_read(node: char, host: &str, holder: Option<&str>, readable: bool) -> Event {
    Event::LockFileRead {
        node: n(node),
        host: host.into(),
        holder: holder.map(Into::into),
        last_seen_at: None,
        readable,
    }
}
pub(super) fn poll(node: char, poll: u64) -> Event {
    Event::PollStarted {
        node: Some(n(node)),
        poll,
        offset: None,
        timeout: Millis::secs(30),
    }
}
pub(super) fn foreign_poll(poll: u64) -> Event {
    Event::PollStarted {
        node: None,
        poll,
        offset: None,
        timeout: Millis::secs(30),
    }
}
pub(super) fn conflict(victim: char, poll: u64, by: Option<char>) -> Event {
    Event::PollEnded {
        node: Some(n(victim)),
        poll,
        outcome: PollOutcome::Conflict,
        by: Some(by.map(n)),
    }
}
pub(super) fn sent(update: i64) -> Event {
    Event::ChatSent {
        update_id: update,
        text: format!("msg {update}"),
    }
}
pub(super) fn replied(update: i64, node: char) -> Event {
    Event::ChatReplied {
        update_id: update,
        node: n(node),
        incarnation: None,
        token: None,
        sent_at: None,
    }
}
/// A reply the world saw sent at `sent` (ms); it arrives at the entry's time.
pub(super) fn replied_sent(update: i64, node: char, sent: u64) -> Event {
    Event::ChatReplied {
        update_id: update,
        node: n(node),
        incarnation: Some(1),
        token: None,
        sent_at: Some(Millis(sent)),
    }
}
pub(super) fn publish(
    node: char,
    id: &str,
    version: u64,
    parent: Option<&str>,
    token: u64,
) -> Event {
    Event::SnapshotPublished {
        node: n(node),
        id: id.into(),
        version,
        parent: parent.map(Into::into),
        token: Some(token),
        state_version: version,
        accepted: true,
        note: String::new(),
    }
}
pub(super) fn refused_publish(node: char, id: &str, token: u64) -> Event {
    match publish(node, id, 9, None, token) {
        Event::SnapshotPublished {
            node,
            id,
            version,
            parent,
            token,
            state_version,
            ..
        } => Event::SnapshotPublished {
            node,
            id,
            version,
            parent,
            token,
            state_version,
            accepted: false,
            note: "stale token".into(),
        },
        _ => unreachable!(),
    }
}
pub(super) fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(f, h)| (f.to_string(), h.to_string()))
        .collect()
}
pub(super) fn restore(
    node: char,
    fetch: u64,
    state: u64,
    rec: &[(&str, &str)],
    got: &[(&str, &str)],
) -> Event {
    Event::RestoreVerified {
        node: n(node),
        fetch_id: fetch,
        snapshot: "s2".into(),
        version: 2,
        state_version: state,
        recorded: files(rec),
        restored: files(got),
    }
}
pub(super) fn served(node: char, fetch: u64, tamper: Option<&str>) -> Event {
    Event::SnapshotServed {
        node: n(node),
        fetch_id: fetch,
        id: Some("s2".into()),
        tamper: tamper.map(Into::into),
    }
}
pub(super) fn refused(node: char, fetch: u64) -> Event {
    Event::RestoreRefused {
        node: n(node),
        fetch_id: Some(fetch),
        reason: "signature does not verify".into(),
    }
}
pub(super) fn state(node: char, version: u64) -> Event {
    Event::StateChanged {
        node: n(node),
        version,
    }
}
pub(super) fn probe(node: char, ready: bool, role: Role, observed: Option<char>) -> Event {
    Event::HealthProbe {
        node: n(node),
        healthz: true,
        readyz: ready,
        role,
        observed_leader: observed.map(n),
    }
}
pub(super) fn fault(kind: &str, target: &str) -> Event {
    Event::Fault(FaultInfo {
        kind: kind.into(),
        target: target.into(),
        detail: String::new(),
    })
}
pub(super) fn heal(kind: &str, target: &str) -> Event {
    Event::Heal(FaultInfo {
        kind: kind.into(),
        target: target.into(),
        detail: String::new(),
    })
}
/// A history from `(milliseconds, event)` pairs.
pub(super) fn hist(events: Vec<(u64, Event)>) -> History {
    let mut h = History::new();
    for (at, e) in events {
        h.push(Millis(at), e);
    }
    h
}
pub(super) fn cfg() -> CheckConfig {
    CheckConfig {
        takeover_bound: Millis::secs(10),
        rpo_bound: Millis::secs(5),
        observe_lag: Millis::ZERO,
    }
}
pub(super) fn run(inv: Invariant, h: &History) -> Report {
    check(inv, h, &cfg())
}
/// The single violation a report must hold, with its explanation checked for facts.
pub(super) fn only_violation(r: &Report, facts: &[&str]) -> Violation {
    assert_eq!(r.violations.len(), 1, "expected one violation: {r:#?}");
    let v = r.violations[0].clone();
    for fact in facts {
        assert!(
            v.explanation.contains(fact),
            "explanation lacks `{fact}`: {}",
            v.explanation
        );
    }
    v
}
/// A table row: a name, a history and the facts its one violation must state.
pub(super) type Case = (&'static str, Vec<(u64, Event)>, &'static [&'static str]);

pub(super) fn assert_ok(r: &Report) {
    assert!(r.ok(), "expected no violation: {r:#?}");
}

pub(super) fn assert_note(r: &Report, needle: &str) {
    assert!(
        r.notes.iter().any(|n| n.contains(needle)),
        "no note contains {needle:?}: {:?}",
        r.notes
    );
}

pub(super) fn rpo_history(restored_state: u64) -> History {
    hist(vec![
        (1000, lead('a', 1, "won")),
        (2000, state('a', 1)),
        (3000, state('a', 2)),
        (4000, restore('b', 1, restored_state, &[], &[])),
        (10_000, killed('a')),
        (15_000, lead('b', 2, "lease expired")),
    ])
}
