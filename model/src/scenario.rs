//! Scenario files: a cluster, a profile, ordered steps, criteria and expectations, in TOML.
//!
//! The AAA drill and every failure mode are scenario files; the fuzzer writes its shrunk
//! failures as scenario files too. The format is documented in `docs/scenarios.md`, with
//! a JSON Schema in `docs/scenario.schema.json`. Errors name the file, line and column and
//! say what was expected.

use crate::backend::{Cluster, ClusterNode};
use crate::check::Invariant;
use crate::fault::{Capability, Fault};
use crate::ids::NodeId;
use crate::profile::{FencedParams, Profile, ProfileName, V1Params};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The verdict a scenario expects, or a drill reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every step, criterion and invariant held. Exit code 0.
    Pass,
    /// Something was violated. Exit code 1.
    Fail,
    /// The run could not judge (bad input, a backend error). Exit code 2.
    Unknown,
}

impl Verdict {
    /// The process exit code for this verdict (Maelstrom's convention).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Unknown => 2,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        })
    }
}

/// What a scenario expects of one profile: the verdict, and for a run that is not a pass
/// the invariants violated and the success criteria failed, each compared exactly.
///
/// The short form `fenced = "pass"` is a pass with nothing violated and nothing failed;
/// the long form is a table, `[expect.opentrident-v1]` with `verdict`, `violated` and
/// `failed_criteria`. A short `"fail"` or `"unknown"` leaves both sets unstated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// The verdict.
    pub verdict: Verdict,
    /// The invariants violated, by name (`None`: not stated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violated: Option<BTreeSet<String>>,
    /// The success criteria not met, by number (`None`: not stated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_criteria: Option<BTreeSet<u32>>,
}

impl Expectation {
    /// The expectation the short form `"<verdict>"` means.
    pub fn short(verdict: Verdict) -> Expectation {
        let nothing = verdict == Verdict::Pass;
        Expectation {
            verdict,
            violated: nothing.then(BTreeSet::new),
            failed_criteria: nothing.then(BTreeSet::new),
        }
    }

    /// Whether both sets are stated, so a run can be compared with it exactly.
    pub fn is_complete(&self) -> bool {
        self.violated.is_some() && self.failed_criteria.is_some()
    }
}

/// The long form of an expectation, as the file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationTable {
    verdict: Verdict,
    #[serde(default)]
    violated: Option<BTreeSet<String>>,
    #[serde(default)]
    failed_criteria: Option<BTreeSet<u32>>,
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Expectation;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a verdict (\"pass\", \"fail\" or \"unknown\") or a table with `verdict`, `violated` and `failed_criteria`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Expectation, E> {
                let verdict = Verdict::deserialize(serde::de::value::StrDeserializer::<E>::new(v))?;
                Ok(Expectation::short(verdict))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Expectation, A::Error> {
                let t = ExpectationTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Expectation {
                    verdict: t.verdict,
                    violated: t.violated,
                    failed_criteria: t.failed_criteria,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

/// A condition a step waits for or holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The node reports itself leader and is ready.
    Leader,
    /// The node follows an observed leader and has not taken over.
    Follower,
    /// `/healthz` and `/readyz` both answer 200.
    Ready,
    /// `/healthz` answers 200.
    Healthy,
    /// The node has restored state and left the restoring role.
    Restored,
    /// The node's process is not running.
    Stopped,
    /// The node's snapshot head equals the store's head.
    HeadMatches,
    /// Exactly one node is leader, and it is this node.
    SoleLeader,
}

impl Condition {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Leader => "leader",
            Condition::Follower => "follower",
            Condition::Ready => "ready",
            Condition::Healthy => "healthy",
            Condition::Restored => "restored",
            Condition::Stopped => "stopped",
            Condition::HeadMatches => "head-matches",
            Condition::SoleLeader => "sole-leader",
        }
    }
}

/// What a `collect` step saves into the evidence bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Collect {
    /// `primary-pre.json`: the primary's dashboard before the failure.
    PrimaryPre,
    /// `follower-post.json`: the follower's dashboard after takeover.
    FollowerPost,
    /// `restore-post.json`: the restored node's dashboard.
    RestorePost,
}

impl Collect {
    /// The evidence file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Collect::PrimaryPre => "primary-pre.json",
            Collect::FollowerPost => "follower-post.json",
            Collect::RestorePost => "restore-post.json",
        }
    }
}

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Start a node's process over its disk (the primary, or a restart).
    Start {
        /// The node.
        node: NodeId,
    },
    /// Make a bootstrap manifest from the current snapshot head (runbook phase 0).
    RegenerateManifest,
    /// Check that the last bootstrap manifest names the current snapshot head.
    CheckManifest,
    /// Give a blank node the bootstrap manifest and start it.
    Bootstrap {
        /// The node.
        node: NodeId,
    },
    /// Let time pass.
    Wait {
        /// How long.
        #[serde(rename = "for", with = "crate::time::duration_str")]
        duration: Millis,
    },
    /// Wait until a condition holds, or fail after `within`.
    WaitFor {
        /// The condition.
        condition: Condition,
        /// The node it is about; `sole-leader` alone may leave it out, meaning "exactly
        /// one leader, whichever node it is" (for races with no preferred winner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
        /// The time bound.
        #[serde(with = "crate::time::duration_str")]
        within: Millis,
    },
    /// Require a condition to hold for a whole window, with no getUpdates conflict in it.
    Hold {
        /// The condition.
        condition: Condition,
        /// The node; optional for `sole-leader`, as for `wait_for`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
        /// The window.
        #[serde(rename = "for", with = "crate::time::duration_str")]
        duration: Millis,
    },
    /// Inject a fault, healed after `for` when given.
    Fault {
        /// The fault.
        fault: Fault,
        /// Heal it after this long.
        #[serde(
            rename = "for",
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::time::duration_str::option"
        )]
        duration: Option<Millis>,
    },
    /// Heal one fault.
    Heal {
        /// The fault.
        fault: Fault,
    },
    /// Heal every fault still in place.
    HealAll,
    /// Send the bot a chat message and require a reply within a bound, optionally from a
    /// given node. A bound of `0s` only sends: invariant 3 judges the answer at the end.
    Chat {
        /// The message.
        text: String,
        /// The bound.
        #[serde(with = "crate::time::duration_str")]
        within: Millis,
        /// The node that must answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<NodeId>,
    },
    /// Save a node's dashboard into the evidence bundle.
    Collect {
        /// Which evidence file.
        what: Collect,
        /// The node.
        node: NodeId,
    },
    /// Hash the load-bearing state files of two nodes (phase 5) and require the restored
    /// node's files to match the snapshot it restored.
    CompareFiles {
        /// The leader.
        leader: NodeId,
        /// The restored node.
        restored: NodeId,
    },
    /// Go on only if every named criterion has held so far: none of its steps failed and
    /// none of the safety invariants it cites was violated in the history up to here.
    /// Otherwise the drill stops at once (faults healed, backend torn down) and fails
    /// naming the gate. The runbook's phases depend on each other: a drill whose follower
    /// never followed must not go on to stop the production primary.
    Gate {
        /// The criteria that must have held.
        criteria: Vec<u32>,
        /// What the gate protects, for the report ("stopping the primary").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protects: Option<String>,
    },
}

/// A step with its optional phase label and the success criterion it proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The runbook phase, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The success criterion this step proves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<u32>,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

/// A named success criterion (the runbook's nine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Its number.
    pub id: u32,
    /// Its words.
    pub name: String,
    /// Invariants that must also hold for it to be met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<String>,
    /// Backends on which it cannot be judged by design (`["real"]`): there a criterion
    /// with nothing judged is `out of scope` instead of making the verdict UNKNOWN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_scope: Vec<crate::backend::BackendKind>,
}

/// The cluster section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Node names.
    pub nodes: Vec<NodeId>,
    /// The nodes that start with state (default: the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary: Vec<NodeId>,
    /// Hosts, when nodes share one (default: each node its own host named after it).
    /// Nodes on one host share its state directory, hence OpenTrident's lock file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<NodeId, String>,
    /// Hostnames, when nodes share one (default: each node its own, as each container
    /// has its own id). OpenTrident's lock identity hashes the hostname, so nodes given
    /// one hostname are one instance to the lock; independent of `hosts`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hostnames: BTreeMap<NodeId, String>,
}

/// Simulated network settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Shortest one-way latency.
    #[serde(with = "crate::time::duration_str")]
    pub latency_min: Millis,
    /// Longest one-way latency.
    #[serde(with = "crate::time::duration_str")]
    pub latency_max: Millis,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            latency_min: Millis(1),
            latency_max: Millis(20),
        }
    }
}

/// Per-profile timing overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileOverrides {
    /// `fenced` timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced: Option<FencedParams>,
    /// `opentrident-v1` timings.
    #[serde(
        default,
        rename = "opentrident-v1",
        skip_serializing_if = "Option::is_none"
    )]
    pub opentrident_v1: Option<V1Params>,
}

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (used for the evidence directory).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The failure mode of `docs/failure-modes.md` it covers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<u32>,
    /// The seed (default 1); the fuzzer writes the case's seed here.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The profile when the command line names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileName>,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// Network settings for simulated backends.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Timing overrides per profile.
    #[serde(default)]
    pub profiles: ProfileOverrides,
    /// The outcome expected per profile.
    #[serde(default)]
    pub expect: BTreeMap<ProfileName, Expectation>,
    /// Invariants to check (names or numbers; default all eight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<String>,
    /// How long the world runs after the last step before the checkers judge it.
    #[serde(default = "default_settle", with = "crate::time::duration_str")]
    pub settle: Millis,
    /// The success criteria.
    #[serde(default, rename = "criterion", skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<Criterion>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

fn default_seed() -> u64 {
    1
}

fn default_settle() -> Millis {
    Millis::secs(30)
}

/// A scenario error: the file, and where in it, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl Scenario {
    /// Parses and validates a scenario; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        // Editors on Windows start a UTF-8 file with a byte-order mark; it is not TOML.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let error_at = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_col(text, span.map_or(0, |s| s.start));
            ScenarioError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let mut message = e.message().to_string();
            // The parser's "duplicate key" says neither which key nor what to do.
            if let Some(span) = e.span().filter(|_| message == "duplicate key") {
                let key = text.get(span.clone()).unwrap_or("").split('=').next();
                message = format!(
                    "duplicate key `{}`: each key once per table",
                    key.unwrap_or("").trim()
                );
            }
            error_at(e.span(), message)
        })?;
        scenario
            .validate()
            .map_err(|(step, message)| error_at(scenario.locate(text, step, &message), message))?;
        crate::limits::check_scenario(&scenario)
            .map_err(|e| error_at(crate::locate::span_of(text, &e.path), e.message))?;
        Ok(scenario)
    }

    /// Where a validation error points: the value at fault, found by the TOML parser's
    /// spans (never by searching the text, which a description or comment can fool).
    fn locate(
        &self,
        text: &str,
        step: Option<usize>,
        message: &str,
    ) -> Option<std::ops::Range<usize>> {
        use crate::limits::PathPart::{Index, Key};
        use crate::locate::{span_of, span_of_string};
        let nodes: BTreeSet<NodeId> = self.cluster.nodes.iter().copied().collect();
        if let Some(i) = step {
            let here = [Key("step"), Index(i)];
            let step = &self.steps[i];
            let undeclared = step
                .criterion
                .is_some_and(|c| !self.criteria.iter().any(|d| d.id == c));
            if undeclared {
                return span_of(text, &[Key("step"), Index(i), Key("criterion")]);
            }
            if let Some(unknown) = step.action.nodes().into_iter().find(|n| !nodes.contains(n)) {
                return span_of_string(text, &here, &unknown.to_string());
            }
            // What is left is a condition that needs a node.
            return span_of(text, &[Key("step"), Index(i), Key("condition")]);
        }
        if let Some(twice) = self.second_mention() {
            return span_of(text, &[Key("cluster"), Key("nodes"), Index(twice)]);
        }
        let path = match message.split([':', ' ', '.']).next().unwrap_or("") {
            "cluster" => {
                let unknown = self
                    .cluster
                    .primary
                    .iter()
                    .chain(self.cluster.hosts.keys())
                    .find(|n| !nodes.contains(n));
                if let Some(n) = unknown {
                    return span_of_string(text, &[Key("cluster")], &n.to_string())
                        .or_else(|| span_of(text, &[Key("cluster"), Key("hosts")]));
                }
                vec![Key("cluster"), Key("nodes")]
            }
            "invariants" => vec![Key("invariants")],
            "criterion" => vec![Key("criterion")],
            "profiles" => vec![Key("profiles"), Key("fenced")],
            _ => vec![],
        };
        span_of(text, &path)
    }

    /// The index in `cluster.nodes` of the first name already given before it.
    fn second_mention(&self) -> Option<usize> {
        let mut seen = BTreeSet::new();
        self.cluster.nodes.iter().position(|n| !seen.insert(*n))
    }

    /// Writes the scenario as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("scenarios serialize")
    }

    /// Checks what TOML alone cannot: nodes exist, criteria are declared, invariants are
    /// known. Returns the step index (if any) and the message.
    fn validate(&self) -> Result<(), (Option<usize>, String)> {
        let nodes: BTreeSet<NodeId> = self.cluster.nodes.iter().copied().collect();
        if nodes.is_empty() {
            return Err((
                None,
                "cluster.nodes is empty: name at least one node".into(),
            ));
        }
        if let Some(twice) = self.second_mention() {
            return Err((
                None,
                format!(
                    "cluster.nodes names node `{}` twice: each node once",
                    self.cluster.nodes[twice]
                ),
            ));
        }
        let names = self
            .cluster
            .nodes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let known = |n: &NodeId| -> Result<(), String> {
            if nodes.contains(n) {
                Ok(())
            } else {
                Err(format!("node `{n}` is not in the cluster ({names})"))
            }
        };
        for n in self
            .cluster
            .primary
            .iter()
            .chain(self.cluster.hosts.keys())
            .chain(self.cluster.hostnames.keys())
        {
            known(n).map_err(|m| (None, format!("cluster: {m}")))?;
        }
        for (n, hostname) in &self.cluster.hostnames {
            if hostname.trim().is_empty() {
                return Err((
                    None,
                    format!("cluster.hostnames.{n}: empty; expected a hostname such as \"box\""),
                ));
            }
        }
        for (profile, e) in &self.expect {
            for inv in e.violated.iter().flatten() {
                Invariant::parse(inv)
                    .map_err(|m| (None, format!("expect.{profile}.violated: {m}")))?;
            }
        }
        for inv in &self.invariants {
            if inv != "all" {
                Invariant::parse(inv).map_err(|m| (None, format!("invariants: {m}")))?;
            }
        }
        let criteria: BTreeSet<u32> = self.criteria.iter().map(|c| c.id).collect();
        for c in &self.criteria {
            for inv in &c.invariants {
                Invariant::parse(inv).map_err(|m| (None, format!("criterion {}: {m}", c.id)))?;
            }
        }
        if self.steps.is_empty() {
            return Err((None, "a scenario needs at least one [[step]]".into()));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = |m: String| {
                (
                    Some(i),
                    format!("step {} ({}): {m}", i + 1, step.action.name()),
                )
            };
            if let Some(c) = step.criterion {
                if !criteria.contains(&c) {
                    return Err(at(format!(
                        "criterion {c} is not declared in a [[criterion]] table"
                    )));
                }
            }
            for n in step.action.nodes() {
                known(&n).map_err(at)?;
            }
            if let Action::Gate {
                criteria: gated, ..
            } = &step.action
            {
                if gated.is_empty() {
                    return Err(at(
                        "`criteria` is empty; name the criteria that must have held, e.g. [1, 2]"
                            .into(),
                    ));
                }
                if let Some(c) = gated.iter().find(|c| !criteria.contains(c)) {
                    return Err(at(format!(
                        "gate names criterion {c}, which no [[criterion]] table declares"
                    )));
                }
            }
            if let Action::WaitFor {
                condition,
                node: None,
                ..
            }
            | Action::Hold {
                condition,
                node: None,
                ..
            } = &step.action
            {
                if *condition != Condition::SoleLeader {
                    return Err(at(format!(
                        "condition `{}` needs a `node`; only `sole-leader` may leave it out",
                        condition.name()
                    )));
                }
            }
        }
        if let Some(p) = &self.profiles.fenced {
            p.validate()
                .map_err(|m| (None, format!("profiles.fenced: {m}")))?;
        }
        Ok(())
    }

    /// The profile to run: the command line's choice, else the file's, else `fenced`,
    /// with the file's timing overrides.
    pub fn profile(&self, choice: Option<ProfileName>) -> Profile {
        match choice.or(self.profile).unwrap_or(ProfileName::Fenced) {
            ProfileName::Fenced => {
                Profile::Fenced(self.profiles.fenced.clone().unwrap_or_default())
            }
            ProfileName::OpentridentV1 => {
                Profile::OpentridentV1(self.profiles.opentrident_v1.clone().unwrap_or_default())
            }
        }
    }

    /// The cluster a backend must build for `profile`.
    pub fn cluster(&self, profile: Profile, seed: u64) -> Cluster {
        let primaries: Vec<NodeId> = if self.cluster.primary.is_empty() {
            vec![self.cluster.nodes[0]]
        } else {
            self.cluster.primary.clone()
        };
        Cluster {
            nodes: self
                .cluster
                .nodes
                .iter()
                .map(|n| ClusterNode {
                    id: *n,
                    host: self
                        .cluster
                        .hosts
                        .get(n)
                        .cloned()
                        .unwrap_or_else(|| n.to_string()),
                    primary: primaries.contains(n),
                    hostname: self.cluster.hostnames.get(n).cloned(),
                })
                .collect(),
            profile,
            seed,
            latency_min: self.network.latency_min,
            latency_max: self.network.latency_max,
        }
    }

    /// The invariants to check.
    pub fn invariants(&self) -> Vec<Invariant> {
        if self.invariants.is_empty() || self.invariants.iter().any(|i| i == "all") {
            return Invariant::ALL.to_vec();
        }
        self.invariants
            .iter()
            .filter_map(|i| Invariant::parse(i).ok())
            .collect()
    }

    /// Every capability the scenario needs.
    pub fn capabilities(&self) -> BTreeSet<Capability> {
        let mut caps = BTreeSet::new();
        for s in &self.steps {
            if let Action::Fault { fault, .. } | Action::Heal { fault } = &s.action {
                caps.insert(fault.capability());
            }
        }
        if self.cluster.hosts.len() > 1 {
            let hosts: BTreeSet<&String> = self.cluster.hosts.values().collect();
            if hosts.len() < self.cluster.hosts.len() {
                caps.insert(Capability::SharedHost);
            }
        }
        caps
    }
}

impl Action {
    /// The action's name as scenario files write it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start { .. } => "start",
            Action::RegenerateManifest => "regenerate_manifest",
            Action::CheckManifest => "check_manifest",
            Action::Bootstrap { .. } => "bootstrap",
            Action::Wait { .. } => "wait",
            Action::WaitFor { .. } => "wait_for",
            Action::Hold { .. } => "hold",
            Action::Fault { .. } => "fault",
            Action::Heal { .. } => "heal",
            Action::HealAll => "heal_all",
            Action::Chat { .. } => "chat",
            Action::Collect { .. } => "collect",
            Action::CompareFiles { .. } => "compare_files",
            Action::Gate { .. } => "gate",
        }
    }

    /// The nodes the action names.
    pub fn nodes(&self) -> Vec<NodeId> {
        match self {
            Action::Start { node } | Action::Bootstrap { node } | Action::Collect { node, .. } => {
                vec![*node]
            }
            Action::WaitFor { node, .. } | Action::Hold { node, .. } => {
                node.iter().copied().collect()
            }
            Action::Chat { from, .. } => from.iter().copied().collect(),
            Action::CompareFiles { leader, restored } => vec![*leader, *restored],
            Action::Fault { fault, .. } | Action::Heal { fault } => fault.nodes(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
name = "small"
[cluster]
nodes = ["a", "b"]

[[criterion]]
id = 1
name = "a leads"

[[step]]
action = "start"
node = "a"

[[step]]
action = "wait_for"
condition = "leader"
node = "a"
within = "30s"
criterion = 1
"#;

    #[test]
    fn parses_and_round_trips() {
        let s = Scenario::parse("small.toml", SMALL).unwrap();
        assert_eq!(s.steps.len(), 2);
        let again = Scenario::parse("again.toml", &s.to_toml()).unwrap();
        assert_eq!(s, again);
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let bad = SMALL.replace("within = \"30s\"", "within = 30s");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert_eq!(e.file, "bad.toml");
        assert_eq!(e.line, 18, "{e}");
        assert!(e.column > 1, "{e}");
    }

    #[test]
    fn unknown_node_names_the_step() {
        let bad = SMALL.replace("node = \"a\"\nwithin", "node = \"d\"\nwithin");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert!(e.message.contains("step 2 (wait_for)"), "{e}");
        assert!(
            e.message.contains("node `d` is not in the cluster (a, b)"),
            "{e}"
        );
        // At the value itself, not the step's header.
        assert_eq!((e.line, e.column), (17, 8), "{e}");
    }

    #[test]
    fn bad_duration_is_explained() {
        let bad = SMALL.replace("\"30s\"", "\"30\"");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err();
        assert!(e.message.contains("no unit"), "{e}");
    }
}
