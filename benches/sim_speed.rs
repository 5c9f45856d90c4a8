//! Simulation speed on one core: ten-minute AAA drills per second and simulated seconds
//! per second, on the fast engine and on the turmoil engine, beside a bare turmoil world
//! with the same hosts, tick and duration whose hosts only run timers, all measured in
//! the same run. Criterion times one fast-engine drill alongside.
//!
//! `cargo bench --bench sim_speed`; `LIFEBOAT_BENCH_FULL=1` for more runs per row.
//!
//! The AAA drill is `scenarios/aaa-drill.toml` (fenced) with its settle time stretched to
//! ten simulated minutes. Its turmoil hosts do not all run all the time (node `c` boots
//! late, node `a` is stopped at phase 3 and its host crashed), so a ten-minute fault-free
//! fenced drill (a fuzz case with no faults: all six hosts up throughout) is measured on
//! turmoil too. Everything runs on the bench's one thread; figures per second are per
//! second of that thread's CPU time, with wall time beside it.

mod common;

use common::{per_run, pick, Table};
use criterion::{criterion_group, criterion_main, Criterion};
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::scenario::{Scenario, Verdict};
use lifeboat_model::time::Millis;
use lifeboat_sim::backend::{run_scenario, Engine};
use lifeboat_sim::fuzz::{case_scenario, FaultPlan, CASE_LENGTH};
use lifeboat_sim::measure::bare_turmoil_world;
use std::hint::black_box;
use std::time::Duration;

/// Ten simulated minutes.
const TEN_MINUTES: Millis = Millis::secs(600);
/// How often a bare host's timer fires (the bare world's cost hardly depends on it:
/// turmoil's cost is per step and running host).
const BARE_TIMER: Millis = Millis::secs(1);

/// The AAA drill, stretched to ten simulated minutes.
fn aaa_ten_minutes() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/aaa-drill.toml");
    let text = std::fs::read_to_string(path).expect("scenarios/aaa-drill.toml");
    let mut s = Scenario::parse(path, &text).expect("the AAA drill parses");
    let r = run_scenario(&s, Engine::Fast, None, None, &mut |_| {});
    let steps_end = r.steps.last().expect("the drill has steps").ended;
    s.settle = TEN_MINUTES.saturating_sub(steps_end);
    s
}

fn drill(s: &Scenario, engine: Engine) {
    let r = run_scenario(s, engine, None, None, &mut |_| {});
    assert_eq!(r.verdict, Verdict::Pass, "{engine}: {}", r.reason);
}

fn table(aaa: &Scenario) {
    assert_eq!(
        CASE_LENGTH, TEN_MINUTES,
        "the fuzz case is a ten-minute drill"
    );
    let quiet = case_scenario(
        1,
        &Profile::default_for(ProfileName::Fenced),
        &FaultPlan::default(),
    );
    let slow = pick(1, 3);
    let bare = per_run(slow, || {
        black_box(bare_turmoil_world(3, TEN_MINUTES, BARE_TIMER));
    });
    let rows = [
        (
            "fast engine, AAA drill",
            pick(20, 200),
            per_run(pick(20, 200), || drill(aaa, Engine::Fast)),
        ),
        (
            "turmoil engine, AAA drill",
            slow,
            per_run(slow, || drill(aaa, Engine::Turmoil)),
        ),
        (
            "turmoil engine, fault-free fenced drill",
            slow,
            per_run(slow, || drill(&quiet, Engine::Turmoil)),
        ),
        ("bare turmoil world, timers only", slow, bare),
    ];
    let sim = TEN_MINUTES.as_secs_f64();
    let vs_bare = |cpu: Option<Duration>| cpu.zip(bare.1).map(|(c, b)| c.div_duration_f64(b));
    let cell = |v: Option<f64>, f: fn(f64) -> String| v.map_or("-".to_string(), f);
    let mut t = Table::new(&[
        "world",
        "runs",
        "wall s per drill",
        "CPU s per drill",
        "drills per CPU s",
        "simulated s per CPU s",
        "simulated s per wall s",
        "CPU vs bare turmoil",
    ]);
    for (name, runs, (wall, cpu)) in rows {
        let cpu_s = cpu.map(|c| c.as_secs_f64());
        t.row(vec![
            name.into(),
            runs.to_string(),
            format!("{:.4}", wall.as_secs_f64()),
            cell(cpu_s, |c| format!("{c:.4}")),
            cell(cpu_s.map(|c| 1.0 / c), |v| format!("{v:.2}")),
            cell(cpu_s.map(|c| sim / c), |v| format!("{v:.0}")),
            format!("{:.0}", sim / wall.as_secs_f64()),
            cell(vs_bare(cpu), |r| match r < 0.1 {
                true => format!("{r:.5}x"),
                false => format!("{r:.2}x"),
            }),
        ]);
    }
    t.print(&format!(
        "Ten simulated minutes on one core: 3 nodes; turmoil worlds run 6 hosts at a 1 ms tick; bare hosts sleep {BARE_TIMER} in a loop ({} mode)",
        common::mode()
    ));
    for (name, (_, cpu)) in [("AAA drill", rows[1].2), ("fault-free drill", rows[2].2)] {
        if let Some(r) = vs_bare(cpu) {
            let verdict = if r <= 1.5 { "met" } else { "NOT met" };
            println!("target: turmoil engine ({name}) {r:.2}x the bare turmoil world's CPU time (<= 1.50x): {verdict}");
        }
    }
}

fn bench(c: &mut Criterion) {
    let aaa = aaa_ten_minutes();
    table(&aaa);
    c.bench_function("sim_speed/ten-minute AAA drill, fast engine", |b| {
        b.iter(|| drill(black_box(&aaa), Engine::Fast))
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
