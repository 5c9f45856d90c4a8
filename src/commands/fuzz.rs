//! `lifeboat fuzz` and `lifeboat fuzz merge`: run many fuzzed drills, in shards and jobs,
//! with a progress bar and a summary; write every failure as a replayable scenario file.

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lifeboat_model::check::Count;
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_sim::backend::Engine;
use lifeboat_sim::fuzz::{random_plan, run_case};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Arguments of `lifeboat fuzz`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FuzzArgs {
    /// `lifeboat fuzz merge SUMMARY...`
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
    /// The profile to fuzz.
    #[arg(long, default_value = "fenced")]
    pub profile: ProfileName,
    /// The engine: `fast` (event-driven; thousands of drills a minute) or `turmoil`
    /// (hosts over simulated TCP; seconds a drill, for cross-checking).
    #[arg(long, default_value = "fast")]
    pub engine: Engine,
    /// How many cases (over all shards).
    #[arg(long, default_value_t = 1000)]
    pub cases: u64,
    /// The run's seed; case i runs with seed `S * 1_000_003 + i`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run only shard I of N (`0/4`): case i belongs to shard i mod N. For batch systems.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Worker threads (default: the machine's cores; at most 1024).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,
    /// The most faults one case draws (at most `limits::MAX_FAULTS_PER_PLAN`, 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=lifeboat_model::limits::MAX_FAULTS_PER_PLAN as i64))]
    pub max_faults: u16,
    /// Where failures (scenario files) and the summary are written.
    #[arg(long, default_value = "fuzz-failures")]
    pub out: PathBuf,
    /// Re-run every Nth case and compare trace hashes (0: never).
    #[arg(long, default_value_t = 50)]
    pub check_determinism_every: u64,
    /// Stop after this many failures (0: never).
    #[arg(long, default_value_t = 0)]
    pub stop_after: u64,
}

/// `lifeboat fuzz merge`.
#[derive(Subcommand, Debug)]
pub enum MergeCommand {
    /// Join the summaries of several shards into one.
    Merge {
        /// `summary.json` files written by shards.
        summaries: Vec<PathBuf>,
    },
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N such as 0/4, found `{s}`"))?;
    let i: u64 = i
        .parse()
        .map_err(|_| format!("shard index `{i}` is not a number"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("shard count `{n}` is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

/// What a fuzz run (or a merge of shards) found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The profile.
    pub profile: String,
    /// The engine the cases ran on.
    #[serde(default)]
    pub engine: String,
    /// Cases run.
    pub cases: u64,
    /// Cases that failed.
    pub failures: u64,
    /// Violations by invariant name.
    pub violations: BTreeMap<String, u64>,
    /// What the checkers judged, summed over every case, by kind (takeovers, polls,
    /// messages answered twice, tampered fetches served, restores, …): the denominators
    /// behind "no failure".
    #[serde(default)]
    pub judged: BTreeMap<Count, u64>,
    /// Simulated seconds run.
    pub simulated_seconds: f64,
    /// Wall seconds spent.
    pub wall_seconds: f64,
    /// Determinism re-runs done, and how many differed.
    pub determinism_checks: u64,
    /// Re-runs whose trace hash differed (must be 0).
    pub nondeterministic: u64,
    /// Scenario files written for failures.
    pub failure_files: Vec<String>,
    /// Shards merged into this summary.
    pub shards: Vec<String>,
}

impl Summary {
    fn print(&self) {
        println!(
            "{} cases of {} on the {} engine: {} failed; {:.0} simulated s in {:.1} wall s ({:.0}x real time, {:.1} drills/s)",
            self.cases,
            self.profile,
            self.engine,
            self.failures,
            self.simulated_seconds,
            self.wall_seconds,
            self.simulated_seconds / self.wall_seconds.max(1e-9),
            self.cases as f64 / self.wall_seconds.max(1e-9)
        );
        for (inv, n) in &self.violations {
            println!("  {n:>6} case(s) violated {inv}");
        }
        let judged: Vec<String> = DENOMINATORS
            .iter()
            .map(|kind| kind.words(self.judged.get(kind).copied().unwrap_or(0)))
            .collect();
        println!("judged over the run: {}", judged.join(", "));
        println!(
            "determinism: {} re-runs, {} differed",
            self.determinism_checks, self.nondeterministic
        );
        for f in self.failure_files.iter().take(10) {
            println!("  failure: {f}  (replay: lifeboat replay {f})");
        }
    }
}

/// The counts the summary prints first, in this order: what a long run must show it
/// judged (the rest are in `judged` in the summary file).
const DENOMINATORS: [Count; 6] = [
    Count::TakeoversJudged,
    Count::Polls,
    Count::AnsweredTwice,
    Count::TamperServed,
    Count::TamperRefused,
    Count::Restores,
];

/// The seed of case `i` of a run seeded `seed`.
pub fn case_seed(seed: u64, i: u64) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(i)
}

/// Runs `lifeboat fuzz`.
pub fn run(args: FuzzArgs) -> anyhow::Result<ExitCode> {
    if let Some(MergeCommand::Merge { summaries }) = args.merge {
        return merge(&summaries);
    }
    let profile = Profile::default_for(args.profile);
    let (shard, shards) = args.shard.unwrap_or((0, 1));
    let ids: Vec<u64> = (0..args.cases).filter(|i| i % shards == shard).collect();
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    println!(
        "lifeboat fuzz · profile {} · engine {} · {} case(s) (shard {shard}/{shards}) · seed {} · {jobs} job(s) · up to {} faults each",
        args.profile,
        args.engine,
        ids.len(),
        args.seed,
        args.max_faults
    );
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} cases · {msg} · {elapsed} elapsed, {eta} left",
        )
        .expect("template is valid"),
    );
    let next = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let summary = Arc::new(Mutex::new(Summary {
        profile: args.profile.to_string(),
        engine: args.engine.to_string(),
        shards: vec![format!("{shard}/{shards}")],
        ..Summary::default()
    }));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&i) = ids.get(k) else { break };
                if args.stop_after > 0 && failures.load(Ordering::Relaxed) >= args.stop_after {
                    break;
                }
                let seed = case_seed(args.seed, i);
                let plan = random_plan(seed, &profile, usize::from(args.max_faults));
                let outcome = run_case(seed, &profile, &plan, args.engine);
                let mut det = None;
                if args.check_determinism_every > 0 && i % args.check_determinism_every == 0 {
                    let again = run_case(seed, &profile, &plan, args.engine);
                    det = Some(again.report.trace_hash == outcome.report.trace_hash);
                }
                let mut s = summary.lock().expect("no worker panics holding the lock");
                s.cases += 1;
                s.simulated_seconds += outcome.report.duration.as_secs_f64();
                for (kind, n) in outcome.judged() {
                    *s.judged.entry(kind).or_default() += n;
                }
                if let Some(same) = det {
                    s.determinism_checks += 1;
                    if !same {
                        s.nondeterministic += 1;
                        bar.println(format!("NONDETERMINISTIC: case seed {seed} gave two trace hashes"));
                    }
                }
                if !outcome.passed() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    s.failures += 1;
                    for inv in outcome.violated() {
                        *s.violations.entry(inv.to_string()).or_default() += 1;
                    }
                    let file = args.out.join(format!("{}.toml", outcome.scenario.name));
                    let body = format!(
                        "# lifeboat fuzz failure: seed {seed}, profile {}, found on the {} engine.\n# {}\n# Replay: lifeboat replay {} [--engine fast|turmoil]\n{}",
                        args.profile,
                        args.engine,
                        outcome.report.reason.lines().next().unwrap_or(""),
                        file.display(),
                        outcome.scenario.to_toml()
                    );
                    if std::fs::write(&file, body).is_ok() {
                        s.failure_files.push(file.display().to_string());
                    }
                    bar.println(format!(
                        "FAIL seed {seed}: {}",
                        outcome.report.reason.lines().next().unwrap_or("")
                    ));
                }
                bar.set_message(format!("{} failed", s.failures));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut s = Arc::try_unwrap(summary)
        .expect("workers are done")
        .into_inner()
        .expect("no worker panicked");
    s.wall_seconds = started.elapsed().as_secs_f64();
    s.failure_files.sort();
    let path = args
        .out
        .join(format!("summary-{}-{shard}-of-{shards}.json", args.profile));
    std::fs::write(&path, serde_json::to_string_pretty(&s)? + "\n")?;
    s.print();
    println!("summary: {}", path.display());
    let bad = s.failures > 0 || s.nondeterministic > 0;
    Ok(ExitCode::from(if bad { 1 } else { 0 }))
}

fn merge(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !paths.is_empty(),
        "fuzz merge: name at least one summary.json"
    );
    let mut total = Summary::default();
    for p in paths {
        let s = read_summary(p)?;
        if total.profile.is_empty() {
            total.profile = s.profile.clone();
            total.engine = s.engine.clone();
        }
        anyhow::ensure!(
            total.profile == s.profile,
            "{}: profile {} differs from {}",
            p.display(),
            s.profile,
            total.profile
        );
        anyhow::ensure!(
            total.engine == s.engine,
            "{}: engine {} differs from {}",
            p.display(),
            s.engine,
            total.engine
        );
        total.cases += s.cases;
        total.failures += s.failures;
        for (k, v) in s.violations {
            *total.violations.entry(k).or_default() += v;
        }
        for (k, v) in s.judged {
            *total.judged.entry(k).or_default() += v;
        }
        total.simulated_seconds += s.simulated_seconds;
        total.wall_seconds += s.wall_seconds;
        total.determinism_checks += s.determinism_checks;
        total.nondeterministic += s.nondeterministic;
        total.failure_files.extend(s.failure_files);
        total.shards.extend(s.shards);
    }
    total.print();
    println!("(wall seconds are summed over shards: core-seconds)");
    println!("{}", serde_json::to_string_pretty(&total)?);
    Ok(ExitCode::from(
        if total.failures > 0 || total.nondeterministic > 0 {
            1
        } else {
            0
        },
    ))
}

fn read_summary(p: &Path) -> anyhow::Result<Summary> {
    let text = crate::input::read_text(p, "a fuzz summary", crate::input::MAX_TEXT_BYTES)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a fuzz summary", p.display()))
}
