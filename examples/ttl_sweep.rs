//! Draws the lease-TTL trade-off of `docs/performance.md` (issue 18): for each TTL, the
//! crash takeover's p50 and p99 beside the step-downs per hour of a healthy leader, on the
//! fast engine under one mix of latency, loss and pauses (`lifeboat_sim::tradeoff`), with
//! the Kubernetes and Patroni default leases marked, so an operator can pick a TTL from it.
//!
//! ```sh
//! nice -n 10 cargo run --release --example ttl_sweep            # docs/ttl-tradeoff.svg
//! nice -n 10 cargo run --release --example ttl_sweep -- out.svg
//! ```
//!
//! It prints the table of numbers it drew (Markdown, for `docs/performance.md`). The
//! figure is drawn here rather than in the `lifeboat` binary so that the plotting crate
//! stays a dev-dependency.

use lifeboat_model::time::Millis;
use lifeboat_sim::tradeoff::{sweep, Effort, Mix, Row, KUBERNETES_TTL, PATRONI_TTL, TTLS_S};
use plotters::prelude::*;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Crash-takeover samples per TTL.
const CRASH_SEEDS: u64 = 200;
/// Healthy runs per TTL, and how long each runs (simulated).
const HEALTHY_SEEDS: u64 = 4;
const HEALTHY_FOR: Millis = Millis(6 * 3_600_000);

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ttl-tradeoff.svg"),
        PathBuf::from,
    );
    let mix = Mix::default();
    let effort = Effort {
        crash_seeds: 1..1 + CRASH_SEEDS,
        healthy_seeds: 1..1 + HEALTHY_SEEDS,
        healthy_for: HEALTHY_FOR,
    };
    let ttls: Vec<Millis> = TTLS_S.iter().map(|&s| Millis::secs(s)).collect();
    let started = Instant::now();
    let rows = sweep(&ttls, &mix, &effort, &mut |row| {
        eprintln!(
            "ttl {}: done after {:.0} s of wall time",
            row.ttl,
            started.elapsed().as_secs_f64()
        );
    });
    draw(&rows, &mix, &out)?;
    println!("{}", describe(&mix, &effort));
    println!("{}", table(&rows));
    println!("wrote {}", out.display());
    Ok(())
}

fn secs(m: Option<Millis>) -> String {
    m.map_or("-".into(), |m| format!("{:.2} s", m.as_secs_f64()))
}

/// The mix and the effort, in words.
fn describe(mix: &Mix, effort: &Effort) -> String {
    format!(
        "mix: latency {}-{} one way, {} % of messages lost, each node paused about every {} for {}-{} (log-uniform); {} crash samples per TTL; {} healthy runs of {} per TTL",
        mix.latency_min,
        mix.latency_max,
        mix.loss_percent,
        mix.pause_every,
        mix.pause_min,
        mix.pause_max,
        effort.crash_seeds.end - effort.crash_seeds.start,
        effort.healthy_seeds.end - effort.healthy_seeds.start,
        effort.healthy_for,
    )
}

/// The numbers drawn, as a Markdown table.
fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| TTL | renew every | takeover p50 | takeover p99 | no takeover | step-downs | pauses | simulated hours | step-downs per hour | runs unsafe |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {} |\n",
            r.ttl,
            r.renew_every,
            secs(r.crash.percentile(50)),
            secs(r.crash.percentile(99)),
            r.crash.no_takeover + r.crash.already_led,
            r.healthy.step_downs,
            r.healthy.pauses,
            r.healthy.hours,
            r.healthy.per_hour(),
            r.healthy.unsafe_runs,
        ));
    }
    t
}

/// Draws the figure: takeover seconds on the left axis, step-downs per hour on the right.
fn draw(rows: &[Row], mix: &Mix, path: &Path) -> Result<(), Box<dyn Error>> {
    let x_max = rows
        .iter()
        .map(|r| r.ttl.as_secs_f64())
        .fold(PATRONI_TTL.as_secs_f64(), f64::max)
        + 2.0;
    let p = |r: &Row, q: u32| r.crash.percentile(q).map(|m| m.as_secs_f64());
    let y_max = rows.iter().filter_map(|r| p(r, 99)).fold(1.0, f64::max) * 1.15;
    let rate_max = rows
        .iter()
        .map(|r| r.healthy.per_hour())
        .fold(1.0, f64::max)
        * 1.15;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fenced: lease TTL trade-off (fast engine, simulated time)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?
        .set_secondary_coord(0.0..x_max, 0.0..rate_max);
    chart
        .configure_mesh()
        .x_desc(format!(
            "lease TTL (s); renewal every TTL/5; latency {}-{}, loss {} %, pauses {}-{}",
            mix.latency_min, mix.latency_max, mix.loss_percent, mix.pause_min, mix.pause_max
        ))
        .y_desc("takeover after a crash (s)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("step-downs per hour of a healthy leader")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;

    for (ttl, name, color) in [
        (
            KUBERNETES_TTL,
            "Kubernetes default lease 15 s",
            RGBColor(0, 128, 0),
        ),
        (
            PATRONI_TTL,
            "Patroni default ttl 30 s",
            RGBColor(128, 0, 128),
        ),
    ] {
        let x = ttl.as_secs_f64();
        chart.draw_series(LineSeries::new(
            [(x, 0.0), (x, y_max)],
            color.mix(0.6).stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            name,
            // Rotated text runs upward from its anchor: low enough to stay inside.
            (x - 0.7, y_max * 0.45),
            ("sans-serif", 14)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&color),
        )))?;
    }

    let blue = RGBColor(31, 119, 180);
    let navy = RGBColor(0, 45, 110);
    let red = RGBColor(214, 39, 40);
    for (q, name, color) in [
        (50, "crash takeover p50", blue),
        (99, "crash takeover p99", navy),
    ] {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.ttl.as_secs_f64(), p(r, q)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 4, color.filled())))?;
    }
    let rates: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.ttl.as_secs_f64(), r.healthy.per_hour()))
        .collect();
    chart
        .draw_secondary_series(LineSeries::new(rates.clone(), red.stroke_width(2)))?
        .label("step-downs per hour, no crash (right axis)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], red.stroke_width(2)));
    chart.draw_secondary_series(
        rates
            .into_iter()
            .map(|pt| TriangleMarker::new(pt, 5, red.filled())),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny sweep (two TTLs, a few seeds, one simulated hour) runs in seconds: the
    /// takeover grows with the TTL, every sample took over, and the figure is a whole SVG
    /// with both defaults marked.
    #[test]
    fn a_tiny_sweep_draws_a_sane_figure() {
        let mix = Mix::default();
        let effort = Effort {
            crash_seeds: 1..9,
            healthy_seeds: 1..2,
            healthy_for: Millis::secs(3_600),
        };
        let rows = sweep(
            &[Millis::secs(2), Millis::secs(10)],
            &mix,
            &effort,
            &mut |_| {},
        );
        let [short, long] = rows.as_slice() else {
            panic!("one row per TTL: {rows:?}")
        };
        for r in &rows {
            assert_eq!(r.crash.latencies.len(), 8, "every crash taken over: {r:?}");
            assert!((r.healthy.hours - 1.0).abs() < 1e-9, "{r:?}");
            assert!(r.healthy.pauses > 0, "the mix paused nothing: {r:?}");
            assert_eq!(r.healthy.unsafe_runs, 0, "{r:?}");
            let p50 = r.crash.percentile(50).expect("samples");
            assert!(
                p50 <= r.ttl + Millis::secs(2),
                "takeover p50 {p50} far beyond the TTL {}",
                r.ttl
            );
        }
        assert!(
            short.crash.percentile(50) < long.crash.percentile(50),
            "takeover p50 should grow with the TTL: {:?} vs {:?}",
            short.crash.percentile(50),
            long.crash.percentile(50)
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("tiny.svg");
        draw(&rows, &mix, &path).expect("the figure draws");
        let svg = std::fs::read_to_string(&path).expect("the figure is written");
        assert!(
            svg.trim_start().starts_with("<svg"),
            "{}",
            &svg[..80.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in [
            "Kubernetes default lease 15 s",
            "Patroni default ttl 30 s",
            "step-downs per hour",
        ] {
            assert!(svg.contains(label), "the figure lacks {label:?}");
        }
        assert!(table(&rows).lines().count() == 4, "{}", table(&rows));
    }
}
