//! The real backend: the drill runner's [`Backend`] over servers reached by SSH.
//!
//! New nodes are rented from Hetzner Cloud ([`super::cloud`]); an existing primary (the
//! runbook's node A) is given by address. Every step on a node is a command of the
//! target profile ([`crate::target`]), run over one multiplexed SSH connection per node
//! ([`crate::ssh`]) with host keys checked. Faults on the network and the clock are
//! scripts with a dead-man's switch on the server ([`crate::remote_faults`]), so a cut
//! heals itself even if lifeboat dies; teardown heals every fault, stops the manifest
//! servers and deletes the servers the run created, unless kept (`--keep`) or promoted:
//! after a passed drill whose existing nodes are all down, the rented node that leads is
//! the new primary ([`RealBackend::release`]).
//!
//! The history is what the backend saw: its own acts (starts, stops, faults), every
//! probe of a node's dashboard, and a role change whenever a probe shows a new role.
//! A black-box service such as OpenTrident keeps no event log lifeboat can read, so its
//! leadership is known only at probe resolution; the report says so.
//!
//! Telegram: the operator (a person with the real Bot API, or the Telegram double in
//! tests) sends a one-time code to the bot; the reply path is confirmed by finding the
//! code where the target says the serving node records it ([`crate::target::TelegramSpec`]).
//! Every line of proof goes to `telegram-proof.txt`.

use super::cloud;
use super::redact::Secrets;
use crate::clients::{HetznerClient, TelegramClient};
use crate::events::{self, EventLog};
use crate::remote_faults::{self, Armed, Direction};
use crate::ssh::{self, Remote, SshTarget};
use crate::target::{StageFrom, Target};
use anyhow::{anyhow, Context};
use lifeboat_model::backend::{Backend, BackendError, Cluster, EventKind};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::{Capability, Fault};
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::node::Dashboard;
use lifeboat_model::Millis;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a fault on a server may outlive lifeboat: its dead-man's switch heals it
/// this long after it was applied, whatever happens to the run.
pub const DEAD_MAN_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How long new servers may take to answer SSH.
pub const SSH_DEADLINE: Duration = Duration::from_secs(5 * 60);

/// Who sends the bot the drill's messages.
#[derive(Clone, Debug)]
pub enum Operator {
    /// A person, on the real Bot API: lifeboat checks the token with `getMe`, prints the
    /// message with its one-time code, and waits for it to show up on a node.
    Person {
        /// The Bot API client (its token is secret).
        client: TelegramClient,
    },
    /// The Telegram double's operator endpoint (`POST /inject/message`), for tests and
    /// rehearsals.
    Double {
        /// The double's base URL.
        base: String,
    },
}

/// Everything a real run needs besides the scenario.
#[derive(Clone, Debug)]
pub struct RealOptions {
    /// The target profile.
    pub target: Target,
    /// The Hetzner client (base URL and token); `None` when every node is given by
    /// address, so nothing is rented.
    pub cloud: Option<HetznerClient>,
    /// The operator's SSH private key (its `.pub` beside it is installed on new servers).
    pub ssh_key: PathBuf,
    /// Existing servers by node (`a` → `49.12.7.18`); every other node is rented.
    pub hosts: BTreeMap<NodeId, String>,
    /// The known_hosts file holding the existing servers' host keys.
    pub known_hosts: PathBuf,
    /// Overrides the target's SSH port (a test sshd).
    pub ssh_port: Option<u16>,
    /// Keep the rented servers at the end.
    pub keep: bool,
    /// Where the run keeps its known_hosts, host keys and control sockets.
    pub work_dir: PathBuf,
    /// The static lifeboat binary, for targets staged from the operator.
    pub node_binary: Option<PathBuf>,
    /// The lease store's client URL, for targets that use one (`{etcd_url}`).
    pub etcd_url: Option<String>,
    /// Who sends the bot its messages.
    pub operator: Operator,
    /// Values of the target's `[secrets]` names, from the operator's environment.
    pub service_secrets: BTreeMap<String, String>,
    /// Where each service endpoint lives, for cuts (`telegram` → `api.telegram.org`).
    pub service_hosts: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proc {
    Down,
    Running,
    Paused,
}

struct Node {
    ip: String,
    remote: Option<Remote>,
    /// The Hetzner server id when this run rented it.
    server: Option<i64>,
    state: Proc,
    incarnation: u32,
    role: Option<Role>,
}

struct Chat {
    code: String,
    sent: Instant,
}

/// The real backend.
pub struct RealBackend {
    opts: RealOptions,
    run_id: String,
    secrets: Secrets,
    nodes: BTreeMap<NodeId, Node>,
    primary: Option<NodeId>,
    /// The node last seen leading: phase 0 regenerates the manifest there.
    leader: Option<NodeId>,
    /// Network and clock faults in force: the fault, the node its script ran on, and
    /// the scripts.
    armed: Vec<(String, NodeId, Armed)>,
    faults: u32,
    log: EventLog,
    proofs: Vec<String>,
    telegram_proof: Vec<String>,
    origin: Instant,
    origin_us: u64,
    chats: BTreeMap<i64, Chat>,
    next_update: i64,
    manifests: BTreeMap<String, String>,
    progress: Box<dyn FnMut(&str) + Send>,
    torn_down: bool,
    /// A server creation was sent. An interruption can drop the request after the API
    /// took it but before its answer named the server, so teardown then deletes by the
    /// run's label, not by the servers it knows of.
    create_sent: bool,
}

fn be(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

impl RealBackend {
    /// A backend for one run. `progress` receives each phase as it starts (already
    /// scrubbed of secrets).
    pub fn new(
        opts: RealOptions,
        secrets: Secrets,
        progress: Box<dyn FnMut(&str) + Send>,
    ) -> RealBackend {
        RealBackend {
            opts,
            run_id: crate::docker::new_run_id(),
            secrets,
            nodes: BTreeMap::new(),
            primary: None,
            leader: None,
            armed: Vec::new(),
            faults: 0,
            log: EventLog::new(),
            proofs: Vec::new(),
            telegram_proof: Vec::new(),
            origin: Instant::now(),
            origin_us: events::now_us(),
            chats: BTreeMap::new(),
            next_update: 1,
            manifests: BTreeMap::new(),
            progress,
            torn_down: false,
            create_sent: false,
        }
    }

    /// The run's id, as its servers' `lifeboat.run` label carries it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Proof, one line per fault, that each fault took effect.
    pub fn proofs(&self) -> Vec<String> {
        self.proofs.iter().map(|l| self.secrets.scrub(l)).collect()
    }

    /// The Telegram proof lines (`telegram-proof.txt`).
    pub fn telegram_proof(&self) -> Vec<String> {
        self.telegram_proof
            .iter()
            .map(|l| self.secrets.scrub(l))
            .collect()
    }

    fn say(&mut self, line: String) {
        let line = self.secrets.scrub(&line);
        (self.progress)(&line);
    }

    fn stamp(&self) -> String {
        format!("[{:>9.3}s]", self.origin.elapsed().as_secs_f64())
    }

    fn proof(&mut self, line: String) {
        let line = format!("{} {line}", self.stamp());
        self.proofs.push(line);
    }

    fn node(&mut self, node: NodeId) -> Result<&mut Node, BackendError> {
        self.nodes.get_mut(&node).ok_or_else(|| BackendError::Node {
            node,
            what: "not in this cluster".into(),
        })
    }

    fn remote(&self, node: NodeId) -> Result<&Remote, BackendError> {
        self.nodes
            .get(&node)
            .and_then(|n| n.remote.as_ref())
            .ok_or_else(|| BackendError::Node {
                node,
                what: "not connected".into(),
            })
    }

    /// The run facts a node's commands may use.
    fn vars(&self, node: NodeId) -> BTreeMap<&'static str, String> {
        let ip = |n: NodeId| self.nodes.get(&n).map(|x| x.ip.clone()).unwrap_or_default();
        run_facts(
            node,
            &ip(node),
            &self.primary.map(ip).unwrap_or_default(),
            self.opts.etcd_url.as_deref(),
        )
    }

    /// Runs a script of the target on a node; fails at the first command that fails,
    /// naming the node and the step. Returns the last command's standard output.
    async fn script(
        &mut self,
        node: NodeId,
        step: &str,
        script: &[String],
        extra: &[(&'static str, String)],
    ) -> Result<String, BackendError> {
        let mut vars = self.vars(node);
        vars.extend(extra.iter().cloned());
        let cmds = self
            .opts
            .target
            .expand_all(script, &vars)
            .map_err(|e| node_err(node, format!("{step}: {e:#}")))?;
        let mut out = String::new();
        for cmd in cmds {
            let remote = self.remote(node)?;
            out = remote
                .check(&cmd)
                .await
                .map_err(|e| node_err(node, self.secrets.scrub(&format!("{step}: {e:#}"))))?;
        }
        Ok(out)
    }

    async fn provision_inner(&mut self, cluster: &Cluster) -> anyhow::Result<()> {
        let target = self.opts.target.clone();
        self.primary = cluster.nodes.iter().find(|n| n.primary).map(|n| n.id);
        let rent: Vec<NodeId> = cluster
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|n| !self.opts.hosts.contains_key(n))
            .collect();
        if target.stage.from == StageFrom::Primary || !target.commands.copy.is_empty() {
            let p = self.primary.context("the scenario has no primary node")?;
            anyhow::ensure!(
                self.opts.hosts.contains_key(&p),
                "target `{}` copies from the existing primary: give node {p}'s address with --host {p}=IP",
                target.name
            );
        }
        std::fs::create_dir_all(&self.opts.work_dir)
            .with_context(|| format!("creating {}", self.opts.work_dir.display()))?;
        let known_hosts = self.opts.work_dir.join("known_hosts");
        let mut lines = std::fs::read_to_string(&self.opts.known_hosts).unwrap_or_default();
        let port = self.opts.ssh_port.unwrap_or(target.server.ssh_port);

        for (n, host) in &self.opts.hosts {
            self.nodes.insert(
                *n,
                Node {
                    ip: host.clone(),
                    remote: None,
                    server: None,
                    state: Proc::Down,
                    incarnation: 0,
                    role: None,
                },
            );
        }
        if !rent.is_empty() {
            let client = self
                .opts
                .cloud
                .clone()
                .context("nodes to rent but no Hetzner client (set HCLOUD_TOKEN)")?;
            let names: Vec<String> = rent.iter().map(|n| n.to_string()).collect();
            let plans = cloud::plan_servers(&self.run_id, &names, &target)?;
            let pubkey_path = self.opts.ssh_key.with_extension("pub");
            let pubkey = std::fs::read_to_string(&pubkey_path).with_context(|| {
                format!(
                    "reading the SSH public key {} (the .pub beside --ssh-key)",
                    pubkey_path.display()
                )
            })?;
            self.say(format!(
                "phase: provision — SSH key for run {}",
                self.run_id
            ));
            let key_name =
                cloud::ensure_ssh_key(&client, &format!("lifeboat-{}", self.run_id), pubkey.trim())
                    .await?;
            let mut created = Vec::new();
            for (plan, node) in plans.iter().zip(&rent) {
                self.say(format!(
                    "phase: provision — creating server {} ({}, {}) for node {node}",
                    plan.name, plan.server_type, plan.image
                ));
                let hk = cloud::generate_host_key(&plan.name)?;
                self.secrets.add("host key", hk.expose_private_key());
                self.create_sent = true;
                let info = cloud::create(&client, plan, &key_name, &hk.user_data()).await?;
                self.nodes.insert(
                    *node,
                    Node {
                        ip: String::new(),
                        remote: None,
                        server: Some(info.id),
                        state: Proc::Down,
                        incarnation: 0,
                        role: None,
                    },
                );
                created.push((*node, info.id, hk));
            }
            for (node, id, hk) in created {
                self.say(format!(
                    "phase: provision — waiting for server {id} (node {node}) to run"
                ));
                let info = cloud::wait_running(
                    &client,
                    id,
                    Duration::from_secs(300),
                    Duration::from_secs(2),
                )
                .await?;
                let ip = info.ip.context("a running server without IPv4")?;
                lines.push_str(&hk.known_hosts_line(ip, port));
                lines.push('\n');
                self.node(node).map_err(|e| anyhow!("{e}"))?.ip = ip.to_string();
            }
        }
        std::fs::write(&known_hosts, &lines)
            .with_context(|| format!("writing {}", known_hosts.display()))?;

        let control = self.opts.work_dir.join("ssh");
        std::fs::create_dir_all(&control)?;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for n in &ids {
            let ip = self.nodes[n].ip.clone();
            self.say(format!("phase: connect — SSH to node {n} at {ip}:{port}"));
            let t = SshTarget {
                host: ip,
                port,
                user: target.server.user.clone(),
                key: self.opts.ssh_key.clone(),
                known_hosts: known_hosts.clone(),
            };
            let remote = Remote::connect_retrying(&t, &control, SSH_DEADLINE)
                .await
                .with_context(|| format!("node {n}"))?;
            self.node(*n).map_err(|e| anyhow!("{e}"))?.remote = Some(remote);
        }
        for n in rent {
            self.prepare_node(n).await.map_err(|e| anyhow!("{e}"))?;
        }
        self.origin = Instant::now();
        self.origin_us = events::now_us();
        Ok(())
    }

    /// Runbook phases 1 and 4 on a new node: install, directories, copies from the
    /// primary, dependencies, the pre-staged runtime, the service's secrets.
    async fn prepare_node(&mut self, n: NodeId) -> Result<(), BackendError> {
        let t = self.opts.target.clone();
        self.say(format!("phase: prepare {n} — install"));
        self.script(n, "install", &t.commands.install, &[]).await?;
        self.say(format!("phase: prepare {n} — directories"));
        self.script(n, "prepare", &t.commands.prepare, &[]).await?;
        let primary = self.primary;
        for c in &t.commands.copy {
            let p = primary.ok_or_else(|| be("copy needs a primary"))?;
            let from = t.expand(&c.from, &self.vars(p)).map_err(be)?;
            let to = t.expand(&c.to, &self.vars(n)).map_err(be)?;
            let what = if c.only.is_empty() {
                ".".to_string()
            } else {
                c.only
                    .iter()
                    .map(|o| ssh::shell_quote(o))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            self.say(format!("phase: prepare {n} — copy {from} from {p}"));
            let src = format!("tar -C {} -cf - {what}", ssh::shell_quote(&from));
            let dst = format!("tar -C {} -xf -", ssh::shell_quote(&to));
            let bytes = ssh::stream(self.remote(p)?, &src, self.remote(n)?, &dst)
                .await
                .map_err(|e| node_err(n, format!("copying {from}: {e:#}")))?;
            self.proof(format!("copy {from} from {p} to {n}:{to}: {bytes} bytes"));
        }
        if !t.commands.after_copy.is_empty() {
            self.say(format!("phase: prepare {n} — after copy"));
            self.script(n, "after_copy", &t.commands.after_copy, &[])
                .await?;
        }
        self.stage(n).await?;
        self.write_secrets(n).await
    }

    async fn stage(&mut self, n: NodeId) -> Result<(), BackendError> {
        let t = self.opts.target.clone();
        let sink = t
            .expand_all(&t.stage.sink, &self.vars(n))
            .map_err(be)?
            .join(" && ");
        match t.stage.from {
            StageFrom::Primary => {
                let p = self.primary.ok_or_else(|| be("staging needs a primary"))?;
                let source = t
                    .expand_all(t.stage.source.as_deref().unwrap_or_default(), &self.vars(p))
                    .map_err(be)?
                    .join(" && ");
                self.say(format!("phase: prepare {n} — stage the runtime from {p}"));
                let bytes = ssh::stream(self.remote(p)?, &source, self.remote(n)?, &sink)
                    .await
                    .map_err(|e| node_err(n, format!("staging from {p}: {e:#}")))?;
                self.proof(format!("staged the runtime from {p} on {n}: {bytes} bytes"));
            }
            StageFrom::Operator => {
                let path = self
                    .opts
                    .node_binary
                    .clone()
                    .ok_or_else(|| be("target stages the node binary: give --node-binary"))?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| be(format!("reading {}: {e}", path.display())))?;
                self.say(format!(
                    "phase: prepare {n} — stage {} ({} bytes)",
                    path.display(),
                    bytes.len()
                ));
                let out = self
                    .remote(n)?
                    .run_with_input(&sink, &bytes)
                    .await
                    .map_err(|e| node_err(n, format!("staging: {e:#}")))?;
                if !out.success() {
                    return Err(node_err(n, format!("staging: {}", out.stderr_text())));
                }
                self.proof(format!("staged {} on {n}", path.display()));
            }
        }
        Ok(())
    }

    /// Writes the target's secrets to its env file through standard input.
    async fn write_secrets(&mut self, n: NodeId) -> Result<(), BackendError> {
        let t = self.opts.target.clone();
        let Some(file) = &t.secrets.env_file else {
            return Ok(());
        };
        let path = t.expand(file, &self.vars(n)).map_err(be)?;
        let mut body = String::new();
        for name in &t.secrets.names {
            let value = self.opts.service_secrets.get(name).ok_or_else(|| {
                be(format!(
                    "target `{}` needs the secret {name}: set it in the environment",
                    t.name
                ))
            })?;
            body.push_str(&format!("{name}={}\n", ssh::shell_quote(value)));
        }
        for (k, v) in &t.env {
            let v = t.expand(v, &self.vars(n)).map_err(be)?;
            body.push_str(&format!("{k}={}\n", ssh::shell_quote(&v)));
        }
        self.remote(n)?
            .write_file(&path, body.as_bytes(), 0o600)
            .await
            .map_err(|e| node_err(n, format!("writing the secrets file: {e:#}")))
    }

    async fn started(&mut self, node: NodeId) -> Result<(), BackendError> {
        let n = self.node(node)?;
        n.incarnation += 1;
        n.state = Proc::Running;
        let incarnation = n.incarnation;
        self.log.record(Event::ProcessStarted { node, incarnation });
        Ok(())
    }

    fn fault_scripts(&mut self, fault: &Fault) -> Result<Vec<(NodeId, Armed)>, BackendError> {
        self.faults += 1;
        let tag = format!("{}-{}", self.run_id, self.faults);
        let ips: BTreeMap<NodeId, String> =
            self.nodes.iter().map(|(n, x)| (*n, x.ip.clone())).collect();
        fault_scripts(fault, &tag, &ips, &self.opts.service_hosts)
    }

    async fn process_fault(
        &mut self,
        node: NodeId,
        step: &str,
        script: Vec<String>,
    ) -> Result<(), BackendError> {
        self.script(node, step, &script, &[]).await?;
        self.proof(format!("{step} {node}: done"));
        Ok(())
    }

    async fn fault(&mut self, fault: &Fault, on: bool) -> Result<(), BackendError> {
        self.log.record(if on {
            Event::Fault(fault.clone())
        } else {
            Event::Heal(fault.clone())
        });
        let c = self.opts.target.commands.clone();
        match (fault, on) {
            (Fault::Kill { node } | Fault::Stop { node }, true) => {
                if self.node(*node)?.state == Proc::Down {
                    return Ok(());
                }
                let (step, script, how) = match fault {
                    Fault::Kill { .. } => ("kill", c.kill, "kill"),
                    _ => ("stop", c.stop, "exit"),
                };
                self.process_fault(*node, step, script).await?;
                self.node(*node)?.state = Proc::Down;
                self.log.record(Event::ProcessExited {
                    node: *node,
                    code: None,
                    how: how.into(),
                });
                Ok(())
            }
            (Fault::Kill { node } | Fault::Stop { node }, false) => {
                if self.node(*node)?.state == Proc::Down {
                    self.started(*node).await?;
                    self.process_fault(*node, "start", c.start).await?;
                }
                Ok(())
            }
            (Fault::Crash { node }, true) => {
                self.process_fault(*node, "kill", c.kill).await?;
                self.log.record(Event::ProcessExited {
                    node: *node,
                    code: None,
                    how: "crash".into(),
                });
                self.started(*node).await?;
                self.process_fault(*node, "start", c.start).await
            }
            (Fault::Crash { .. }, false) => Ok(()),
            (Fault::Pause { node }, true) => {
                if self.node(*node)?.state != Proc::Running {
                    return Ok(());
                }
                self.process_fault(*node, "pause", c.pause).await?;
                self.node(*node)?.state = Proc::Paused;
                self.log.record(Event::Paused { node: *node });
                Ok(())
            }
            (Fault::Pause { node }, false) => {
                if self.node(*node)?.state != Proc::Paused {
                    return Ok(());
                }
                self.log.record(Event::Resumed { node: *node });
                self.process_fault(*node, "resume", c.resume).await?;
                self.node(*node)?.state = Proc::Running;
                Ok(())
            }
            (_, true) => {
                let scripts = self.fault_scripts(fault)?;
                for (n, armed) in scripts {
                    self.armed.push((fault.to_string(), n, armed.clone()));
                    let out = self
                        .remote(n)?
                        .check(&armed.apply)
                        .await
                        .map_err(|e| node_err(n, format!("{fault}: {e:#}")))?;
                    self.proof(format!(
                        "{fault} applied on {n} (dead-man's switch heals it after {} s): {}",
                        DEAD_MAN_DEADLINE.as_secs(),
                        out.trim()
                    ));
                }
                Ok(())
            }
            (_, false) => {
                let key = fault.to_string();
                let (heal, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.armed)
                    .into_iter()
                    .partition(|(k, _, _)| *k == key);
                self.armed = keep;
                for (_, n, armed) in heal {
                    self.remote(n)?
                        .check(&armed.heal)
                        .await
                        .map_err(|e| node_err(n, format!("healing {fault}: {e:#}")))?;
                    self.proof(format!("{fault} healed on {n}"));
                }
                Ok(())
            }
        }
    }

    /// Reads a node's health and dashboard over SSH.
    async fn read_dashboard(&mut self, node: NodeId) -> Result<Option<Dashboard>, BackendError> {
        let t = self.opts.target.clone();
        let url = |path: &str| format!("http://127.0.0.1:{}{path}", t.http.port);
        let get = |u: String| {
            t.expand_all(&t.commands.http_get, &{
                let mut v = self.vars(node);
                v.insert("url", u);
                v
            })
        };
        let remote = self.remote(node)?;
        let ok = |cmds: Vec<String>| async move {
            let mut last = None;
            for c in cmds {
                match remote.run(&c).await {
                    Ok(o) if o.success() => last = Some(o.stdout_text()),
                    _ => return None,
                }
            }
            last
        };
        let healthz = ok(get(url(&t.http.healthz)).map_err(be)?).await.is_some();
        let readyz = ok(get(url(&t.http.readyz)).map_err(be)?).await.is_some();
        let Some(body) = ok(get(url(&t.http.dashboard)).map_err(be)?).await else {
            return Ok(None);
        };
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            node_err(
                node,
                format!("its dashboard is not JSON ({e}): {}", clip(&body)),
            )
        })?;
        let r = t
            .dashboard
            .read(&json)
            .map_err(|e| node_err(node, format!("reading its dashboard: {e:#}")))?;
        let observed = r
            .observed_leader
            .as_deref()
            .and_then(|w| NodeId::parse(w).ok());
        Ok(Some(Dashboard {
            node,
            profile: t.name.clone(),
            role: r.role.unwrap_or(Role::Follower),
            observed_leader: observed,
            lease_token: r.lease_token,
            takeover_attempts: r.takeover_attempts.unwrap_or(0),
            last_cycle_status: r.last_cycle_status.unwrap_or_default(),
            snapshot_head: r.snapshot_head.filter(|h| h != "none"),
            get_updates_conflicts: r.get_updates_conflicts.unwrap_or(0),
            last_reply: r.last_reply,
            state_version: r.state_version.unwrap_or(0),
            healthz,
            readyz,
        }))
    }

    /// Heals every network and clock fault and stops the manifest servers on every
    /// node it can reach (the drill's teardown; the servers stay until [`release`]).
    /// Safe to call more than once.
    ///
    /// [`release`]: RealBackend::release
    pub async fn heal_all(&mut self) -> Result<(), BackendError> {
        let mut problems = Vec::new();
        let prefix = self.run_id.clone();
        let stop_manifest = self.opts.target.commands.stop_manifest.clone();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for n in ids {
            if self.nodes[&n].remote.is_none() {
                continue;
            }
            self.say(format!("phase: teardown — healing faults on node {n}"));
            if self.nodes[&n].state == Proc::Paused {
                let resume = self.opts.target.commands.resume.clone();
                self.log.record(Event::Resumed { node: n });
                match self.script(n, "resume", &resume, &[]).await {
                    Ok(_) => self.node(n)?.state = Proc::Running,
                    Err(e) => problems.push(format!("{e}")),
                }
            }
            let heal = remote_faults::heal_all(&prefix);
            if let Err(e) = self.remote(n)?.check(&heal).await {
                problems.push(format!("node {n}: healing faults: {e:#}"));
            }
            if let Err(e) = self.script(n, "stop_manifest", &stop_manifest, &[]).await {
                problems.push(format!("{e}"));
            }
        }
        self.armed.clear();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(be(self.secrets.scrub(&problems.join("; "))))
        }
    }

    /// Ends the run: heals what is left ([`RealBackend::heal_all`]), then
    /// - after a passed drill whose existing nodes are all down, keeps the rented node
    ///   last seen leading: it is the new primary (runbook: "delete B and C after the
    ///   drill unless one becomes the new primary");
    /// - otherwise (a failed or interrupted drill) rolls back: starts again the existing
    ///   nodes the drill stopped or killed (runbook "Rollback": "restart node A");
    /// - deletes every other server the run rented, unless `--keep`.
    ///
    /// Returns the node kept as the new primary, if any. Safe to call more than once.
    pub async fn release(&mut self, passed: bool) -> Result<Option<NodeId>, BackendError> {
        let mut problems = Vec::new();
        if let Err(e) = self.heal_all().await {
            problems.push(e.to_string());
        }
        let existing: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, x)| x.server.is_none() && x.remote.is_some())
            .map(|(n, _)| *n)
            .collect();
        let existing_up: Vec<bool> = existing
            .iter()
            .map(|n| self.nodes[n].state != Proc::Down)
            .collect();
        let rented_leader = self.leader.filter(|l| self.nodes[l].server.is_some());
        let promoted = new_primary(passed, rented_leader, &existing_up);
        let restart: Vec<NodeId> = existing
            .iter()
            .copied()
            .filter(|n| self.nodes[n].state == Proc::Down && self.nodes[n].incarnation > 0)
            .collect();
        if promoted.is_none() && !restart.is_empty() {
            // The runbook's rollback restarts A; a rented node still running would lead
            // beside it until its server is deleted, so it is stopped first.
            let rented_up: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, x)| x.server.is_some() && x.remote.is_some() && x.state != Proc::Down)
                .map(|(n, _)| *n)
                .collect();
            for n in rented_up {
                self.say(format!(
                    "phase: teardown — rollback: stopping node {n} before the primary starts again"
                ));
                let stop = self.opts.target.commands.stop.clone();
                match self.script(n, "stop", &stop, &[]).await {
                    Ok(_) => {
                        self.node(n)?.state = Proc::Down;
                        self.log.record(Event::ProcessExited {
                            node: n,
                            code: None,
                            how: "exit".into(),
                        });
                    }
                    Err(e) => problems.push(format!("rollback: stopping node {n}: {e}")),
                }
            }
            for n in restart {
                self.say(format!(
                    "phase: teardown — rollback: starting node {n} again"
                ));
                self.started(n).await?;
                let start = self.opts.target.commands.start.clone();
                if let Err(e) = self.script(n, "start", &start, &[]).await {
                    problems.push(format!("rollback: {e}"));
                }
            }
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for n in ids {
            if let Some(r) = self.node(n)?.remote.take() {
                let _ = r.close().await;
            }
        }
        let rented: Vec<(NodeId, i64)> = self
            .nodes
            .iter()
            .filter_map(|(n, x)| x.server.map(|s| (*n, s)))
            .filter(|(n, _)| Some(*n) != promoted)
            .collect();
        if let Some(p) = promoted {
            let id = self.nodes[&p].server.unwrap_or_default();
            self.say(format!(
                "phase: teardown — keeping node {p} (server {id}, {}): it leads now, the new primary; \
                 delete it yourself once you no longer need it",
                self.nodes[&p].ip
            ));
        }
        let kept = promoted.and_then(|p| self.nodes[&p].server);
        if let (Some(client), Some(id)) = (self.opts.cloud.clone(), kept) {
            self.keep_server(&client, id, &mut problems).await;
        }
        match self.opts.cloud.clone() {
            Some(_) if self.opts.keep && !rented.is_empty() => {
                let list: Vec<String> = rented
                    .iter()
                    .map(|(n, s)| format!("node {n}: server {s}"))
                    .collect();
                self.say(format!(
                    "phase: teardown — keeping {} (--keep); delete them with `lifeboat cleanup --backend real`",
                    list.join(", ")
                ));
            }
            Some(client) if !rented.is_empty() || self.create_sent => {
                self.say(format!(
                    "phase: teardown — deleting the servers of run {}",
                    self.run_id
                ));
                let keep_id = promoted.and_then(|p| self.nodes[&p].server);
                let d = match cloud::delete_run_except(
                    &client,
                    &self.run_id,
                    keep_id,
                    self.create_sent,
                )
                .await
                {
                    Ok(d) => d,
                    Err(e) => {
                        problems.push(format!("{e:#}"));
                        cloud::Deleted::default()
                    }
                };
                if d.is_complete() {
                    for (n, x) in self.nodes.iter_mut() {
                        if Some(*n) != promoted {
                            x.server = None;
                        }
                    }
                } else {
                    problems.push(format!(
                        "could not delete {}",
                        d.failed
                            .iter()
                            .map(|(s, why)| format!("server {} ({}): {why}", s.id, s.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            _ => {}
        }
        self.torn_down = true;
        if problems.is_empty() {
            Ok(promoted)
        } else {
            Err(be(self.secrets.scrub(&format!(
                "{}; run `lifeboat cleanup --backend real`",
                problems.join("; ")
            ))))
        }
    }

    /// Relabels the server kept as the new primary so no cleanup can delete it
    /// ([`cloud::mark_kept`]); a failure is reported, never ignored.
    async fn keep_server(&self, client: &HetznerClient, id: i64, problems: &mut Vec<String>) {
        let server = match client.get_server(id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                problems.push(format!("the kept server {id} no longer exists"));
                return;
            }
            Err(e) => {
                problems.push(format!("reading the kept server {id}: {e}"));
                return;
            }
        };
        if let Err(e) = cloud::mark_kept(client, &server).await {
            problems.push(format!(
                "{e:#}: `lifeboat cleanup --backend real` would delete it; remove its label {}=1 by hand",
                cloud::LABEL
            ));
        }
    }

    /// The one-time code of a chat message: six digits from the OS's randomness.
    /// A failed read is an error, never a predictable code such as `000000`.
    fn code() -> Result<String, BackendError> {
        let mut b = [0u8; 4];
        getrandom(&mut b)
            .map_err(|e| be(format!("reading /dev/urandom for a one-time code: {e}")))?;
        Ok(format!("{:06}", u32::from_le_bytes(b) % 1_000_000))
    }

    /// Whether `code` shows on `node`, by the target's Telegram proof command.
    async fn code_seen(&mut self, node: NodeId, code: &str) -> Option<String> {
        let t = self.opts.target.clone();
        let script = t
            .telegram
            .command
            .clone()
            .unwrap_or_else(|| t.commands.logs.clone());
        let pattern = t
            .expand(
                &t.telegram.pattern,
                &BTreeMap::from([("code", code.to_string())]),
            )
            .ok()?;
        let out = self
            .script(node, "telegram proof", &script, &[])
            .await
            .ok()?;
        out.lines()
            .find(|l| l.contains(&pattern))
            .map(|l| clip(l).to_string())
    }
}

/// The rented node to keep as the new primary at the end of a run: the one last seen
/// leading, after a passed drill of a live system (existing nodes given by address)
/// whose existing nodes are all down. A run of rented nodes only has no primary to
/// replace; a failed run rolls back instead.
fn new_primary(
    passed: bool,
    rented_leader: Option<NodeId>,
    existing_up: &[bool],
) -> Option<NodeId> {
    let replaced = !existing_up.is_empty() && existing_up.iter().all(|up| !up);
    rented_leader.filter(|_| passed && replaced)
}

/// The run facts a node's commands may use (`crate::target::NODE_VARS`, and `etcd_url`
/// for targets with a lease store): the live run and the dry run fill templates from this
/// one function.
pub fn run_facts(
    node: NodeId,
    ip: &str,
    primary_ip: &str,
    etcd_url: Option<&str>,
) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::from([
        ("node", node.to_string()),
        ("ip", ip.to_string()),
        ("primary_ip", primary_ip.to_string()),
    ]);
    if let Some(url) = etcd_url {
        v.insert("etcd_url", url.to_string());
    }
    v
}

/// Where a cut's peer is: a node's address or a service's host.
fn peer(
    e: &Endpoint,
    ips: &BTreeMap<NodeId, String>,
    services: &BTreeMap<String, String>,
) -> Result<String, BackendError> {
    let service = |name: &str| {
        services.get(name).cloned().ok_or_else(|| {
            be(format!(
                "no host known for the {name} endpoint (give --service-host {name}=HOST)"
            ))
        })
    };
    match e {
        Endpoint::Node(n) => ips
            .get(n)
            .cloned()
            .ok_or_else(|| be(format!("node {n} is not in this cluster"))),
        Endpoint::LeaseStore => service("lease-store"),
        Endpoint::Telegram => service("telegram"),
        Endpoint::SnapshotStore => service("snapshot-store"),
    }
}

/// The scripts a network or clock fault runs, by node: iptables cuts and clock steps,
/// each with its dead-man's switch. `tag` names the fault on the servers; `ips` are the
/// nodes' addresses and `services` the hosts of the service endpoints. The dry run
/// prints what the live run executes, from this one function.
pub fn fault_scripts(
    fault: &Fault,
    tag: &str,
    ips: &BTreeMap<NodeId, String>,
    services: &BTreeMap<String, String>,
) -> Result<Vec<(NodeId, Armed)>, BackendError> {
    let mut out = Vec::new();
    let mut cut = |on: NodeId, peer: String, dir: Direction, k: usize| {
        out.push((
            on,
            remote_faults::cut(&format!("{tag}-{k}"), &peer, dir, DEAD_MAN_DEADLINE),
        ));
    };
    match fault {
        Fault::Partition { a, b } | Fault::PartitionOneway { from: a, to: b } => {
            let (dir_a, dir_b) = if matches!(fault, Fault::Partition { .. }) {
                (Direction::Both, Direction::Both)
            } else {
                (Direction::Outbound, Direction::Inbound)
            };
            let mut k = 0;
            if let Endpoint::Node(n) = a {
                cut(*n, peer(b, ips, services)?, dir_a, k);
                k += 1;
            }
            if let Endpoint::Node(n) = b {
                cut(*n, peer(a, ips, services)?, dir_b, k);
                k += 1;
            }
            if k == 0 {
                return Err(BackendError::Unsupported {
                    backend: "real".into(),
                    what: format!("cut {fault}: neither end is a node lifeboat can reach"),
                });
            }
        }
        Fault::Isolate { node } => {
            let mut peers: Vec<String> = ips
                .iter()
                .filter(|(n, _)| *n != node)
                .map(|(_, ip)| ip.clone())
                .collect();
            peers.extend(services.values().cloned());
            for (k, p) in peers.into_iter().enumerate() {
                cut(*node, p, Direction::Both, k);
            }
        }
        Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
            out.push((
                *node,
                remote_faults::clock_step(tag, *ms, DEAD_MAN_DEADLINE),
            ));
        }
        other => {
            return Err(BackendError::Unsupported {
                backend: "real".into(),
                what: format!("carry out {}", other.kind()),
            })
        }
    }
    Ok(out)
}

fn node_err(node: NodeId, e: impl std::fmt::Display) -> BackendError {
    BackendError::Node {
        node,
        what: e.to_string(),
    }
}

fn clip(s: &str) -> &str {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn getrandom(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}

impl Drop for RealBackend {
    fn drop(&mut self) {
        if self.torn_down || self.opts.keep {
            return;
        }
        let rented = self.create_sent || self.nodes.values().any(|n| n.server.is_some());
        let Some(client) = self.opts.cloud.clone().filter(|_| rented) else {
            return;
        };
        // A panic or an early return: delete the run's servers on a thread of its own,
        // since there may be no runtime to await on here. The faults on them heal by
        // their dead-man's switches, and die with the servers.
        let run = self.run_id.clone();
        let settle = self.create_sent;
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(cloud::delete_run_except(&client, &run, None, settle));
            }
        })
        .join();
    }
}

impl Backend for RealBackend {
    fn name(&self) -> &'static str {
        "real"
    }

    fn capabilities(&self) -> BTreeSet<Capability> {
        [
            Capability::ProcessFaults,
            Capability::Pause,
            Capability::Partition,
            Capability::PartitionOneway,
            Capability::ClockSkew,
        ]
        .into_iter()
        .collect()
    }

    fn observes(&self) -> BTreeSet<EventKind> {
        // Only what this backend records itself: faults, processes, the roles its probes
        // read off dashboards, the probes, and chat sent and replies seen. The service's
        // polls, publishes, fetches, restores and state changes happen on the servers and
        // are not logged here.
        use EventKind as K;
        [
            K::Faults,
            K::Processes,
            K::ChatSent,
            K::HealthProbes,
            K::Roles,
            K::ChatReplies,
        ]
        .into_iter()
        .collect()
    }

    async fn provision(&mut self, cluster: &Cluster) -> Result<(), BackendError> {
        self.provision_inner(cluster)
            .await
            .map_err(|e| be(self.secrets.scrub(&format!("run {}: {e:#}", self.run_id))))
    }

    async fn start(&mut self, node: NodeId) -> Result<(), BackendError> {
        if self.node(node)?.state != Proc::Down {
            return Ok(());
        }
        self.say(format!("phase: start {node}"));
        self.started(node).await?;
        let start = self.opts.target.commands.start.clone();
        self.script(node, "start", &start, &[]).await?;
        Ok(())
    }

    async fn bootstrap(
        &mut self,
        node: NodeId,
        manifest: &BootstrapManifest,
    ) -> Result<(), BackendError> {
        let t = self.opts.target.clone();
        // The service's own manifest text when phase 0 made one; else lifeboat's.
        let text = self
            .manifests
            .get(&manifest.snapshot_head)
            .cloned()
            .unwrap_or_else(|| {
                serde_json::to_string_pretty(manifest).expect("manifests serialize")
            });
        let path = t.path("manifest").map_err(be)?.to_string();
        self.say(format!(
            "phase: bootstrap {node} — manifest for {}",
            manifest.snapshot_head
        ));
        self.remote(node)?
            .write_file(&path, text.as_bytes(), 0o644)
            .await
            .map_err(|e| node_err(node, format!("writing {path}: {e:#}")))?;
        self.script(node, "serve_manifest", &t.commands.serve_manifest, &[])
            .await?;
        self.started(node).await?;
        let result = self
            .script(node, "bootstrap", &t.commands.bootstrap, &[])
            .await;
        self.proof(format!(
            "bootstrap {node} from http://127.0.0.1:{}/ (head {}): {}",
            t.http.manifest_port,
            manifest.snapshot_head,
            match &result {
                Ok(_) => "command finished".to_string(),
                Err(e) => format!("FAILED: {e}"),
            }
        ));
        result.map(|_| ())
    }

    async fn regenerate_manifest(&mut self) -> Result<BootstrapManifest, BackendError> {
        let t = self.opts.target.clone();
        let on = self
            .leader
            .or(self.primary)
            .ok_or_else(|| be("no leader or primary to make the manifest on"))?;
        let Some(script) = &t.commands.regenerate_manifest else {
            return Err(BackendError::Unsupported {
                backend: "real".into(),
                what: format!(
                    "regenerate a manifest for target `{}` (it has no regenerate_manifest command)",
                    t.name
                ),
            });
        };
        self.say(format!(
            "phase: 0 — regenerating the bootstrap manifest on {on}"
        ));
        let text = self.script(on, "regenerate_manifest", script, &[]).await?;
        let head = self.snapshot_head().await?.unwrap_or_default();
        let m = match BootstrapManifest::from_json(&text) {
            Ok(m) => m,
            // A service's own format: the pass condition is the runbook's, "the snapshot
            // URL inside bootstrap.json references the current snapshot-head".
            Err(_) => {
                let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    node_err(
                        on,
                        format!("the manifest is not JSON ({e}): {}", clip(&text)),
                    )
                })?;
                let names_head = !head.is_empty() && text.contains(&head);
                let image = json
                    .get("dockerImage")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                BootstrapManifest {
                    version: 1,
                    snapshot_head: if names_head {
                        head.clone()
                    } else {
                        String::new()
                    },
                    snapshot_url: String::new(),
                    image,
                    trusted_key: String::new(),
                    required_settings: Vec::new(),
                    generated_at: Millis(events::now_us() / 1000),
                }
            }
        };
        self.manifests.insert(m.snapshot_head.clone(), text);
        Ok(m)
    }

    async fn snapshot_head(&mut self) -> Result<Option<String>, BackendError> {
        let on = self
            .leader
            .or(self.primary)
            .ok_or_else(|| be("no leader or primary to read the head on"))?;
        let t = self.opts.target.clone();
        let head = match &t.commands.snapshot_head {
            Some(script) => Some(self.script(on, "snapshot_head", script, &[]).await?),
            None => self.read_dashboard(on).await?.and_then(|d| d.snapshot_head),
        };
        Ok(head
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h != "none"))
    }

    async fn inject(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.say(format!("phase: fault — {fault}"));
        self.fault(fault, true).await
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.say(format!("phase: heal — {fault}"));
        self.fault(fault, false).await
    }

    async fn probe(&mut self, node: NodeId) -> Result<Option<Dashboard>, BackendError> {
        let dash = if self.node(node)?.state == Proc::Running {
            self.read_dashboard(node).await?
        } else {
            None
        };
        let role = dash.as_ref().map_or(Role::Stopped, |d| d.role);
        // Leadership as the probes see it (the only view of a black-box service),
        // recorded before the probe that saw it so the probe falls inside its interval.
        let n = self.node(node)?;
        if n.role != Some(role) {
            n.role = Some(role);
            self.log.record(Event::RoleChanged {
                node,
                role,
                token: dash.as_ref().and_then(|d| d.lease_token),
                why: "seen on its dashboard".into(),
            });
        }
        self.log.record(Event::HealthProbe {
            node,
            healthz: dash.as_ref().is_some_and(|d| d.healthz),
            readyz: dash.as_ref().is_some_and(|d| d.readyz),
            role,
            observed_leader: dash.as_ref().and_then(|d| d.observed_leader),
        });
        if role == Role::Leader {
            self.leader = Some(node);
        }
        Ok(dash)
    }

    async fn send_chat(&mut self, text: &str) -> Result<i64, BackendError> {
        let code = Self::code()?;
        let message = format!("{text} [{code}]");
        let update_id = match self.opts.operator.clone() {
            Operator::Double { base } => {
                let v: serde_json::Value = reqwest::Client::new()
                    .post(format!("{base}/inject/message"))
                    .timeout(Duration::from_secs(5))
                    .json(&serde_json::json!({ "chat_id": crate::docker::OPERATOR_CHAT, "text": message }))
                    .send()
                    .await
                    .map_err(|e| be(format!("Telegram double: {}", e.without_url())))?
                    .json()
                    .await
                    .map_err(be)?;
                v["update_id"]
                    .as_i64()
                    .ok_or_else(|| be(format!("Telegram double answered {v}")))?
            }
            Operator::Person { client } => {
                let me = client
                    .get_me()
                    .await
                    .map_err(|e| be(self.secrets.scrub(&format!("getMe: {e}"))))?;
                let bot = me.username.clone().unwrap_or(me.first_name.clone());
                self.say(format!(
                    "ACTION: send this message to @{bot} now: {message}  (then press Enter)"
                ));
                // The chat step's bound counts from here: a person needs the time to type.
                let _ = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)
                })
                .await;
                self.telegram_proof.push(format!(
                    "bot @{bot} (id {}) answered getMe; operator asked to send \"{message}\"",
                    me.id
                ));
                let id = self.next_update;
                self.next_update += 1;
                id
            }
        };
        self.log.record(Event::ChatSent {
            update_id,
            text: message.clone(),
        });
        self.telegram_proof.push(format!(
            "{} sent \"{message}\" (update {update_id})",
            self.stamp()
        ));
        self.chats.insert(
            update_id,
            Chat {
                code,
                sent: Instant::now(),
            },
        );
        Ok(update_id)
    }

    async fn reply_to(&mut self, update_id: i64) -> Result<Option<NodeId>, BackendError> {
        let Some(chat) = self.chats.get(&update_id) else {
            return Ok(None);
        };
        let (code, sent) = (chat.code.clone(), chat.sent);
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state == Proc::Running)
            .map(|(id, _)| *id)
            .collect();
        for n in running {
            if let Some(line) = self.code_seen(n, &code).await {
                self.log.record(Event::ChatReplied {
                    update_id,
                    node: n,
                    incarnation: None,
                    token: None,
                    sent_at: None,
                });
                let dash = self.read_dashboard(n).await.ok().flatten();
                self.telegram_proof.push(format!(
                    "{} code {code} found on node {n} {:.1} s after it was sent: {line}",
                    self.stamp(),
                    sent.elapsed().as_secs_f64()
                ));
                if let Some(d) = dash {
                    self.telegram_proof.push(format!(
                        "node {n}'s dashboard then: role {}, last_reply {:?}, healthz {}, readyz {}",
                        d.role, d.last_reply, d.healthz, d.readyz
                    ));
                }
                self.chats.remove(&update_id);
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    async fn file_hashes(
        &mut self,
        node: NodeId,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        let t = self.opts.target.clone();
        let dir = t.path("state_dir").map_err(be)?.to_string();
        let files: Vec<String> = t.state.files.iter().map(|f| ssh::shell_quote(f)).collect();
        let cmd = format!(
            "cd {} && sha256sum -- {} 2>/dev/null; true",
            ssh::shell_quote(&dir),
            files.join(" ")
        );
        let out = self
            .remote(node)?
            .check(&cmd)
            .await
            .map_err(|e| node_err(node, format!("hashing state files: {e:#}")))?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (hash, file) = l.split_once("  ")?;
                Some((file.trim().to_string(), hash.to_string()))
            })
            .collect())
    }

    fn now(&self) -> Millis {
        Millis(self.origin.elapsed().as_millis() as u64)
    }

    async fn sleep(&mut self, d: Millis) -> Result<(), BackendError> {
        tokio::time::sleep(Duration::from_millis(d.0)).await;
        Ok(())
    }

    async fn history(&mut self) -> Result<History, BackendError> {
        let (own, _) = self.log.since(0);
        Ok(events::merge(self.origin_us, &[&own]))
    }

    async fn teardown(&mut self) -> Result<(), BackendError> {
        // The servers outlive the drill's teardown: whether one stays as the new primary
        // depends on the verdict, which the caller hands to `release`.
        self.heal_all().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_passed_takeover_from_a_live_primary_keeps_a_server() {
        let b = Some(NodeId(1));
        // The runbook's case: A (existing) stopped, B (rented) leads, the drill passed.
        assert_eq!(new_primary(true, b, &[false]), b);
        // A failed drill rolls back: A is started again, B deleted.
        assert_eq!(new_primary(false, b, &[false]), None);
        // A still runs: B is not its replacement.
        assert_eq!(new_primary(true, b, &[true]), None);
        // Every node rented: nothing to replace.
        assert_eq!(new_primary(true, b, &[]), None);
        // No rented node leads.
        assert_eq!(new_primary(true, None, &[false]), None);
    }

    #[test]
    fn fault_scripts_cut_nodes_and_services_and_refuse_what_they_cannot_do() {
        let ips = BTreeMap::from([
            (NodeId(0), "10.0.0.1".to_string()),
            (NodeId(1), "10.0.0.2".to_string()),
        ]);
        let services = BTreeMap::from([("telegram".to_string(), "api.telegram.org".to_string())]);
        let a = Endpoint::Node(NodeId(0));
        let cut = fault_scripts(
            &Fault::Partition {
                a,
                b: Endpoint::Telegram,
            },
            "run1-1",
            &ips,
            &services,
        )
        .unwrap();
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].0, NodeId(0));
        assert!(
            cut[0].1.apply.contains("api.telegram.org"),
            "{}",
            cut[0].1.apply
        );
        assert!(
            cut[0].1.apply.contains("lifeboat-run1-1"),
            "{}",
            cut[0].1.apply
        );
        let oneway = fault_scripts(
            &Fault::PartitionOneway {
                from: a,
                to: Endpoint::Node(NodeId(1)),
            },
            "run1-2",
            &ips,
            &services,
        )
        .unwrap();
        // Both ends get a rule: out on the sender, in on the receiver.
        assert_eq!(oneway.len(), 2);
        assert!(oneway[0].1.apply.contains("10.0.0.2"));
        assert!(oneway[1].1.apply.contains("10.0.0.1"));
        let no_host = fault_scripts(
            &Fault::Partition {
                a,
                b: Endpoint::LeaseStore,
            },
            "run1-3",
            &ips,
            &services,
        );
        assert!(
            matches!(&no_host, Err(e) if e.to_string().contains("--service-host lease-store=HOST")),
            "{no_host:?}"
        );
        let latency = fault_scripts(
            &Fault::Latency { extra: Millis(100) },
            "run1-4",
            &ips,
            &services,
        );
        assert!(matches!(latency, Err(BackendError::Unsupported { .. })));
    }
}
