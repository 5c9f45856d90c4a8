//! `lifeboat drill` and `lifeboat replay`: run a scenario on a backend, print a verdict
//! per step and per criterion as it goes, write the evidence bundle, exit 0/1/2.

use anyhow::Context;
use clap::{Args, ValueEnum};
use lifeboat_model::backend::Backend;
use lifeboat_model::drill::{self, fmt_time, CriterionStatus, DrillReport, RunOptions};
use lifeboat_model::ids::NodeId;
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::scenario::Scenario;
use lifeboat_real::docker::{DockerBackend, DockerOptions};
use lifeboat_sim::backend::Engine;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a drill runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// A deterministic simulated world (default; seconds for a ten-minute drill).
    Sim,
    /// Real processes in containers on the local Docker engine.
    Docker,
    /// Real Hetzner Cloud servers over SSH (the live drill).
    Real,
}

/// Arguments of `lifeboat drill`.
#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The scenario file, e.g. scenarios/aaa-drill.toml.
    pub scenario: PathBuf,
    /// Where to run it.
    #[arg(long, value_enum, default_value = "sim")]
    pub backend: BackendName,
    /// The protocol profile: `fenced` or `opentrident-v1` (default: the scenario's, else fenced).
    #[arg(long)]
    pub profile: Option<ProfileName>,
    /// Seed for the simulated world (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The sim backend's engine: `fast` (event-driven, milliseconds a drill) or `turmoil`
    /// (hosts over simulated TCP at a 1 ms tick, seconds a drill; to cross-check).
    #[arg(long, default_value = "fast")]
    pub engine: Engine,
    /// Directory under which the evidence bundle is written.
    #[arg(long, default_value = "drills")]
    pub out: PathBuf,
    /// Do not write an evidence bundle.
    #[arg(long)]
    pub no_evidence: bool,
    /// Print only the verdict.
    #[arg(long, short)]
    pub quiet: bool,
    /// docker: the statically linked lifeboat binary to put in the node image (default:
    /// $LIFEBOAT_NODE_BINARY, else this binary if it is static); real: the binary staged
    /// on new servers by targets that stage from the operator (targets/lifeboat.toml).
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
    /// docker: the etcd binary to put in the etcd image (Debian's etcd-server package).
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/etcd")]
    pub etcd_binary: PathBuf,
    /// What the real backend drives on the servers: the commands, paths, ports and file
    /// names of one service (see targets/).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "targets/opentrident.toml",
        help_heading = "Real backend (--backend real)"
    )]
    pub target: PathBuf,
    /// Print every cloud call and every remote command in order, and stop: nothing is
    /// created, nothing is run, no token is needed.
    #[arg(long, help_heading = "Real backend (--backend real)")]
    pub dry_run: bool,
    /// Create the servers without asking (the price is still printed).
    #[arg(long, help_heading = "Real backend (--backend real)")]
    pub yes: bool,
    /// Keep the servers this run creates. Default: delete them at the end, on failure and
    /// on Ctrl-C, except the one that leads after a passed takeover from a --host primary
    /// (the new primary).
    #[arg(long, help_heading = "Real backend (--backend real)")]
    pub keep: bool,
    /// An existing server for a node, `a=49.12.7.18` (the runbook's primary); repeat for
    /// more. Every other node gets a new server.
    #[arg(long = "host", value_name = "NODE=ADDR", value_parser = parse_host, help_heading = "Real backend (--backend real)")]
    pub hosts: Vec<(NodeId, String)>,
    /// The SSH private key to log in with; its `.pub` goes onto new servers.
    #[arg(
        long,
        value_name = "PATH",
        help_heading = "Real backend (--backend real)"
    )]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts holding the host keys of the servers given with --host (new servers'
    /// keys are made by lifeboat and need none).
    #[arg(
        long,
        value_name = "PATH",
        help_heading = "Real backend (--backend real)"
    )]
    pub known_hosts: Option<PathBuf>,
    /// The SSH port of every server (default: the target's).
    #[arg(
        long,
        value_name = "PORT",
        help_heading = "Real backend (--backend real)"
    )]
    pub ssh_port: Option<u16>,
    /// The Hetzner Cloud API (a local double for rehearsals: `lifeboat serve hetzner`).
    #[arg(long, value_name = "URL", default_value = lifeboat_real::clients::hetzner::OFFICIAL_BASE, help_heading = "Real backend (--backend real)")]
    pub hetzner_api: String,
    /// The Telegram Bot API the token is checked against with getMe.
    #[arg(long, value_name = "URL", default_value = lifeboat_real::clients::telegram::OFFICIAL_BASE, help_heading = "Real backend (--backend real)")]
    pub telegram_api: String,
    /// Send the drill's chat messages through a Telegram double's operator endpoint
    /// instead of asking you to send them (rehearsals and tests).
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Real backend (--backend real)"
    )]
    pub telegram_double: Option<String>,
    /// The lease store's client URL, for targets that use one ({etcd_url}).
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Real backend (--backend real)"
    )]
    pub etcd_url: Option<String>,
    /// Where a service endpoint lives, for cuts: `telegram=api.telegram.org`,
    /// `snapshot-store=api.github.com`, `lease-store=10.0.0.5`; repeat for more.
    #[arg(long = "service-host", value_name = "NAME=HOST", value_parser = parse_service_host, help_heading = "Real backend (--backend real)")]
    pub service_hosts: Vec<(String, String)>,
}

fn parse_host(s: &str) -> Result<(NodeId, String), String> {
    let (n, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NODE=ADDR (a=49.12.7.18), found `{s}`"))?;
    let node = NodeId::parse(n.trim())?;
    let addr = addr.trim();
    if addr.is_empty() || addr.contains(char::is_whitespace) {
        return Err(format!("`{addr}` is not a host address"));
    }
    Ok((node, addr.to_string()))
}

fn parse_service_host(s: &str) -> Result<(String, String), String> {
    let (name, host) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=HOST (telegram=api.telegram.org), found `{s}`"))?;
    let name = match lifeboat_model::ids::Endpoint::parse(name.trim())? {
        lifeboat_model::ids::Endpoint::LeaseStore => "lease-store",
        lifeboat_model::ids::Endpoint::Telegram => "telegram",
        lifeboat_model::ids::Endpoint::SnapshotStore => "snapshot-store",
        lifeboat_model::ids::Endpoint::Node(n) => {
            return Err(format!("node {n} is not a service; give nodes with --host"))
        }
    };
    Ok((name.to_string(), host.trim().to_string()))
}

/// Arguments of `lifeboat replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The scenario file (a fuzzer failure, or any scenario).
    pub scenario: PathBuf,
    /// The profile (default: the scenario's).
    #[arg(long)]
    pub profile: Option<ProfileName>,
    /// The engine: `fast` or `turmoil` (a fast-engine failure replays on both, to the
    /// same verdict; trace hashes are per engine).
    #[arg(long, default_value = "fast")]
    pub engine: Engine,
}

/// Reads and parses a scenario file, with errors that name the file, line and column.
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = crate::input::read_text(path, "a scenario file", crate::input::MAX_TEXT_BYTES)?;
    Scenario::parse(&path.display().to_string(), &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs a scenario on the simulated backend.
pub use lifeboat_sim::backend::run_scenario as run_sim;

/// Prints the criteria, invariants and verdict of a finished drill.
pub fn print_summary(r: &DrillReport) {
    if !r.criteria.is_empty() {
        println!("\nSuccess criteria:");
        for c in &r.criteria {
            let at =
                c.at.map(|t| format!(" at {}", fmt_time(t)))
                    .unwrap_or_default();
            println!("  {:<12} {}. {}{at}", c.status.words(), c.id, c.name);
            if c.status != CriterionStatus::Met {
                println!("               {}", c.detail);
            }
        }
    }
    println!("\nInvariants:");
    for inv in &r.invariants {
        println!("  {:<20} {}", inv.invariant.to_string(), inv.summary());
        for v in inv.violations.iter().take(3) {
            println!("          {}: {}", fmt_time(v.at), v.explanation);
        }
        if inv.violations.len() > 3 {
            println!("          … and {} more", inv.violations.len() - 3);
        }
    }
    for t in &r.takeovers {
        if let (Some(l), Some(n)) = (t.latency, t.new_leader) {
            println!(
                "\nTakeover: leader lost at {}, node {n} served at {} ({} later)",
                fmt_time(t.lost_at),
                fmt_time(t.lost_at + l),
                fmt_time(l)
            );
        }
    }
    println!(
        "\nVerdict: {} — {}",
        r.verdict,
        r.reason.lines().next().unwrap_or("")
    );
    for line in r.reason.lines().skip(1) {
        println!("         {line}");
    }
    println!("seed {} · trace hash {}", r.seed, r.trace_hash);
}

/// Runs `lifeboat drill`.
pub fn run(args: DrillArgs) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.scenario)?;
    let profile = scenario.profile(args.profile);
    let seed = args.seed.unwrap_or(scenario.seed);
    // Values the profile's model does not cover run anyway, with the reason up front.
    for warning in lifeboat_model::limits::model_warnings(&scenario, &profile) {
        eprintln!("warning: {warning}");
    }
    if !args.quiet {
        println!(
            "lifeboat drill {} · profile {} · backend {:?} · seed {seed}{}",
            args.scenario.display(),
            profile.name(),
            args.backend,
            if args.backend == BackendName::Sim {
                format!(" · engine {}", args.engine)
            } else {
                String::new()
            }
        );
    }
    let quiet = args.quiet;
    let mut progress = |line: &str| {
        if !quiet {
            println!("{line}");
        }
    };
    let mut report = match args.backend {
        BackendName::Sim => run_sim(
            &scenario,
            args.engine,
            args.profile,
            args.seed,
            &mut progress,
        ),
        BackendName::Docker => {
            let opts = docker_options(&args)?;
            match run_docker(&scenario, profile.clone(), seed, opts, &mut progress)? {
                Some(r) => r,
                None => return Ok(ExitCode::from(130)),
            }
        }
        BackendName::Real => {
            match crate::commands::real::run(
                &args,
                &scenario,
                profile.clone(),
                seed,
                &mut progress,
            )? {
                crate::commands::real::Outcome::Report(r) => *r,
                crate::commands::real::Outcome::Exit(code) => return Ok(code),
            }
        }
    };
    if !args.no_evidence {
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let dir = crate::evidence::write_bundle(&args.out, &mut report, &date)?;
        if !quiet {
            println!(
                "evidence: {}/ (check with: cd {} && sha256sum -c sha256.txt)",
                dir.display(),
                dir.display()
            );
        }
    }
    if quiet {
        println!(
            "{} {}",
            report.verdict,
            report.reason.lines().next().unwrap_or("")
        );
    } else {
        print_summary(&report);
    }
    if let Some(expected) = scenario.expect.get(&profile.name()) {
        if expected.verdict != report.verdict && !quiet {
            println!(
                "note: the scenario expects {} for {}",
                expected.verdict,
                profile.name()
            );
        }
    }
    Ok(ExitCode::from(report.verdict.exit_code()))
}

/// Where the docker backend finds its binaries: `--node-binary`, else
/// `$LIFEBOAT_NODE_BINARY`, else this very binary when it is statically linked.
fn docker_options(args: &DrillArgs) -> anyhow::Result<DockerOptions> {
    let node_binary = match (&args.node_binary, std::env::var_os("LIFEBOAT_NODE_BINARY")) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::current_exe().context("finding this lifeboat binary")?,
    };
    Ok(DockerOptions {
        node_binary,
        etcd_binary: args.etcd_binary.clone(),
        work_dir: std::env::temp_dir(),
    })
}

/// Runs a scenario on the docker backend. Ctrl-C (SIGINT) or SIGTERM stops the drill and
/// removes everything the run created; then `None` is returned.
pub fn run_docker(
    scenario: &Scenario,
    profile: Profile,
    seed: u64,
    opts: DockerOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Option<DrillReport>> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let mut backend = DockerBackend::connect(opts).await?;
        let run_id = backend.run_id().to_string();
        progress(&format!(
            "docker run {run_id}: containers, network and images labelled lifeboat.run={run_id}"
        ));
        let run_opts = RunOptions::default();
        let outcome = until_interrupted(drill::run(
            &mut backend,
            scenario,
            profile,
            seed,
            &run_opts,
            progress,
        ))
        .await?;
        match outcome {
            Some(mut report) => {
                let proofs = backend.proofs();
                if !proofs.is_empty() {
                    report
                        .evidence
                        .insert("fault-proof.txt".into(), proofs.join("\n") + "\n");
                }
                Ok(Some(report))
            }
            None => {
                eprintln!("interrupted: removing everything of docker run {run_id} …");
                match backend.teardown().await {
                    Ok(()) => {
                        eprintln!("removed: no container, network or image of run {run_id} is left")
                    }
                    Err(e) => eprintln!("error: {e}; run `lifeboat cleanup --backend docker`"),
                }
                Ok(None)
            }
        }
    })
}

/// Awaits `fut` unless Ctrl-C (SIGINT) or SIGTERM comes first; then `None`, and the
/// caller cleans up what the run made.
pub async fn until_interrupted<T>(
    fut: impl std::future::Future<Output = T>,
) -> anyhow::Result<Option<T>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = fut => Ok(Some(r)),
        _ = tokio::signal::ctrl_c() => Ok(None),
        _ = term.recv() => Ok(None),
    }
}

/// Runs `lifeboat replay`: the scenario on the simulated backend, printing its trace hash.
pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.scenario)?;
    let report = run_sim(&scenario, args.engine, args.profile, None, &mut |_| {});
    println!(
        "{} · seed {} · profile {} · engine {}",
        report.verdict, report.seed, report.profile, args.engine
    );
    println!("trace hash {}", report.trace_hash);
    for inv in report.invariants.iter().filter(|i| !i.ok()) {
        for v in &inv.violations {
            println!("  {} {}: {}", inv.invariant, fmt_time(v.at), v.explanation);
        }
    }
    Ok(ExitCode::from(report.verdict.exit_code()))
}
