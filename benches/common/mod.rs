//! What the benchmarks share: quick or full mode, criterion's settings and a plain table.
//!
//! Quick mode (the default, what CI runs) uses fewer seeds and smaller sizes; set
//! `LIFEBOAT_BENCH_FULL=1` for the figures in `docs/performance.md`.
// Each bench includes this module and uses only part of it.
#![allow(dead_code)]

use criterion::Criterion;
use lifeboat_model::time::Millis;
use std::time::{Duration, Instant};

/// True when `LIFEBOAT_BENCH_FULL` is set to anything but `0`: the fuller runs by hand.
pub fn full() -> bool {
    std::env::var_os("LIFEBOAT_BENCH_FULL").is_some_and(|v| v != "0")
}

/// `quick` or `full`, for table titles.
pub fn mode() -> &'static str {
    if full() {
        "full"
    } else {
        "quick"
    }
}

/// Picks the quick or the full value.
pub fn pick<T>(quick: T, full_value: T) -> T {
    if full() {
        full_value
    } else {
        quick
    }
}

/// Criterion's settings: few, short samples in quick mode; the tables are the point.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(pick(10, 30))
        .warm_up_time(Duration::from_millis(pick(300, 2000)))
        .measurement_time(Duration::from_secs(pick(2, 10)))
}

/// A table printed as Markdown, columns padded so it also reads in a terminal.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Prints the title and the table to stdout.
    pub fn print(&self, title: &str) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!("\n{title}\n");
        println!("{}", line(&self.header));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("{}", line(&rule));
        for r in &self.rows {
            println!("{}", line(r));
        }
        println!();
    }
}

/// Simulated time in seconds with milliseconds (`10.123 s`), or `-` for none.
pub fn secs(m: Option<Millis>) -> String {
    m.map_or("-".into(), |m| format!("{:.3} s", m.as_secs_f64()))
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat`; `None` where the
/// kernel does not provide it. It moves on scheduler ticks (a few ms), so it suits runs
/// of seconds, not of milliseconds.
pub fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall and CPU time of one run of `f`, averaged over `runs` runs. On a shared machine the
/// CPU time is the steadier figure: it leaves out the time other processes held the core.
pub fn per_run(runs: u32, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    for _ in 0..runs {
        f();
    }
    let used = thread_cpu().zip(cpu).map(|(b, a)| (b - a) / runs);
    (wall.elapsed() / runs, used)
}
