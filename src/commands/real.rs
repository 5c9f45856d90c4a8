//! `lifeboat drill --backend real`: the live drill on Hetzner Cloud servers over SSH.
//!
//! This module gathers what the run needs from the command line and the environment
//! (tokens are read from the environment only, never from arguments, so they stay out
//! of shell histories and process lists), prints the plan (`--dry-run`) or the price and
//! asks before it spends, runs the drill, and tears everything down also on Ctrl-C and
//! SIGTERM. Every line it prints and every evidence file passes the run's redactor.

use crate::commands::drill::{until_interrupted, DrillArgs};
use anyhow::{anyhow, Context};
use lifeboat_model::drill::{self, DrillReport, RunOptions};
use lifeboat_model::profile::Profile;
use lifeboat_model::scenario::Scenario;
use lifeboat_model::scenario::Verdict;
use lifeboat_real::clients::{HetznerClient, TelegramClient};
use lifeboat_real::hetzner::backend::{Operator, RealBackend, RealOptions};
use lifeboat_real::hetzner::cloud;
use lifeboat_real::hetzner::plan::{self, PlanOptions};
use lifeboat_real::hetzner::redact::Secrets;
use lifeboat_real::target::Target;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// The environment variable holding the Hetzner Cloud API token.
pub const HCLOUD_TOKEN: &str = "HCLOUD_TOKEN";
/// The environment variable holding the Telegram bot token.
pub const TELEGRAM_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";

/// How a real run ended.
pub enum Outcome {
    /// The drill ran; here is its report (evidence already scrubbed).
    Report(Box<DrillReport>),
    /// Nothing to report: a dry run, a refusal to spend, or an interruption.
    Exit(ExitCode),
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Runs `lifeboat drill … --backend real`.
pub fn run(
    args: &DrillArgs,
    scenario: &Scenario,
    profile: Profile,
    seed: u64,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Outcome> {
    let target_text = crate::input::read_text(
        &args.target,
        "a target profile",
        crate::input::MAX_TEXT_BYTES,
    )?;
    let target = Target::parse(&target_text, &args.target.display().to_string())?;
    let hosts: BTreeMap<_, _> = args.hosts.iter().cloned().collect();
    for n in hosts.keys() {
        anyhow::ensure!(
            scenario.cluster.nodes.contains(n),
            "--host {n}=…: the scenario has no node {n} (its nodes: {})",
            scenario
                .cluster
                .nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let service_hosts: BTreeMap<String, String> = args.service_hosts.iter().cloned().collect();
    let ssh_port = args.ssh_port.unwrap_or(target.server.ssh_port);
    let run_id = lifeboat_real::docker::new_run_id();

    if args.dry_run {
        let p = plan::plan(
            scenario,
            &target,
            &PlanOptions {
                run_id: run_id.clone(),
                hosts,
                api_url: args.hetzner_api.clone(),
                ssh_port,
                keep: args.keep,
                etcd_url: args.etcd_url.clone(),
                service_hosts,
                operator_is_person: args.telegram_double.is_none(),
            },
        );
        println!(
            "dry run: target {} ({}), run id {run_id}; nothing below is executed.",
            target.name,
            args.target.display()
        );
        print!("{p}");
        println!(
            "\n{} steps. A live run needs {HCLOUD_TOKEN}{}{} in the environment.",
            p.lines.len(),
            if args.telegram_double.is_none() {
                format!(" and {TELEGRAM_BOT_TOKEN}")
            } else {
                String::new()
            },
            target
                .secrets
                .names
                .iter()
                .map(|n| format!(", {n}"))
                .collect::<String>()
        );
        return Ok(Outcome::Exit(ExitCode::SUCCESS));
    }

    // Secrets: from the environment only, registered with the redactor before use.
    let mut secrets = Secrets::new();
    let ssh_key = args
        .ssh_key
        .clone()
        .unwrap_or_else(|| home().join(".ssh/id_ed25519"));
    let key_text = std::fs::read_to_string(&ssh_key).with_context(|| {
        format!(
            "reading the SSH private key {} (give another with --ssh-key)",
            ssh_key.display()
        )
    })?;
    secrets.add("SSH key", &key_text);
    let mut service_secrets = BTreeMap::new();
    for name in &target.secrets.names {
        let v = env(name).ok_or_else(|| {
            anyhow!(
                "target `{}` needs {name} in the environment (it is written to each new node's {}, mode 0600)",
                target.name,
                target.secrets.env_file.as_deref().unwrap_or("env file")
            )
        })?;
        secrets.add(name, &v);
        service_secrets.insert(name.clone(), v);
    }
    let rent = scenario
        .cluster
        .nodes
        .iter()
        .any(|n| !args.hosts.iter().any(|(h, _)| h == n));
    let cloud_client = if rent {
        let token = env(HCLOUD_TOKEN).ok_or_else(|| {
            anyhow!(
                "{HCLOUD_TOKEN} is not set: new servers are rented from Hetzner Cloud with it \
                 (create one under Security → API tokens, read & write); or give every node \
                 with --host"
            )
        })?;
        secrets.add(HCLOUD_TOKEN, &token);
        Some(HetznerClient::new(&args.hetzner_api, token).map_err(|e| anyhow!("{e}"))?)
    } else {
        None
    };
    let operator = match &args.telegram_double {
        Some(base) => Operator::Double { base: base.clone() },
        None => {
            let token = env(TELEGRAM_BOT_TOKEN).ok_or_else(|| {
                anyhow!(
                    "{TELEGRAM_BOT_TOKEN} is not set: the drill checks the bot with getMe and \
                     asks you to message it (or pass --telegram-double URL for a rehearsal)"
                )
            })?;
            secrets.add(TELEGRAM_BOT_TOKEN, &token);
            let base = reqwest::Url::parse(&args.telegram_api)
                .with_context(|| format!("--telegram-api {}", args.telegram_api))?;
            Operator::Person {
                client: TelegramClient::new(base, token).map_err(|e| anyhow!("{e}"))?,
            }
        }
    };
    if let Some(v) = env(TELEGRAM_BOT_TOKEN) {
        secrets.add(TELEGRAM_BOT_TOKEN, &v);
    }

    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // Progress goes through the redactor and to this process's output, also from the
    // backend's own phases.
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let scrub = secrets.clone();
    let opts = RealOptions {
        target: target.clone(),
        cloud: cloud_client.clone(),
        ssh_key,
        hosts: args.hosts.iter().cloned().collect(),
        known_hosts: args
            .known_hosts
            .clone()
            .unwrap_or_else(|| home().join(".ssh/known_hosts")),
        ssh_port: args.ssh_port,
        keep: args.keep,
        work_dir: std::env::temp_dir().join(format!("lifeboat-real-{run_id}")),
        node_binary: args
            .node_binary
            .clone()
            .or_else(|| std::env::var_os("LIFEBOAT_NODE_BINARY").map(PathBuf::from)),
        etcd_url: args.etcd_url.clone(),
        operator,
        service_secrets,
        service_hosts,
    };
    let quiet = args.quiet;
    let mut backend = RealBackend::new(
        opts,
        secrets.clone(),
        Box::new(move |l: &str| {
            let l = scrub.scrub(l);
            if !quiet {
                println!("{l}");
            }
            sink.lock().expect("progress lock").push(l);
        }),
    );
    let run_id = backend.run_id().to_string();
    let mut say = |l: &str| progress(&secrets.scrub(l));

    rt.block_on(async {
        if let Some(client) = &cloud_client {
            let names: Vec<String> = scenario
                .cluster
                .nodes
                .iter()
                .filter(|n| !args.hosts.iter().any(|(h, _)| h == *n))
                .map(|n| n.to_string())
                .collect();
            let plans = cloud::plan_servers(&run_id, &names, &target)?;
            let quote = cloud::quote(client, &plans)
                .await
                .map_err(|e| anyhow!(secrets.scrub(&format!("{e:#}"))))?;
            say(&format!("{quote}"));
            if !args.yes && !confirm("Create these servers?")? {
                say("nothing created (answer y, or pass --yes)");
                return Ok(Outcome::Exit(ExitCode::from(2)));
            }
        }
        say(&format!(
            "real run {run_id}: servers labelled lifeboat.run={run_id}; Ctrl-C stops the drill, heals every fault and deletes them"
        ));
        let run_opts = RunOptions::default();
        let outcome = until_interrupted(drill::run(
            &mut backend,
            scenario,
            profile,
            seed,
            &run_opts,
            &mut say,
        ))
        .await?;
        match outcome {
            Some(mut report) => {
                let passed = report.verdict == Verdict::Pass;
                match backend.release(passed).await {
                    Ok(Some(p)) => say(&format!("node {p} was kept: it leads now, the new primary")),
                    Ok(None) => {}
                    Err(e) => eprintln!(
                        "error: ending run {run_id}: {}",
                        secrets.scrub(&e.to_string())
                    ),
                }
                let proofs = backend.proofs();
                if !proofs.is_empty() {
                    report
                        .evidence
                        .insert("fault-proof.txt".into(), proofs.join("\n") + "\n");
                }
                let tg = backend.telegram_proof();
                if !tg.is_empty() {
                    let proof = report.evidence.entry("telegram-proof.txt".into()).or_default();
                    proof.push_str("\n# what lifeboat saw on the nodes\n");
                    proof.push_str(&(tg.join("\n") + "\n"));
                }
                let log = lines.lock().expect("progress lock").join("\n");
                report.evidence.insert("real-run.log".into(), log + "\n");
                scrub_report(&mut report, &secrets);
                Ok(Outcome::Report(Box::new(report)))
            }
            None => {
                eprintln!("interrupted: healing faults and deleting the servers of run {run_id} …");
                match backend.release(false).await {
                    Ok(_) => eprintln!("torn down: nothing of run {run_id} is left"),
                    Err(e) => eprintln!(
                        "error: {}; run `lifeboat cleanup --backend real`",
                        secrets.scrub(&e.to_string())
                    ),
                }
                Ok(Outcome::Exit(ExitCode::from(130)))
            }
        }
    })
}

/// Asks a yes/no question on the terminal; anything but `y`/`yes` is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// The last line of defence: every text of the report loses any secret it holds.
fn scrub_report(report: &mut DrillReport, secrets: &Secrets) {
    report.reason = secrets.scrub(&report.reason);
    // The bundle writer reaches the verdict again from these, so they are scrubbed too.
    if let Some(why) = &mut report.could_not_judge {
        *why = secrets.scrub(why);
    }
    for s in &mut report.steps {
        s.detail = secrets.scrub(&s.detail);
    }
    for c in &mut report.criteria {
        c.detail = secrets.scrub(&c.detail);
    }
    for v in report.evidence.values_mut() {
        *v = secrets.scrub(v);
    }
}
