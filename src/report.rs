//! `report.html`: a timeline a person can read, with a lane per node showing its role over
//! time, fault windows shaded, chat messages and replies, lease tokens, snapshot
//! publishes and the takeover latency marked; then the criteria, steps and invariants.

use lifeboat_model::check::{fault_windows, Status};
use lifeboat_model::drill::{fmt_time, CriterionStatus, DrillReport};
use lifeboat_model::history::{Event, PollOutcome, Role};
use lifeboat_model::ids::NodeId;
use lifeboat_model::time::Millis;
use std::collections::BTreeMap;
use std::fmt::Write;

const LEFT: f64 = 110.0;
const WIDTH: f64 = 1100.0;
const LANE: f64 = 46.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(role: Role) -> &'static str {
    match role {
        Role::Leader => "#2e9e4f",
        Role::Follower => "#3b7dd8",
        Role::Candidate => "#e0b000",
        Role::Restoring => "#8e5bd1",
        Role::Booting => "#9a9a9a",
        Role::SteppingDown => "#e07b00",
        Role::Stopped => "#e6e6e6",
    }
}

/// Renders the report.
pub fn html(r: &DrillReport) -> String {
    let h = &r.history;
    let end = h.end().max(Millis(1));
    let x = |t: Millis| LEFT + WIDTH * t.0 as f64 / end.0 as f64;
    let mut nodes: Vec<NodeId> = h.iter().filter_map(|e| e.event.node()).collect();
    nodes.sort();
    nodes.dedup();
    let lane = |n: NodeId| nodes.iter().position(|m| *m == n).unwrap_or(0) as f64 * LANE + 30.0;
    let tg_lane = nodes.len() as f64 * LANE + 30.0;
    let height = tg_lane + LANE + 30.0;
    let mut svg = String::new();
    let _ = write!(svg, "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{height}' font-family='sans-serif' font-size='11'>", LEFT + WIDTH + 20.0);
    // Fault windows first, so everything else draws over them.
    let windows: Vec<(String, Millis, Millis)> = fault_windows(h)
        .into_iter()
        .map(|w| (w.fault.to_string(), w.start, w.end.unwrap_or(end)))
        .collect();
    for (k, s, e) in &windows {
        let _ = write!(svg, "<rect x='{:.1}' y='18' width='{:.1}' height='{:.1}' fill='#ff4d4d' opacity='0.13'><title>{}</title></rect>", x(*s), (x(*e) - x(*s)).max(2.0), tg_lane + LANE - 10.0, esc(k));
        let _ = write!(
            svg,
            "<text x='{:.1}' y='14' fill='#b00'>{}</text>",
            x(*s) + 2.0,
            esc(k)
        );
    }
    // Role lanes.
    let mut role_at: BTreeMap<NodeId, (Role, Millis)> = BTreeMap::new();
    let mut segs: Vec<(NodeId, Role, Millis, Millis)> = Vec::new();
    for e in h.iter() {
        let change = match &e.event {
            Event::RoleChanged { node, role, .. } => Some((*node, *role)),
            Event::ProcessExited { node, .. } => Some((*node, Role::Stopped)),
            _ => None,
        };
        if let Some((n, role)) = change {
            if let Some((prev, since)) = role_at.insert(n, (role, e.at)) {
                segs.push((n, prev, since, e.at));
            }
        }
    }
    for (n, (role, since)) in role_at {
        segs.push((n, role, since, end));
    }
    for n in &nodes {
        let _ = write!(
            svg,
            "<text x='8' y='{:.1}' font-weight='bold'>node {n}</text>",
            lane(*n) + 20.0
        );
    }
    let _ = write!(
        svg,
        "<text x='8' y='{:.1}' font-weight='bold'>telegram</text>",
        tg_lane + 20.0
    );
    for (n, role, s, e) in &segs {
        let _ = write!(svg, "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='26' fill='{}'><title>{n} {role} {}–{}</title></rect>", x(*s), lane(*n) + 4.0, (x(*e) - x(*s)).max(0.5), color(*role), fmt_time(*s), fmt_time(*e));
    }
    // Marks: chat, replies, tokens, publishes, conflicts.
    for e in h.iter() {
        let t = x(e.at);
        match &e.event {
            Event::ChatSent { update_id, text } => {
                let _ = write!(svg, "<circle cx='{t:.1}' cy='{:.1}' r='4' fill='#333'><title>{} chat {update_id}: {}</title></circle>", tg_lane + 16.0, fmt_time(e.at), esc(text));
            }
            Event::ChatReplied {
                update_id, node, ..
            } => {
                let _ = write!(svg, "<circle cx='{t:.1}' cy='{:.1}' r='4' fill='#fff' stroke='#000'><title>{} {node} answered {update_id}</title></circle>", lane(*node) + 17.0, fmt_time(e.at));
            }
            Event::LeaseGranted { node, token, .. } => {
                let _ = write!(
                    svg,
                    "<text x='{t:.1}' y='{:.1}' fill='#060'>token {token}</text>",
                    lane(*node) + 42.0
                );
            }
            Event::SnapshotPublished {
                node, id, accepted, ..
            } => {
                let c = if *accepted { "#075" } else { "#c00" };
                let _ = write!(svg, "<rect x='{:.1}' y='{:.1}' width='3' height='10' fill='{c}'><title>{} {node} published {}</title></rect>", t - 1.5, lane(*node), fmt_time(e.at), esc(id));
            }
            Event::PollEnded {
                node: Some(n),
                outcome: PollOutcome::Conflict,
                ..
            } => {
                let _ = write!(svg, "<text x='{:.1}' y='{:.1}' fill='#c00' font-weight='bold'>✕<title>{} 409 conflict on {n}</title></text>", t - 3.0, lane(*n) + 22.0, fmt_time(e.at));
            }
            Event::RestoreVerified { node, snapshot, .. } => {
                let _ = write!(
                    svg,
                    "<text x='{t:.1}' y='{:.1}' fill='#508'>restored {}</text>",
                    lane(*node) + 42.0,
                    esc(snapshot)
                );
            }
            _ => {}
        }
    }
    for tk in &r.takeovers {
        if let (Some(s), Some(n), Some(lat)) = (tk.served_at, tk.new_leader, tk.latency) {
            let y = lane(n) - 2.0;
            let _ = write!(svg, "<line x1='{:.1}' x2='{:.1}' y1='{y:.1}' y2='{y:.1}' stroke='#000' stroke-width='2' marker-end='url(#a)'/><text x='{:.1}' y='{:.1}' font-weight='bold'>takeover {}</text>", x(tk.lost_at), x(s), x(tk.lost_at), y - 3.0, fmt_time(lat));
        }
    }
    let _ = write!(
        svg,
        "<line x1='{LEFT}' x2='{}' y1='{:.1}' y2='{:.1}' stroke='#999'/>",
        LEFT + WIDTH,
        height - 20.0,
        height - 20.0
    );
    for i in 0..=10 {
        let t = Millis(end.0 * i / 10);
        let _ = write!(
            svg,
            "<text x='{:.1}' y='{:.1}' fill='#555'>{}</text>",
            x(t) - 10.0,
            height - 6.0,
            fmt_time(t)
        );
    }
    svg.push_str("</svg>");

    let mut out = String::new();
    let verdict_color = match r.verdict {
        lifeboat_model::scenario::Verdict::Pass => "#2e9e4f",
        lifeboat_model::scenario::Verdict::Fail => "#c00",
        lifeboat_model::scenario::Verdict::Unknown => "#e07b00",
    };
    let _ = write!(out, "<!doctype html><html><head><meta charset='utf-8'><title>lifeboat: {} ({})</title><style>body{{font-family:sans-serif;margin:20px}}table{{border-collapse:collapse;margin:10px 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}.ok{{color:#2e9e4f}}.bad{{color:#c00;font-weight:bold}}.unjudged{{color:#e07b00}}</style></head><body>", esc(&r.scenario), r.profile);
    let _ = write!(out, "<h1>{} · profile {} · backend {}</h1><p style='font-size:20px;color:{verdict_color}'><b>{}</b></p><pre>{}</pre>", esc(&r.scenario), r.profile, esc(&r.backend), r.verdict, esc(&r.reason));
    let _ = write!(
        out,
        "<p>seed {} · trace hash <code>{}</code> · duration {}</p>",
        r.seed,
        r.trace_hash,
        fmt_time(r.duration)
    );
    let _ = write!(out, "<p>Legend: <span style='color:#2e9e4f'>■ leader</span> <span style='color:#3b7dd8'>■ follower</span> <span style='color:#e0b000'>■ candidate</span> <span style='color:#8e5bd1'>■ restoring</span> <span style='color:#9a9a9a'>■ booting</span> · shaded red: fault window · ● chat sent · ○ reply · ✕ getUpdates 409</p>");
    out.push_str(&svg);
    out.push_str("<h2>Success criteria</h2><table><tr><th>#</th><th>criterion</th><th>met</th><th>at</th><th>detail</th></tr>");
    for c in &r.criteria {
        let cls = match c.status {
            CriterionStatus::Met => "ok",
            CriterionStatus::NotMet => "bad",
            CriterionStatus::NotJudged | CriterionStatus::OutOfScope => "unjudged",
        };
        let word = c.status.words();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class='{cls}'>{word}</td><td>{}</td><td>{}</td></tr>",
            c.id,
            esc(&c.name),
            c.at.map(fmt_time).unwrap_or_default(),
            esc(&c.detail)
        );
    }
    out.push_str("</table><h2>Invariants</h2><table><tr><th>invariant</th><th>status (what was judged)</th><th>violations and notes</th></tr>");
    for inv in &r.invariants {
        let mut text = String::new();
        for v in &inv.violations {
            let _ = write!(
                text,
                "<div class='bad'>{}: {}</div>",
                fmt_time(v.at),
                esc(&v.explanation)
            );
        }
        for n in &inv.notes {
            let _ = write!(text, "<div>{}</div>", esc(n));
        }
        let cls = match inv.status {
            Status::Held => "ok",
            Status::Violated => "bad",
            Status::NotJudged => "unjudged",
        };
        let word = esc(&inv.summary());
        let _ = write!(
            out,
            "<tr><td>{}</td><td class='{cls}'>{word}</td><td>{text}</td></tr>",
            inv.invariant
        );
    }
    out.push_str("</table><h2>Steps</h2><table><tr><th>#</th><th>phase</th><th>step</th><th>criterion</th><th>result</th><th>ended</th><th>detail</th></tr>");
    for s in &r.steps {
        let (cls, word) = if s.ok {
            ("ok", "ok")
        } else {
            ("bad", "FAILED")
        };
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class='{cls}'>{word}</td><td>{}</td><td>{}</td></tr>", s.number, esc(s.phase.as_deref().unwrap_or("")), esc(&s.action), s.criterion.map(|c| c.to_string()).unwrap_or_default(), fmt_time(s.ended), esc(&s.detail));
    }
    out.push_str("</table></body></html>\n");
    out
}
