//! `--dry-run`: every cloud call and every remote command of a live drill, in order,
//! printed and never executed.
//!
//! The plan is built from the same pieces the live backend runs: the target profile's
//! commands expanded with the same run facts, [`super::backend::fault_scripts`] for
//! cuts and clock steps, and [`super::cloud`] for the server plans. Addresses that only
//! exist once servers run are shown as `<ip of b>`; a wait or a probe that repeats until
//! its condition holds is shown once, with its bound.

use super::backend::{fault_scripts, run_facts, DEAD_MAN_DEADLINE};
use super::cloud;
use crate::remote_faults;
use crate::target::{StageFrom, Target};
use lifeboat_model::fault::Fault;
use lifeboat_model::ids::NodeId;
use lifeboat_model::scenario::{Action, Scenario};
use lifeboat_model::Millis;
use std::collections::BTreeMap;
use std::fmt;

fn fmt_duration(m: Millis) -> String {
    m.to_string()
}

/// What the plan needs besides the scenario and the target.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// The run id the servers' labels would carry.
    pub run_id: String,
    /// Existing servers by node; the others are rented.
    pub hosts: BTreeMap<NodeId, String>,
    /// The Hetzner API base URL.
    pub api_url: String,
    /// The SSH port (the target's unless overridden).
    pub ssh_port: u16,
    /// Keep the rented servers at the end.
    pub keep: bool,
    /// `{etcd_url}` for targets that use a lease store.
    pub etcd_url: Option<String>,
    /// Hosts of the service endpoints, for cuts.
    pub service_hosts: BTreeMap<String, String>,
    /// Whether a person (real Bot API) or the Telegram double sends the chat messages.
    pub operator_is_person: bool,
}

/// One line of the plan: where it happens and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanLine {
    /// The scenario step's phase, or the backend's own (`provision`, `teardown`).
    pub phase: String,
    /// `cloud`, `local`, `operator`, or the node (`b`).
    pub place: String,
    /// The call or command.
    pub what: String,
}

/// A dry run's plan.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Its lines, in order.
    pub lines: Vec<PlanLine>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut phase = "";
        for (i, l) in self.lines.iter().enumerate() {
            if l.phase != phase {
                writeln!(f, "\n== {}", l.phase)?;
                phase = &l.phase;
            }
            let place = match l.place.as_str() {
                "cloud" | "local" | "operator" => l.place.clone(),
                node => format!("node {node}"),
            };
            // A multi-line script keeps its shape, indented under its first line.
            let mut text = l.what.lines();
            writeln!(
                f,
                "{:>4}  {place:<9} {}",
                i + 1,
                text.next().unwrap_or_default()
            )?;
            for more in text {
                writeln!(f, "{:>4}  {:<9} {more}", "", "")?;
            }
        }
        Ok(())
    }
}

struct Builder<'a> {
    target: &'a Target,
    opts: &'a PlanOptions,
    primary: Option<NodeId>,
    ips: BTreeMap<NodeId, String>,
    phase: String,
    lines: Vec<PlanLine>,
    faults: u32,
    /// Faults in force, with the scripts that heal them.
    armed: Vec<(String, NodeId, String)>,
}

impl Builder<'_> {
    fn push(&mut self, place: impl Into<String>, what: impl Into<String>) {
        self.lines.push(PlanLine {
            phase: self.phase.clone(),
            place: place.into(),
            what: what.into(),
        });
    }

    fn vars(&self, node: NodeId) -> BTreeMap<&'static str, String> {
        let primary_ip = self
            .primary
            .map(|p| self.ips[&p].clone())
            .unwrap_or_default();
        run_facts(
            node,
            &self.ips[&node],
            &primary_ip,
            self.opts.etcd_url.as_deref(),
        )
    }

    fn script(&mut self, node: NodeId, script: &[String], extra: &[(&'static str, String)]) {
        let mut vars = self.vars(node);
        vars.extend(extra.iter().cloned());
        for cmd in script {
            let line = self
                .target
                .expand(cmd, &vars)
                .unwrap_or_else(|e| format!("(cannot expand: {e:#})"));
            self.push(node.to_string(), format!("$ {line}"));
        }
    }

    fn probe(&mut self, node: NodeId, why: &str) {
        let t = self.target;
        for path in [&t.http.healthz, &t.http.readyz, &t.http.dashboard] {
            let url = format!("http://127.0.0.1:{}{path}", t.http.port);
            self.script(node, &t.commands.http_get.clone(), &[("url", url)]);
        }
        if let Some(last) = self.lines.last_mut() {
            last.what.push_str(&format!("    ({why})"));
        }
    }

    fn fault(&mut self, fault: &Fault) {
        let c = &self.target.commands;
        let process = match fault {
            Fault::Kill { node } => Some((*node, c.kill.clone())),
            Fault::Stop { node } => Some((*node, c.stop.clone())),
            Fault::Pause { node } => Some((*node, c.pause.clone())),
            _ => None,
        };
        if let Some((node, script)) = process {
            self.script(node, &script, &[]);
            return;
        }
        if let Fault::Crash { node } = fault {
            let (kill, start) = (c.kill.clone(), c.start.clone());
            self.script(*node, &kill, &[]);
            self.script(*node, &start, &[]);
            return;
        }
        self.faults += 1;
        let tag = format!("{}-{}", self.opts.run_id, self.faults);
        match fault_scripts(fault, &tag, &self.ips, &self.opts.service_hosts) {
            Ok(scripts) => {
                for (n, armed) in scripts {
                    self.push(
                        n.to_string(),
                        format!(
                            "$ {}    (its dead-man's switch heals it after {} s)",
                            armed.apply,
                            DEAD_MAN_DEADLINE.as_secs()
                        ),
                    );
                    self.armed.push((fault.to_string(), n, armed.heal));
                }
            }
            Err(e) => self.push("local", format!("STOP: {e}")),
        }
    }

    fn heal(&mut self, fault: &Fault) {
        let c = &self.target.commands;
        match fault {
            Fault::Kill { node } | Fault::Stop { node } => {
                let start = c.start.clone();
                self.script(*node, &start, &[]);
            }
            Fault::Pause { node } => {
                let resume = c.resume.clone();
                self.script(*node, &resume, &[]);
            }
            Fault::Crash { .. } => {}
            _ => {
                let key = fault.to_string();
                let (heal, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.armed)
                    .into_iter()
                    .partition(|(k, _, _)| *k == key);
                self.armed = keep;
                for (_, n, script) in heal {
                    self.push(n.to_string(), format!("$ {script}"));
                }
            }
        }
    }

    fn provision(&mut self, nodes: &[NodeId]) {
        self.phase = "provision (runbook phases 1 and 4: servers for the new nodes)".into();
        let rent: Vec<String> = nodes
            .iter()
            .filter(|n| !self.opts.hosts.contains_key(n))
            .map(|n| n.to_string())
            .collect();
        if !rent.is_empty() {
            let t = self.target;
            self.push(
                "cloud",
                format!(
                    "GET {}/server_types?name={}    (hourly price for the quote; lifeboat asks before it spends unless --yes)",
                    self.opts.api_url, t.server.server_type
                ),
            );
            self.push(
                "cloud",
                format!(
                    "GET {}/ssh_keys?fingerprint=<your key's>, then POST /v1/ssh_keys name=lifeboat-{} if it is not there",
                    self.opts.api_url, self.opts.run_id
                ),
            );
            match cloud::plan_servers(&self.opts.run_id, &rent, t) {
                Ok(plans) => {
                    for p in &plans {
                        self.push(
                            "local",
                            format!(
                                "ssh-keygen -t ed25519 (the host key of {}; its public half goes into known_hosts)",
                                p.name
                            ),
                        );
                        self.push(
                            "cloud",
                            p.describe_create(&format!("lifeboat-{}", self.opts.run_id)),
                        );
                    }
                    for p in &plans {
                        self.push(
                            "cloud",
                            format!(
                                "GET /v1/servers/<id of {}> every 2 s until status=running (5 min at most)",
                                p.name
                            ),
                        );
                    }
                }
                Err(e) => self.push("local", format!("STOP: {e:#}")),
            }
        }
        for n in nodes {
            self.push(
                "local",
                format!(
                    "ssh {}@{} -p {} (one multiplexed connection; host key checked against known_hosts, never accepted blindly)",
                    self.target.server.user, self.ips[n], self.opts.ssh_port
                ),
            );
        }
        let t = self.target;
        for n in nodes.iter().filter(|n| !self.opts.hosts.contains_key(n)) {
            self.phase = format!("prepare node {n} (runbook phases 1 and 4)");
            self.script(*n, &t.commands.install.clone(), &[]);
            self.script(*n, &t.commands.prepare.clone(), &[]);
            if let Some(p) = self.primary {
                for c in &t.commands.copy {
                    let from = t.expand(&c.from, &self.vars(p)).unwrap_or_default();
                    let to = t.expand(&c.to, &self.vars(*n)).unwrap_or_default();
                    let what = if c.only.is_empty() {
                        ".".to_string()
                    } else {
                        c.only.join(" ")
                    };
                    self.push(
                        p.to_string(),
                        format!("$ tar -C '{from}' -cf - {what}    (streamed into node {n})"),
                    );
                    self.push(n.to_string(), format!("$ tar -C '{to}' -xf -"));
                }
            }
            self.script(*n, &t.commands.after_copy.clone(), &[]);
            match (t.stage.from, self.primary) {
                (StageFrom::Primary, Some(p)) => {
                    let source = t.stage.source.clone().unwrap_or_default();
                    self.script(p, &source, &[]);
                    if let Some(last) = self.lines.last_mut() {
                        last.what.push_str(&format!("    (streamed into node {n})"));
                    }
                }
                _ => self.push(
                    "local",
                    format!("the static lifeboat binary, streamed into node {n}"),
                ),
            }
            self.script(*n, &t.stage.sink.clone(), &[]);
            if let Some(file) = &t.secrets.env_file {
                let path = t.expand(file, &self.vars(*n)).unwrap_or_default();
                self.push(
                    n.to_string(),
                    format!(
                        "write {path} (mode 0600, through standard input): {}",
                        t.secrets
                            .names
                            .iter()
                            .map(|s| format!("{s}=<from your environment>"))
                            .chain(t.env.keys().map(|k| format!("{k}=…")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
            }
        }
    }

    fn step(&mut self, action: &Action, running: &mut Vec<NodeId>) {
        let t = self.target;
        let c = &t.commands;
        match action {
            Action::Start { node } => {
                self.script(*node, &c.start.clone(), &[]);
                running.push(*node);
            }
            Action::RegenerateManifest => {
                let on = self.primary.unwrap_or(NodeId(0));
                match &c.regenerate_manifest {
                    Some(s) => self.script(on, &s.clone(), &[]),
                    None => self.push(
                        "local",
                        "STOP: the target has no regenerate_manifest command",
                    ),
                }
                match &c.snapshot_head {
                    Some(s) => self.script(on, &s.clone(), &[]),
                    None => self.probe(on, "the dashboard's snapshot head"),
                }
            }
            Action::CheckManifest => self.push(
                "local",
                "check that the manifest names the snapshot head just read",
            ),
            Action::Bootstrap { node } => {
                let path = t.path("manifest").unwrap_or("?").to_string();
                self.push(
                    node.to_string(),
                    format!("write {path} (the manifest made in phase 0, through standard input)"),
                );
                self.script(*node, &c.serve_manifest.clone(), &[]);
                self.script(*node, &c.bootstrap.clone(), &[]);
                running.push(*node);
            }
            Action::Wait { duration } => {
                self.push("local", format!("wait {}", fmt_duration(*duration)))
            }
            Action::WaitFor {
                condition,
                node,
                within,
            } => {
                let why = format!(
                    "repeated until {}{} holds, {} at most",
                    condition.name(),
                    node.map(|n| format!(" on {n}")).unwrap_or_default(),
                    fmt_duration(*within)
                );
                match node {
                    Some(n) => self.probe(*n, &why),
                    None => {
                        for n in running.clone() {
                            self.probe(n, &why);
                        }
                    }
                }
            }
            Action::Hold {
                condition,
                node,
                duration,
            } => {
                let why = format!(
                    "repeated: {}{} must hold for {}",
                    condition.name(),
                    node.map(|n| format!(" on {n}")).unwrap_or_default(),
                    fmt_duration(*duration)
                );
                match node {
                    Some(n) => self.probe(*n, &why),
                    None => {
                        for n in running.clone() {
                            self.probe(n, &why);
                        }
                    }
                }
            }
            Action::Fault { fault, duration } => {
                self.fault(fault);
                if let Some(d) = duration {
                    self.push("local", format!("wait {}", fmt_duration(*d)));
                    self.heal(fault);
                }
            }
            Action::Heal { fault } => self.heal(fault),
            Action::HealAll => {
                for (_, n, script) in std::mem::take(&mut self.armed) {
                    self.push(n.to_string(), format!("$ {script}"));
                }
            }
            Action::Chat { text, within, from } => {
                let who = if self.opts.operator_is_person {
                    "you send the bot (from your Telegram)"
                } else {
                    "POST <telegram double>/inject/message"
                };
                self.push("operator", format!("{who}: \"{text} [<one-time code>]\""));
                let proof = t.telegram.command.clone().unwrap_or_else(|| c.logs.clone());
                let on: Vec<NodeId> = match from {
                    Some(n) => vec![*n],
                    None => running.clone(),
                };
                for n in on {
                    self.script(n, &proof, &[]);
                    if let Some(last) = self.lines.last_mut() {
                        last.what.push_str(&format!(
                            "    (repeated until it shows the code, {} at most)",
                            fmt_duration(*within)
                        ));
                    }
                }
            }
            Action::Collect { node, .. } => self.probe(*node, "saved to the evidence bundle"),
            Action::CompareFiles { leader, restored } => {
                let dir = t.path("state_dir").unwrap_or("?").to_string();
                for n in [leader, restored] {
                    self.push(
                        n.to_string(),
                        format!("$ cd '{dir}' && sha256sum -- {}", t.state.files.join(" ")),
                    );
                }
            }
            Action::Gate { criteria, protects } => {
                let list: Vec<String> = criteria.iter().map(|c| c.to_string()).collect();
                self.push(
                    "local",
                    format!(
                        "gate: stop here, heal every fault and roll back unless criteria {} held{}",
                        list.join(", "),
                        protects
                            .as_ref()
                            .map(|p| format!(" (before {p})"))
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
}

/// The dry run's plan for a scenario on a target.
pub fn plan(scenario: &Scenario, target: &Target, opts: &PlanOptions) -> Plan {
    let nodes = scenario.cluster.nodes.clone();
    let primary = scenario.cluster.primary.first().copied();
    // A target that copies from the primary drills an existing one (the runbook's node
    // A); the live run refuses to start without its address, the plan shows where it goes.
    let mut opts = opts.clone();
    let mut notes = Vec::new();
    if let Some(p) = primary {
        let copies = target.stage.from == StageFrom::Primary || !target.commands.copy.is_empty();
        if copies && !opts.hosts.contains_key(&p) {
            opts.hosts
                .insert(p, format!("<address of {p}: --host {p}=ADDR>"));
            notes.push(format!(
                "target `{}` copies from the existing primary: a live run needs --host {p}=ADDR",
                target.name
            ));
        }
    }
    let opts = &opts;
    let ips = nodes
        .iter()
        .map(|n| {
            let ip = opts
                .hosts
                .get(n)
                .cloned()
                .unwrap_or_else(|| format!("<ip of {n}>"));
            (*n, ip)
        })
        .collect();
    let mut b = Builder {
        target,
        opts,
        primary,
        ips,
        phase: String::new(),
        lines: Vec::new(),
        faults: 0,
        armed: Vec::new(),
    };
    b.phase = "before anything runs".into();
    for n in notes {
        b.push("local", n);
    }
    b.provision(&nodes);
    let mut running = Vec::new();
    for step in &scenario.steps {
        b.phase = step.phase.clone().unwrap_or_else(|| "steps".into());
        b.step(&step.action, &mut running);
    }
    b.phase = "teardown (runbook: \"do not leave three half-configured nodes alive\")".into();
    for n in &nodes {
        b.push(
            n.to_string(),
            format!("$ {}", remote_faults::heal_all(&opts.run_id)),
        );
        b.script(*n, &target.commands.stop_manifest.clone(), &[]);
    }
    let rented: Vec<&NodeId> = nodes
        .iter()
        .filter(|n| !opts.hosts.contains_key(n))
        .collect();
    if !rented.is_empty() {
        if opts.keep {
            b.push("cloud", "nothing: --keep leaves the servers running (lifeboat cleanup --backend real deletes them)");
        } else {
            b.push(
                "cloud",
                format!(
                    "GET {}/servers?label_selector=lifeboat=1,lifeboat.run={}",
                    opts.api_url, opts.run_id
                ),
            );
            for n in rented {
                b.push(
                    "cloud",
                    format!(
                        "DELETE /v1/servers/<id of {}>",
                        cloud::server_name(&opts.run_id, &n.to_string())
                    ),
                );
            }
        }
    }
    Plan { lines: b.lines }
}
