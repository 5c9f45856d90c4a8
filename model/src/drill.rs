//! The drill runner: interprets a scenario against any backend, records the history, runs
//! the checkers and reaches a verdict per step, per success criterion and overall.
//!
//! The runner holds no I/O of its own; it only calls the [`Backend`]. It returns the
//! evidence as data, and the `lifeboat` command writes it to disk.

use crate::backend::{Backend, BackendError, EventKind};
use crate::bootstrap::BootstrapManifest;
use crate::check::{self, CheckConfig, Invariant, Takeover};
use crate::fault::{Capability, Fault};
use crate::history::{Event, History, PollOutcome, Role};
use crate::ids::NodeId;
use crate::node::Dashboard;
use crate::profile::{Profile, ProfileName};
use crate::scenario::{Action, Condition, Criterion, Scenario, Verdict};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How the runner paces itself.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How often `wait_for`, `hold` and `chat` look again.
    pub probe_every: Millis,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            probe_every: Millis(250),
        }
    }
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    /// 1-based step number.
    pub number: usize,
    /// The runbook phase.
    pub phase: Option<String>,
    /// The action and its arguments, in words.
    pub action: String,
    /// The criterion it proves.
    pub criterion: Option<u32>,
    /// Whether it held.
    pub ok: bool,
    /// When it began (backend time).
    pub started: Millis,
    /// When it ended.
    pub ended: Millis,
    /// What was seen, in words.
    pub detail: String,
}

/// The files the runbook's minimum evidence bundle names; a run that did not capture one
/// of them fails the evidence criterion (a criterion with neither steps nor invariants).
pub const RUNBOOK_FILES: [&str; 6] = [
    "primary-pre.json",
    "follower-post.json",
    "restore-post.json",
    "bootstrap.json",
    "snapshot-head.txt",
    "telegram-proof.txt",
];

/// What became of one success criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CriterionStatus {
    /// Every step behind it passed and every invariant it cites held, with at least one
    /// of them behind it.
    Met,
    /// A step behind it failed, or an invariant it cites was violated.
    NotMet,
    /// Nothing broke it, but something it rests on was not judged (an invariant with
    /// nothing to judge, or one the backend cannot observe): no evidence, no "met".
    NotJudged,
    /// Not judged, and the scenario declares it out of scope on this backend.
    OutOfScope,
}

impl CriterionStatus {
    /// The status as the console and the report print it.
    pub fn words(self) -> &'static str {
        match self {
            CriterionStatus::Met => "met",
            CriterionStatus::NotMet => "NOT MET",
            CriterionStatus::NotJudged => "not judged",
            CriterionStatus::OutOfScope => "out of scope",
        }
    }
}

/// The outcome of one success criterion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// Its number.
    pub id: u32,
    /// Its words.
    pub name: String,
    /// Met, not met, not judged, or out of scope on this backend.
    pub status: CriterionStatus,
    /// True for the evidence criterion (neither steps nor invariants): the bundle writer
    /// judges it again against the files it wrote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_bundle: bool,
    /// When its last step ended.
    pub at: Option<Millis>,
    /// Why, in words.
    pub detail: String,
}

/// Everything a drill produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DrillReport {
    /// The scenario's name.
    pub scenario: String,
    /// The profile run.
    pub profile: ProfileName,
    /// The backend.
    pub backend: String,
    /// The seed.
    pub seed: u64,
    /// Every step.
    pub steps: Vec<StepResult>,
    /// Every success criterion.
    pub criteria: Vec<CriterionResult>,
    /// Every invariant checked.
    pub invariants: Vec<check::Report>,
    /// Every leaderless gap and how it ended.
    pub takeovers: Vec<Takeover>,
    /// The verdict.
    pub verdict: Verdict,
    /// The verdict in words.
    pub reason: String,
    /// Why the run could not be judged (nothing run, a backend error); the verdict is then
    /// UNKNOWN whatever the criteria say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub could_not_judge: Option<String>,
    /// The trace hash of the history.
    pub trace_hash: String,
    /// Backend time at the end.
    pub duration: Millis,
    /// Evidence files by name (the writer adds the history, verdict and report).
    pub evidence: BTreeMap<String, String>,
    /// The history.
    #[serde(skip)]
    pub history: History,
}

struct Runner<'a, B: Backend> {
    b: &'a mut B,
    opts: &'a RunOptions,
    progress: &'a mut dyn FnMut(&str),
    active: Vec<Fault>,
    pending_heals: Vec<(Millis, Fault)>,
    manifest: Option<BootstrapManifest>,
    evidence: BTreeMap<String, String>,
    proof: Vec<String>,
    /// The cluster's nodes, for conditions about all of them.
    nodes: Vec<NodeId>,
}

/// Runs `scenario` with `profile` on backend `b`; `progress` gets one line per step as
/// it ends. The backend is torn down at the end, whatever happened.
pub async fn run<B: Backend>(
    b: &mut B,
    scenario: &Scenario,
    profile: Profile,
    seed: u64,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&str),
) -> DrillReport {
    let mut report = DrillReport {
        scenario: scenario.name.clone(),
        profile: profile.name(),
        backend: b.name().to_string(),
        seed,
        steps: Vec::new(),
        criteria: Vec::new(),
        invariants: Vec::new(),
        takeovers: Vec::new(),
        verdict: Verdict::Unknown,
        reason: String::new(),
        could_not_judge: None,
        trace_hash: String::new(),
        duration: Millis::ZERO,
        evidence: BTreeMap::new(),
        history: History::new(),
    };
    let have = b.capabilities();
    let missing: Vec<Capability> = scenario
        .capabilities()
        .into_iter()
        .filter(|c| !have.contains(c))
        .collect();
    if !missing.is_empty() {
        report.could_not_judge = Some(format!(
            "the {} backend lacks {} that scenario `{}` needs; nothing was run",
            b.name(),
            missing
                .iter()
                .map(|c| serde_json::to_string(c)
                    .unwrap_or_default()
                    .replace('"', ""))
                .collect::<Vec<_>>()
                .join(", "),
            scenario.name
        ));
        decide(&mut report);
        return report;
    }
    let cluster = scenario.cluster(profile.clone(), seed);
    if let Err(e) = b.provision(&cluster).await {
        report.could_not_judge = Some(format!("could not provision the cluster: {e}"));
        decide(&mut report);
        let _ = b.teardown().await;
        return report;
    }
    let mut r = Runner {
        b,
        opts,
        progress,
        active: Vec::new(),
        pending_heals: Vec::new(),
        manifest: None,
        evidence: BTreeMap::new(),
        proof: Vec::new(),
        nodes: cluster.nodes.iter().map(|n| n.id).collect(),
    };
    let mut backend_error = None;
    let mut gate_closed = false;
    for (i, step) in scenario.steps.iter().enumerate() {
        let started = r.b.now();
        let outcome = match &step.action {
            Action::Gate { criteria, protects } => {
                let cfg = check_config(&profile);
                let reasons = match r.b.history().await {
                    Ok(h) => Ok(gate_reasons(
                        criteria,
                        scenario,
                        &report.steps,
                        &h,
                        &cfg,
                        &report.backend,
                        &r.b.observes(),
                    )),
                    Err(e) => Err(e),
                };
                reasons.map(|why| gate_outcome(criteria, protects.as_deref(), &why))
            }
            action => r.step(action).await,
        };
        let (ok, detail) = match outcome {
            Ok(v) => v,
            Err(e) => {
                backend_error = Some(format!("step {}: {e}", i + 1));
                (false, format!("backend error: {e}"))
            }
        };
        let res = StepResult {
            number: i + 1,
            phase: step.phase.clone(),
            action: describe(&step.action),
            criterion: step.criterion,
            ok,
            started,
            ended: r.b.now(),
            detail,
        };
        (r.progress)(&format!(
            "[{:>9}] step {:>2} {:<44} {}{}  {}",
            fmt_time(res.ended),
            res.number,
            res.action,
            if ok { "ok" } else { "FAILED" },
            res.criterion
                .map(|c| format!(" (criterion {c})"))
                .unwrap_or_default(),
            res.detail
        ));
        if matches!(step.action, Action::Gate { .. }) && !res.ok {
            gate_closed = true;
        }
        report.steps.push(res);
        if backend_error.is_some() || gate_closed {
            break;
        }
    }
    if backend_error.is_none() && !gate_closed {
        if let Err(e) = r.advance(scenario.settle).await {
            backend_error = Some(format!("settling: {e}"));
        }
    }
    let history = r.b.history().await.unwrap_or_default();
    let observes = r.b.observes();
    if let Ok(Some(head)) = r.b.snapshot_head().await {
        r.evidence
            .insert("snapshot-head.txt".into(), format!("{head}\n"));
    }
    r.evidence
        .insert("telegram-proof.txt".into(), r.proof.join("\n") + "\n");
    if let Err(e) = r.heal_everything().await {
        backend_error.get_or_insert(format!("healing at the end: {e}"));
    }
    if let Err(e) = r.b.teardown().await {
        backend_error.get_or_insert(format!("teardown: {e}"));
    }
    report.evidence = std::mem::take(&mut r.evidence);
    report.duration = history.end();
    judge(
        &mut report,
        scenario,
        &profile,
        history,
        &observes,
        backend_error,
    );
    report
}

fn judge(
    report: &mut DrillReport,
    scenario: &Scenario,
    profile: &Profile,
    history: History,
    observes: &BTreeSet<EventKind>,
    backend_error: Option<String>,
) {
    let cfg = check_config(profile);
    // Judge every invariant the scenario or a criterion names, once each.
    let wanted = scenario.invariants();
    let mut needed: Vec<Invariant> = wanted.clone();
    needed.extend(
        scenario
            .criteria
            .iter()
            .flat_map(|c| c.invariants.iter())
            .filter_map(|name| Invariant::parse(name).ok()),
    );
    needed.sort();
    needed.dedup();
    let judged: BTreeMap<Invariant, check::Report> = needed
        .iter()
        .copied()
        .zip(check::check_observed(
            &needed,
            &history,
            &cfg,
            &report.backend,
            observes,
        ))
        .collect();
    report.invariants = wanted.iter().map(|inv| judged[inv].clone()).collect();
    report.takeovers = check::takeovers(&history);
    report.trace_hash = history.trace_hash();
    report.criteria = scenario
        .criteria
        .iter()
        .map(|c| {
            let declared = scenario.steps.iter().any(|s| s.criterion == Some(c.id));
            judge_criterion(
                c,
                declared,
                &report.steps,
                &judged,
                &report.evidence,
                &report.backend,
            )
        })
        .collect();
    report.history = history;
    report.could_not_judge = backend_error.map(|e| format!("could not judge: {e}"));
    decide(report);
}

/// The bounds the checkers judge against: the profile's own promises.
fn check_config(profile: &Profile) -> CheckConfig {
    CheckConfig {
        takeover_bound: profile.takeover_bound(),
        rpo_bound: profile.rpo_bound(),
        observe_lag: profile.observe_lag(),
    }
}

/// The invariants a gate judges on the history so far. Each is a safety property whose
/// violation is complete once it happened; the others (an unanswered chat, a takeover
/// or restore still under way, readiness inside its observation lag) could read as
/// violated merely because the history stops at the gate.
const GATE_INVARIANTS: [Invariant; 4] = [
    Invariant::LeaderExclusive,
    Invariant::PollExclusive,
    Invariant::ChainIntact,
    Invariant::TamperRefused,
];

/// Why a gate over `criteria` stays closed: each failed step of those criteria so far
/// and each violation, in the history so far, of a gate invariant they cite. Empty: the
/// gate opens.
fn gate_reasons(
    criteria: &[u32],
    scenario: &Scenario,
    steps: &[StepResult],
    history: &History,
    cfg: &CheckConfig,
    backend: &str,
    observes: &BTreeSet<EventKind>,
) -> Vec<String> {
    let mut why = Vec::new();
    for s in steps.iter().filter(|s| !s.ok) {
        if let Some(c) = s.criterion.filter(|c| criteria.contains(c)) {
            why.push(format!(
                "criterion {c}: step {} ({}) failed",
                s.number, s.action
            ));
        }
    }
    let mut cited: Vec<Invariant> = scenario
        .criteria
        .iter()
        .filter(|c| criteria.contains(&c.id))
        .flat_map(|c| c.invariants.iter())
        .filter_map(|name| Invariant::parse(name).ok())
        .filter(|inv| GATE_INVARIANTS.contains(inv))
        .collect();
    cited.sort();
    cited.dedup();
    for rep in check::check_observed(&cited, history, cfg, backend, observes) {
        if let Some(v) = rep.violations.first() {
            why.push(format!(
                "invariant {} violated at {}",
                rep.invariant,
                fmt_time(v.at)
            ));
        }
    }
    why
}

/// A gate step's outcome: open (ok) or closed with its reasons.
fn gate_outcome(criteria: &[u32], protects: Option<&str>, why: &[String]) -> (bool, String) {
    let list = criteria
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if why.is_empty() {
        return (true, format!("criteria {list} held so far: going on"));
    }
    let before = protects.map(|p| format!(" before {p}")).unwrap_or_default();
    (
        false,
        format!(
            "gate closed: {}; the drill stops here{before}",
            why.join("; ")
        ),
    )
}

/// Judges one criterion from the steps that name it and the invariants it cites. A
/// criterion with neither is the evidence criterion: met when the run captured every
/// file the runbook's bundle names (the bundle writer checks the files on disk again).
/// `declared` says whether the scenario has steps for it: a criterion whose steps never
/// ran (the drill stopped at a gate) is not judged, never judged from the bundle.
fn judge_criterion(
    c: &Criterion,
    declared: bool,
    steps: &[StepResult],
    judged: &BTreeMap<Invariant, check::Report>,
    evidence: &BTreeMap<String, String>,
    backend: &str,
) -> CriterionResult {
    let steps: Vec<&StepResult> = steps.iter().filter(|s| s.criterion == Some(c.id)).collect();
    let at = steps.last().map(|s| s.ended);
    let from_bundle = !declared && c.invariants.is_empty();
    let result = |status, detail| CriterionResult {
        id: c.id,
        name: c.name.clone(),
        status,
        from_bundle,
        at,
        detail,
    };
    let cited: Vec<&check::Report> = c
        .invariants
        .iter()
        .filter_map(|name| Invariant::parse(name).ok())
        .map(|inv| &judged[&inv])
        .collect();
    if from_bundle {
        let missing: Vec<&str> = RUNBOOK_FILES
            .iter()
            .copied()
            .filter(|f| !evidence.contains_key(*f))
            .collect();
        return if missing.is_empty() {
            result(
                CriterionStatus::Met,
                format!(
                    "the run captured every runbook file ({})",
                    RUNBOOK_FILES.join(", ")
                ),
            )
        } else {
            result(
                CriterionStatus::NotMet,
                format!("the bundle lacks {}", missing.join(", ")),
            )
        };
    }
    let mut reasons = Vec::new();
    for s in steps.iter().filter(|s| !s.ok) {
        reasons.push(format!(
            "step {} ({}) failed: {}",
            s.number, s.action, s.detail
        ));
    }
    for rep in &cited {
        if let Some(v) = rep.violations.first() {
            let more = match rep.violations.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            reasons.push(format!(
                "invariant {} violated: {}{more}",
                rep.invariant, v.explanation
            ));
        }
    }
    if !reasons.is_empty() {
        return result(CriterionStatus::NotMet, reasons.join("; "));
    }
    if declared && steps.is_empty() {
        return result(
            CriterionStatus::NotJudged,
            "its steps did not run: the drill stopped before them".into(),
        );
    }
    let unjudged: Vec<String> = cited
        .iter()
        .filter(|r| !r.judged())
        .map(|r| format!("invariant {} {}", r.invariant, r.summary()))
        .collect();
    if !unjudged.is_empty() {
        let status = if c.out_of_scope.iter().any(|b| b.name() == backend) {
            CriterionStatus::OutOfScope
        } else {
            CriterionStatus::NotJudged
        };
        return result(status, unjudged.join("; "));
    }
    let held: Vec<String> = cited
        .iter()
        .map(|r| format!("invariant {} held ({})", r.invariant, r.counts_words()))
        .collect();
    let detail = match steps.last() {
        Some(s) => {
            let mut d = format!("met at {}: {}", fmt_time(s.ended), s.detail);
            if !held.is_empty() {
                d.push_str(&format!("; {}", held.join("; ")));
            }
            d
        }
        None => format!("met: {}", held.join("; ")),
    };
    result(CriterionStatus::Met, detail)
}

/// Reaches the verdict from the steps, criteria and invariants as they stand: FAIL when
/// a step failed, a criterion was not met or an invariant was violated; else UNKNOWN when
/// a criterion was not judged (and is not out of scope on this backend); PASS only when
/// every criterion was met with evidence. The evidence writer calls it again after it
/// re-judges the bundle, so the verdict always follows the criteria.
pub fn decide(report: &mut DrillReport) {
    if let Some(why) = &report.could_not_judge {
        report.verdict = Verdict::Unknown;
        report.reason = why.clone();
        return;
    }
    let failed_criteria: Vec<&CriterionResult> = report
        .criteria
        .iter()
        .filter(|c| c.status == CriterionStatus::NotMet)
        .collect();
    let violated: Vec<&check::Report> = report.invariants.iter().filter(|r| !r.ok()).collect();
    let failed_steps: Vec<&StepResult> = report.steps.iter().filter(|s| !s.ok).collect();
    if failed_criteria.is_empty() && violated.is_empty() && failed_steps.is_empty() {
        let unjudged: Vec<&CriterionResult> = report
            .criteria
            .iter()
            .filter(|c| c.status == CriterionStatus::NotJudged)
            .collect();
        if let Some(c) = unjudged.first() {
            report.verdict = Verdict::Unknown;
            report.reason = format!("criterion {} ({}) not judged: {}", c.id, c.name, c.detail);
            if unjudged.len() > 1 {
                report.reason.push_str(&format!(
                    " (and {} more criteria not judged)",
                    unjudged.len() - 1
                ));
            }
            return;
        }
        report.verdict = Verdict::Pass;
        report.reason = if report.criteria.is_empty() {
            "every step held and no invariant was violated".into()
        } else {
            "every step held, every criterion was met with evidence and no invariant was violated"
                .into()
        };
        return;
    }
    report.verdict = Verdict::Fail;
    let mut parts = Vec::new();
    if let Some(g) = failed_steps.iter().find(|s| s.action.starts_with("gate ")) {
        parts.push(format!("step {} ({}): {}", g.number, g.action, g.detail));
    }
    if let Some(c) = failed_criteria.first() {
        parts.push(format!(
            "criterion {} ({}) not met: {}",
            c.id, c.name, c.detail
        ));
    } else if let Some(s) = failed_steps.first() {
        parts.push(format!(
            "step {} ({}) failed: {}",
            s.number, s.action, s.detail
        ));
    }
    for r in &violated {
        parts.push(format!(
            "invariant {} violated {} time(s); first: {}",
            r.invariant,
            r.violations.len(),
            r.violations[0].explanation
        ));
    }
    report.reason = parts.join("\n");
}

/// `12.345s` for reports.
pub fn fmt_time(t: Millis) -> String {
    format!("{:.3}s", t.as_secs_f64())
}

fn describe(a: &Action) -> String {
    match a {
        Action::Start { node } => format!("start {node}"),
        Action::RegenerateManifest => "regenerate bootstrap manifest".into(),
        Action::CheckManifest => "check manifest against head".into(),
        Action::Bootstrap { node } => format!("bootstrap {node} from manifest"),
        Action::Wait { duration } => format!("wait {duration}"),
        Action::WaitFor {
            condition,
            node,
            within,
        } => {
            format!(
                "wait for {} {} within {within}",
                who(*node),
                condition.name()
            )
        }
        Action::Hold {
            condition,
            node,
            duration,
        } => {
            format!("hold {} {} for {duration}", who(*node), condition.name())
        }
        Action::Fault { fault, duration } => match duration {
            Some(d) => format!("fault {fault} for {d}"),
            None => format!("fault {fault}"),
        },
        Action::Heal { fault } => format!("heal {fault}"),
        Action::HealAll => "heal all faults".into(),
        Action::Chat { text, from, .. } => match from {
            Some(n) => format!("chat {text:?} (answer from {n})"),
            None => format!("chat {text:?}"),
        },
        Action::Collect { what, node } => format!("collect {} from {node}", what.file_name()),
        Action::CompareFiles { leader, restored } => {
            format!("compare files {leader} vs {restored}")
        }
        Action::Gate { criteria, protects } => {
            let list = criteria
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            match protects {
                Some(p) => format!("gate on criteria {list} before {p}"),
                None => format!("gate on criteria {list}"),
            }
        }
    }
}

/// How a step names its node: a letter, or "any node" when left out.
fn who(node: Option<NodeId>) -> String {
    node.map_or("any node".into(), |n| n.to_string())
}

type StepOutcome = Result<(bool, String), BackendError>;

impl<B: Backend> Runner<'_, B> {
    /// Lets time pass, healing faults whose duration ends on the way.
    async fn advance(&mut self, d: Millis) -> Result<(), BackendError> {
        let target = self.b.now() + d;
        loop {
            self.pending_heals.sort_by_key(|(t, _)| *t);
            let next = self.pending_heals.first().map(|(t, _)| *t);
            match next {
                Some(t) if t <= target => {
                    let now = self.b.now();
                    if t > now {
                        self.b.sleep(t - now).await?;
                    }
                    let (_, f) = self.pending_heals.remove(0);
                    self.heal(&f).await?;
                }
                _ => break,
            }
        }
        let now = self.b.now();
        if target > now {
            self.b.sleep(target - now).await?;
        }
        Ok(())
    }

    async fn heal(&mut self, f: &Fault) -> Result<(), BackendError> {
        if let Some(pos) = self.active.iter().position(|a| a == f) {
            self.active.remove(pos);
            self.b.heal(f).await?;
        }
        Ok(())
    }

    async fn heal_everything(&mut self) -> Result<(), BackendError> {
        self.pending_heals.clear();
        while let Some(f) = self.active.pop() {
            // Restarting nodes at teardown would only add noise to the history.
            if !matches!(f, Fault::Kill { .. } | Fault::Stop { .. }) {
                self.b.heal(&f).await?;
            }
        }
        Ok(())
    }

    async fn probe_all(
        &mut self,
        nodes: &[NodeId],
    ) -> Result<Vec<(NodeId, Option<Dashboard>)>, BackendError> {
        let mut out = Vec::new();
        for n in nodes {
            out.push((*n, self.b.probe(*n).await?));
        }
        Ok(out)
    }

    async fn condition(
        &mut self,
        c: Condition,
        node: Option<NodeId>,
    ) -> Result<(bool, String), BackendError> {
        if c == Condition::SoleLeader {
            let nodes = self.nodes.clone();
            let all = self.probe_all(&nodes).await?;
            let leaders: Vec<NodeId> = all
                .iter()
                // A leader counts when it says so and is ready: a node that resumed from
                // a pause past its lease may still name itself leader for an instant, but
                // its readiness already says it may not act (invariant 8).
                .filter(|(_, d)| {
                    d.as_ref()
                        .is_some_and(|d| d.role == Role::Leader && d.readyz)
                })
                .map(|(n, _)| *n)
                .collect();
            let ok = match node {
                Some(n) => leaders == vec![n],
                None => leaders.len() == 1,
            };
            return Ok((ok, format!("leaders: {}", names(&leaders))));
        }
        let node = node.expect("validation: only sole-leader may leave out the node");
        let dash = self.b.probe(node).await?;
        let Some(d) = dash else {
            return Ok((c == Condition::Stopped, format!("{node} does not answer")));
        };
        let seen = format!(
            "{node} is {}{}",
            d.role,
            d.observed_leader
                .map(|l| format!(", observing {l}"))
                .unwrap_or_default()
        );
        let ok = match c {
            Condition::Leader => d.role == Role::Leader && d.readyz,
            Condition::Follower => {
                d.role == Role::Follower && d.observed_leader.is_some_and(|l| l != node)
            }
            Condition::Ready => d.healthz && d.readyz,
            Condition::Healthy => d.healthz,
            Condition::Restored => {
                d.snapshot_head.is_some() && matches!(d.role, Role::Follower | Role::Leader)
            }
            Condition::Stopped => false,
            Condition::HeadMatches => {
                let head = self.b.snapshot_head().await?;
                d.snapshot_head.is_some() && d.snapshot_head == head
            }
            Condition::SoleLeader => unreachable!("handled above"),
        };
        Ok((ok, seen))
    }

    async fn step(&mut self, a: &Action) -> StepOutcome {
        match a {
            Action::Start { node } => {
                self.b.start(*node).await?;
                Ok((true, format!("{node} started")))
            }
            Action::RegenerateManifest => {
                let m = self.b.regenerate_manifest().await?;
                let detail = format!("bootstrap.json names head {}", m.snapshot_head);
                self.evidence.insert(
                    "bootstrap.json".into(),
                    serde_json::to_string_pretty(&m).expect("manifests serialize") + "\n",
                );
                self.manifest = Some(m);
                Ok((true, detail))
            }
            Action::CheckManifest => {
                let Some(m) = &self.manifest else {
                    return Ok((
                        false,
                        "no bootstrap manifest yet: add a regenerate_manifest step before".into(),
                    ));
                };
                let head = self.b.snapshot_head().await?.unwrap_or_default();
                Ok(match m.check_fresh(&head) {
                    Ok(()) => (true, format!("manifest names the current head {head}")),
                    Err(e) => (false, e),
                })
            }
            Action::Bootstrap { node } => {
                let Some(m) = self.manifest.clone() else {
                    return Ok((
                        false,
                        "no bootstrap manifest yet: add a regenerate_manifest step before".into(),
                    ));
                };
                self.b.bootstrap(*node, &m).await?;
                Ok((
                    true,
                    format!(
                        "{node} bootstrapping from manifest at head {}",
                        m.snapshot_head
                    ),
                ))
            }
            Action::Wait { duration } => {
                self.advance(*duration).await?;
                Ok((true, String::new()))
            }
            Action::WaitFor {
                condition,
                node,
                within,
            } => {
                let deadline = self.b.now() + *within;
                let start = self.b.now();
                loop {
                    let (ok, seen) = self.condition(*condition, *node).await?;
                    if ok {
                        return Ok((
                            true,
                            format!("{seen} after {}", fmt_time(self.b.now() - start)),
                        ));
                    }
                    if self.b.now() >= deadline {
                        return Ok((
                            false,
                            format!("not {} within {within}: {seen}", condition.name()),
                        ));
                    }
                    self.advance(self.opts.probe_every).await?;
                }
            }
            Action::Hold {
                condition,
                node,
                duration,
            } => {
                let start = self.b.now();
                let end = start + *duration;
                let mut broken: Option<String> = None;
                loop {
                    let (ok, seen) = self.condition(*condition, *node).await?;
                    if !ok && broken.is_none() {
                        broken = Some(format!(
                            "at {} {seen}, not {}",
                            fmt_time(self.b.now()),
                            condition.name()
                        ));
                    }
                    if self.b.now() >= end {
                        break;
                    }
                    self.advance(self.opts.probe_every.min(end - self.b.now()))
                        .await?;
                }
                let h = self.b.history().await?;
                let conflicts = conflicts_between(&h, start, self.b.now());
                let mut problems: Vec<String> = broken.into_iter().collect();
                if conflicts > 0 {
                    problems.push(format!(
                        "{conflicts} getUpdates 409 conflict(s) between our nodes in the window"
                    ));
                }
                if problems.is_empty() {
                    Ok((
                        true,
                        format!(
                            "{} stayed {} for {duration}, no 409",
                            who(*node),
                            condition.name()
                        ),
                    ))
                } else {
                    Ok((false, problems.join("; ")))
                }
            }
            Action::Fault { fault, duration } => {
                self.b.inject(fault).await?;
                self.active.push(fault.clone());
                if let Some(d) = duration {
                    self.pending_heals.push((self.b.now() + *d, fault.clone()));
                }
                Ok((true, format!("injected at {}", fmt_time(self.b.now()))))
            }
            Action::Heal { fault } => {
                self.pending_heals.retain(|(_, f)| f != fault);
                if self.active.contains(fault) {
                    self.heal(fault).await?;
                    Ok((true, String::new()))
                } else {
                    Ok((false, format!("{fault} is not in place")))
                }
            }
            Action::HealAll => {
                self.pending_heals.clear();
                let n = self.active.len();
                while let Some(f) = self.active.pop() {
                    self.b.heal(&f).await?;
                }
                Ok((true, format!("{n} fault(s) healed")))
            }
            Action::Chat { text, within, from } => {
                let sent = self.b.now();
                let id = self.b.send_chat(text).await?;
                if *within == Millis::ZERO {
                    // Fire and forget: invariant 3 judges the answer at the end.
                    self.proof
                        .push(format!("update {id} {text:?} sent at {}", fmt_time(sent)));
                    return Ok((
                        true,
                        format!("sent as update {id}; invariant 3 judges the answer"),
                    ));
                }
                let deadline = sent + *within;
                loop {
                    if let Some(n) = self.b.reply_to(id).await? {
                        let took = self.b.now() - sent;
                        self.proof.push(format!(
                            "update {id} {text:?} sent at {}; answered by node {n} within {}",
                            fmt_time(sent),
                            fmt_time(took)
                        ));
                        return Ok(match from {
                            Some(want) if *want != n => {
                                (false, format!("answered by {n}, expected {want}"))
                            }
                            _ => (true, format!("answered by {n} in {}", fmt_time(took))),
                        });
                    }
                    if self.b.now() >= deadline {
                        self.proof.push(format!(
                            "update {id} {text:?} sent at {}; NO answer within {within}",
                            fmt_time(sent)
                        ));
                        return Ok((false, format!("no answer within {within}")));
                    }
                    self.advance(self.opts.probe_every).await?;
                }
            }
            Action::Collect { what, node } => {
                let d = self.b.probe(*node).await?;
                let json = match &d {
                    Some(d) => serde_json::to_string_pretty(d).expect("dashboards serialize"),
                    None => format!("{{\"node\":\"{node}\",\"error\":\"no answer\"}}"),
                };
                self.evidence.insert(what.file_name().into(), json + "\n");
                Ok((
                    d.is_some(),
                    d.map_or(format!("{node} did not answer"), |d| {
                        format!("{node}: {}", d.role)
                    }),
                ))
            }
            Action::CompareFiles { leader, restored } => {
                let lh = self.b.file_hashes(*leader).await?;
                let rh = self.b.file_hashes(*restored).await?;
                let mut lines = Vec::new();
                for (n, hashes) in [(leader, &lh), (restored, &rh)] {
                    for (p, h) in hashes {
                        lines.push(format!("{h}  {n}/{p}"));
                    }
                }
                self.evidence
                    .insert("state-sha256.txt".into(), lines.join("\n") + "\n");
                let h = self.b.history().await?;
                let verified = h.iter().rev().find_map(|e| match &e.event {
                    Event::RestoreVerified {
                        node,
                        recorded,
                        restored: got,
                        snapshot,
                        ..
                    } if *node == *restored => {
                        Some((recorded.clone(), got.clone(), snapshot.clone()))
                    }
                    _ => None,
                });
                let Some((recorded, got, snap)) = verified else {
                    return Ok((false, format!("{restored} never verified a restore")));
                };
                if recorded != got {
                    return Ok((false, format!("{restored}'s restored files differ from snapshot {snap}'s recorded hashes")));
                }
                let missing: Vec<&String> = lh.keys().filter(|p| !rh.contains_key(*p)).collect();
                if !missing.is_empty() {
                    return Ok((false, format!("{restored} lacks state files: {missing:?}")));
                }
                let same = lh.iter().filter(|(p, h)| rh.get(*p) == Some(h)).count();
                Ok((
                    true,
                    format!(
                        "restore of {snap} coherent; {same} of {} files equal the leader's",
                        lh.len()
                    ),
                ))
            }
            // Gates judge the steps before them, which only `run` holds.
            Action::Gate { .. } => unreachable!("`run` judges gate steps itself"),
        }
    }
}

fn names(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn conflicts_between(h: &History, from: Millis, to: Millis) -> usize {
    h.iter()
        .filter(|e| e.at >= from && e.at <= to)
        .filter(|e| {
            matches!(
                &e.event,
                Event::PollEnded {
                    node: Some(_),
                    outcome: PollOutcome::Conflict,
                    by: Some(Some(_)),
                    ..
                }
            )
        })
        .count()
}
