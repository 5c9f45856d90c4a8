//! Takeover latency in simulated time, per profile and per way the leader is lost: p50,
//! p95, p99 and max over many seeds from the loss to the first reply by the new leader,
//! beside the profile's own lower bound and the published figures of `docs/prior-art.md`.
//! Criterion times one sample (one short drill on the fast engine) alongside.
//!
//! `cargo bench --bench takeover`; `LIFEBOAT_BENCH_FULL=1` for 1,000 seeds per row.

mod common;

use common::{pick, secs, Table};
use criterion::{criterion_group, criterion_main, Criterion};
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::scenario::NetworkSpec;
use lifeboat_model::time::Millis;
use lifeboat_sim::measure::{lower_bound, takeover_sample, takeover_samples, LossKind};
use std::hint::black_box;

fn table() {
    let seeds = pick(100, 1000);
    let latency_max = NetworkSpec::default().latency_max;
    let mut t = Table::new(&[
        "profile",
        "leader lost by",
        "p50",
        "p95",
        "p99",
        "max",
        "lower bound",
        "p99 - bound",
        "inv. 4 bound",
        "no takeover",
        "already led",
    ]);
    let mut verdicts = Vec::new();
    for name in [ProfileName::Fenced, ProfileName::OpentridentV1] {
        let profile = Profile::default_for(name);
        for loss in LossKind::ALL {
            let process_fault = matches!(loss, LossKind::Crash | LossKind::Stop | LossKind::Pause);
            if name == ProfileName::OpentridentV1 && !process_fault {
                continue;
            }
            let s = takeover_samples(&profile, loss, 1..1 + seeds);
            let bound = lower_bound(&profile, loss, latency_max);
            let over = s.percentile(99).map(|p99| {
                let sign = if p99 >= bound { "+" } else { "-" };
                let d = if p99 >= bound {
                    p99 - bound
                } else {
                    bound - p99
                };
                format!("{sign}{:.3} s", d.as_secs_f64())
            });
            t.row(vec![
                name.to_string(),
                loss.name().into(),
                secs(s.percentile(50)),
                secs(s.percentile(95)),
                secs(s.percentile(99)),
                secs(s.max()),
                secs(Some(bound)),
                over.unwrap_or("-".into()),
                secs(Some(profile.takeover_bound())),
                s.no_takeover.to_string(),
                s.already_led.to_string(),
            ]);
            match (name, loss, s.percentile(99)) {
                (ProfileName::Fenced, LossKind::Crash, p99) => verdicts.push(format!(
                    "fenced crash p99 {} <= lower bound + 1 s ({}): {}",
                    secs(p99),
                    secs(Some(bound + Millis::secs(1))),
                    met(p99.is_some_and(|p| p <= bound + Millis::secs(1)) && s.no_takeover == 0)
                )),
                (ProfileName::Fenced, LossKind::Stop, _) => verdicts.push(format!(
                    "fenced graceful stop max {} < 1 s: {}",
                    secs(s.max()),
                    met(s.max().is_some_and(|m| m < Millis::secs(1)) && s.no_takeover == 0)
                )),
                _ => {}
            }
        }
    }
    t.print(&format!(
        "Takeover latency, simulated time, loss to first reply by the new leader ({seeds} seeds per row, {} mode)",
        common::mode()
    ));
    let mut a = Table::new(&["system", "defaults", "takeover after a crash", "source"]);
    for (sys, defaults, figure, source) in [
        (
            "Kubernetes client-go leader election",
            "lease 15 s / renew 10 s / retry 2 s",
            "15-17 s (derived from the code)",
            "docs/prior-art.md (Kubernetes)",
        ),
        (
            "Patroni",
            "ttl 30 / loop_wait 10 / retry_timeout 10",
            "20-42 s modelled (+ proxy health checks)",
            "docs/prior-art.md (Patroni)",
        ),
        (
            "OpenTrident (intended loop)",
            "stale 120 s, 2 polls 30 s apart",
            "150-180 s after the last refresh, plus the restart",
            "docs/failure-modes.md (mode 1)",
        ),
    ] {
        a.row(vec![
            sys.into(),
            defaults.into(),
            figure.into(),
            source.into(),
        ]);
    }
    a.print("Published figures to compare with");
    println!("opentrident-v1 has no lease store, so the cuts do not lose its leader; those rows are left out.");
    for v in verdicts {
        println!("target: {v}");
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn bench(c: &mut Criterion) {
    table();
    let fenced = Profile::default_for(ProfileName::Fenced);
    c.bench_function("takeover/one fenced crash sample (fast engine)", |b| {
        b.iter(|| takeover_sample(black_box(&fenced), LossKind::Crash, black_box(1)))
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
