//! Event logs on one timeline: what a node daemon or a double saw, stamped with true time.
//!
//! Why: the checkers judge one history, but on real machines events happen in several
//! processes (each node, the Telegram double). Each keeps an [`EventLog`] of model
//! [`Event`]s stamped with the host's real-time clock in microseconds (every container
//! on one Docker engine shares the host's clock; a node's injected clock offset is a
//! setting of the node and never touches these stamps). A backend reads the logs over
//! HTTP (`GET …?since=N`) and merges them by stamp into one [`History`].

use lifeboat_model::history::{Event, History};
use lifeboat_model::Millis;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// One event with its true time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// Microseconds since the Unix epoch, by the host's real-time clock.
    pub at_us: u64,
    /// The event.
    pub event: Event,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An append-only log of stamped events, optionally mirrored to a JSON-lines file so
/// that what a process saw survives its being killed.
#[derive(Debug, Default)]
pub struct EventLog {
    entries: Mutex<Vec<Stamped>>,
    file: Option<PathBuf>,
}

impl EventLog {
    /// A log in memory only.
    pub fn new() -> EventLog {
        EventLog::default()
    }

    /// A log mirrored to `file` (appended, one JSON line per event); entries already in
    /// the file are loaded first, so a restarted process keeps its earlier events.
    pub fn with_file(file: PathBuf) -> EventLog {
        let mut entries = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Ok(e) = serde_json::from_str::<Stamped>(line) {
                    entries.push(e);
                }
            }
        }
        EventLog {
            entries: Mutex::new(entries),
            file: Some(file),
        }
    }

    /// Records `event` now.
    pub fn record(&self, event: Event) {
        self.record_at(now_us(), event);
    }

    /// Records `event` at `at_us`.
    pub fn record_at(&self, at_us: u64, event: Event) {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = Stamped { at_us, event };
        if let Some(path) = &self.file {
            // Best effort: a full disk must not stop the node; the in-memory log remains.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let mut line = serde_json::to_vec(&e).expect("events serialize");
                line.push(b'\n');
                let _ = f.write_all(&line);
            }
        }
        g.push(e);
    }

    /// Entries from position `since` on, and the position after them.
    pub fn since(&self, since: usize) -> (Vec<Stamped>, usize) {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let from = since.min(g.len());
        (g[from..].to_vec(), g.len())
    }
}

/// The answer of a `GET …/history?since=N` endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The entries from `since` on.
    pub entries: Vec<Stamped>,
    /// The position to ask for next.
    pub next: usize,
}

/// Merges stamped events from several sources into one history whose times are
/// milliseconds since `origin_us`. Events at the same microsecond keep the order of
/// `sources` and their order within a source. Events before the origin are put at 0.
pub fn merge(origin_us: u64, sources: &[&[Stamped]]) -> History {
    let mut all: Vec<(u64, usize, usize, &Event)> = Vec::new();
    for (s, list) in sources.iter().enumerate() {
        for (i, e) in list.iter().enumerate() {
            all.push((e.at_us, s, i, &e.event));
        }
    }
    all.sort_by_key(|(at, s, i, _)| (*at, *s, *i));
    let mut h = History::new();
    for (at, _, _, ev) in all {
        h.push(Millis(at.saturating_sub(origin_us) / 1000), ev.clone());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_model::NodeId;

    #[test]
    fn merge_orders_by_stamp_then_source() {
        let a = vec![
            Stamped {
                at_us: 5_000,
                event: Event::Paused { node: NodeId(0) },
            },
            Stamped {
                at_us: 9_000,
                event: Event::Resumed { node: NodeId(0) },
            },
        ];
        let b = vec![Stamped {
            at_us: 5_000,
            event: Event::Paused { node: NodeId(1) },
        }];
        let h = merge(1_000, &[&a, &b]);
        let nodes: Vec<_> = h.iter().map(|e| (e.at, e.event.node())).collect();
        assert_eq!(
            nodes,
            vec![
                (Millis(4), Some(NodeId(0))),
                (Millis(4), Some(NodeId(1))),
                (Millis(8), Some(NodeId(0)))
            ]
        );
    }
}
