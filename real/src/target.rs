//! The target profile: everything specific to the service a live drill exercises.
//!
//! Why this module exists: the Hetzner backend runs the runbook's phases (install, copy,
//! pre-stage the image, serve the manifest, bootstrap, stop the leader, probe, compare
//! state files) on real servers, and every one of those steps names something that
//! belongs to the service under test: a command, a path, a port, a container, a JSON
//! field of its dashboard. Keeping all of that in one TOML file (`targets/*.toml`) keeps
//! the drill logic free of OpenTrident (or lifeboat) details, so one backend drills
//! either, and a reviewer can check each command against the runbook in one place.
//!
//! A profile is plain data. Commands are shell command lines with `{name}` placeholders;
//! the names a command may use are:
//! - every key of `[paths]` and of `[vars]` (constants of the target);
//! - `port`, `manifest_port`, `healthz`, `readyz`, `dashboard` (from `[http]`);
//! - [`NODE_VARS`]: facts of the run the backend supplies for every node command;
//! - the extras a field lists in [`field_vars`] (`url` for `http_get`, `etcd_url` for
//!   `bootstrap`/`start`/`[env]`, `code` for the Telegram pattern).
//!
//! `{{` and `}}` stand for literal braces; any other brace is an error. Every placeholder
//! is checked when the file is loaded, so a typo fails before a server is rented.
//!
//! Loading errors name the file, the line and column, the key and what was expected
//! (the style of `lifeboat_model::scenario`). Unknown keys are refused.
//!
//! Values of `[paths]` and `[vars]` and the run facts are substituted unquoted into
//! shell command lines, so they are restricted to characters that need no quoting.

use anyhow::{anyhow, Context};
use lifeboat_model::history::Role;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Facts of the run that the backend supplies to every command run on a node: the
/// node's name (`a`, `b`, `c`), its public IPv4 address, and the primary's.
pub const NODE_VARS: &[&str] = &["node", "ip", "primary_ip"];

/// The placeholders `[http]` defines for every command.
pub const HTTP_VARS: &[&str] = &["port", "manifest_port", "healthz", "readyz", "dashboard"];

/// The run facts a field may use beyond [`NODE_VARS`], by the field's key path:
/// `commands.http_get` gets `url` (the full URL to fetch); `commands.bootstrap`,
/// `commands.start` and `[env]` get `etcd_url` (the lease store's client URL, for
/// targets that use one); `telegram.pattern` gets `code` (the one-time code the
/// operator sent to the bot).
pub fn field_vars(key: &str) -> &'static [&'static str] {
    match key {
        "commands.http_get" => &["url"],
        "commands.bootstrap" | "commands.start" | "env" => &["etcd_url"],
        "telegram.pattern" => &["code"],
        _ => &[],
    }
}

/// A target profile: how to install, run, fault, probe and inspect one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A short name (`opentrident`, `lifeboat`): lowercase letters, digits and `-`.
    pub name: String,
    /// What the profile drills, in one or two sentences.
    pub description: String,
    /// The servers to rent for new nodes.
    #[serde(default)]
    pub server: ServerSpec,
    /// Named absolute paths on the nodes, usable as `{name}` placeholders. `state_dir`
    /// (the directory `[state]` files are relative to) and `manifest` (the bootstrap
    /// manifest) are required.
    pub paths: BTreeMap<String, String>,
    /// Other named constants, usable as `{name}` placeholders (API base URLs, a
    /// repository name): the things an operator may edit without touching a command.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The service's HTTP surface on each node.
    pub http: HttpSpec,
    /// Where the dashboard JSON says what the drill needs to know.
    pub dashboard: DashboardSpec,
    /// Environment variables set for `bootstrap` and `start` (name → value template).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets the service needs on each node, written there by the backend.
    #[serde(default)]
    pub secrets: SecretsSpec,
    /// How the runtime (image or binary) gets onto a new node.
    pub stage: StageSpec,
    /// The shell commands of each step.
    pub commands: Commands,
    /// How to find proof of a Telegram reply on a node.
    pub telegram: TelegramSpec,
    /// The state files phase 5 compares between the leader and the restored node.
    pub state: StateSpec,
}

/// The servers new nodes run on (runbook: "Infra Budget" and phases 1 and 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// The Hetzner server type (default `cpx11`, the runbook's choice).
    #[serde(rename = "type")]
    pub server_type: String,
    /// The image (default `ubuntu-24.04`, the runbook's choice).
    pub image: String,
    /// The location (`fsn1`, `nbg1`, …); absent lets Hetzner choose.
    pub location: Option<String>,
    /// The user SSH logs in as (default `root`, as in the runbook).
    pub user: String,
    /// The SSH port (default 22).
    pub ssh_port: u16,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            server_type: "cpx11".into(),
            image: "ubuntu-24.04".into(),
            location: None,
            user: "root".into(),
            ssh_port: 22,
        }
    }
}

/// The service's HTTP surface on a node (reached from the node itself, over SSH).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The port of the health and dashboard endpoints.
    pub port: u16,
    /// The liveness path (`/healthz`).
    pub healthz: String,
    /// The readiness path (`/readyz`).
    pub readyz: String,
    /// The dashboard JSON path (`/api/dashboard-data`).
    pub dashboard: String,
    /// The port the bootstrap manifest is served on during a bootstrap.
    pub manifest_port: u16,
}

/// JSON pointers (RFC 6901) into the dashboard JSON, one per fact the drill reads. An
/// absent pointer means the service does not report that fact; a pointer the dashboard
/// lacks is an error when it is read ([`DashboardSpec::read`]), never a silent pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSpec {
    /// The node's role, in the service's words (mapped by `roles`).
    pub role: Option<String>,
    /// The service's role words and the roles they mean.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// The leader the node observes.
    pub observed_leader: Option<String>,
    /// The snapshot head the node knows.
    pub snapshot_head: Option<String>,
    /// How many times the node tried to take leadership.
    pub takeover_attempts: Option<String>,
    /// `live` when the last leader cycle succeeded.
    pub last_cycle_status: Option<String>,
    /// The fencing token the node holds.
    pub lease_token: Option<String>,
    /// Telegram 409 conflicts the node suffered.
    pub get_updates_conflicts: Option<String>,
    /// The last Telegram update the node answered.
    pub last_reply: Option<String>,
    /// The version of the node's state.
    pub state_version: Option<String>,
}

/// What one dashboard read says, by the profile's pointers. `None`: the profile has no
/// pointer for it, or the dashboard says `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DashboardReading {
    /// The role.
    pub role: Option<Role>,
    /// The role as the service wrote it.
    pub role_word: Option<String>,
    /// The observed leader, as the service writes it.
    pub observed_leader: Option<String>,
    /// The snapshot head.
    pub snapshot_head: Option<String>,
    /// Takeover attempts.
    pub takeover_attempts: Option<u64>,
    /// The last cycle's status.
    pub last_cycle_status: Option<String>,
    /// The fencing token.
    pub lease_token: Option<u64>,
    /// Telegram 409 conflicts.
    pub get_updates_conflicts: Option<u64>,
    /// The last update answered.
    pub last_reply: Option<i64>,
    /// The state version.
    pub state_version: Option<u64>,
}

/// Secrets the service needs on a node. The backend takes each named variable from the
/// operator's environment and writes `NAME='value'` lines (shell-quoted) to `env_file`
/// with mode 0600, through the SSH channel's standard input, never on a command line;
/// the commands source the file. No secret is ever part of the profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSpec {
    /// The names of the environment variables to carry over.
    #[serde(default)]
    pub names: Vec<String>,
    /// Where they go on the node (a template); required when `names` is not empty.
    pub env_file: Option<String>,
}

/// Where the runtime a new node needs comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageFrom {
    /// `source` runs on the primary; its output streams into `sink` on the new node.
    Primary,
    /// The backend streams the node binary from the operator's machine (the static
    /// `lifeboat` build the Docker backend uses) into `sink`.
    Operator,
}

/// Pre-staging the runtime on a new node (runbook phases 1 and 4: the manifest names a
/// local image tag, so it must be copied from node A).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Where the bytes come from.
    pub from: StageFrom,
    /// The command on the primary that writes the runtime to standard output (only with
    /// `from = "primary"`).
    #[serde(default, deserialize_with = "opt_script")]
    pub source: Option<Vec<String>>,
    /// The command on the new node that reads it from standard input.
    #[serde(deserialize_with = "script")]
    pub sink: Vec<String>,
}

/// One directory copied from the primary to a new node (runbook phases 1 and 4: the
/// rsync of the two repositories and of `bootstrap.json`). The backend streams
/// `tar -C <from> -c <only or .>` from the primary into `tar -C <to> -x` on the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    /// The directory on the primary (a template).
    pub from: String,
    /// The directory on the new node (a template); it exists after `prepare`.
    pub to: String,
    /// Only these entries of `from` (relative paths); empty copies all of it.
    #[serde(default)]
    pub only: Vec<String>,
}

/// The shell commands of each step. Each is one command line or a list of them; a list
/// runs in order with `sh -c` and stops at the first that fails. Where a step's output
/// is its result (`regenerate_manifest`, `logs`, `snapshot_head`, `http_get`), it is the
/// standard output of the last command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Installing what the service needs on a new node.
    #[serde(default, deserialize_with = "script")]
    pub install: Vec<String>,
    /// Creating the directories the copies and the service need.
    #[serde(default, deserialize_with = "script")]
    pub prepare: Vec<String>,
    /// What to copy from the primary.
    #[serde(default)]
    pub copy: Vec<CopySpec>,
    /// What runs on a new node once the copies are in place (dependencies of the copied
    /// code).
    #[serde(default, deserialize_with = "script")]
    pub after_copy: Vec<String>,
    /// Run on the leader: writes a fresh bootstrap manifest to the `manifest` path and
    /// prints it. Absent: the backend writes the manifest itself.
    #[serde(default, deserialize_with = "opt_script")]
    pub regenerate_manifest: Option<Vec<String>>,
    /// Starts a background HTTP server for the manifest's directory on
    /// `manifest_port` and returns once it answers.
    #[serde(deserialize_with = "script")]
    pub serve_manifest: Vec<String>,
    /// Stops that server.
    #[serde(deserialize_with = "script")]
    pub stop_manifest: Vec<String>,
    /// Restores a blank node from the manifest and starts the service.
    #[serde(deserialize_with = "script")]
    pub bootstrap: Vec<String>,
    /// Starts the service again on a node that has state (after `stop` or `kill`).
    #[serde(deserialize_with = "script")]
    pub start: Vec<String>,
    /// Stops the service gracefully.
    #[serde(deserialize_with = "script")]
    pub stop: Vec<String>,
    /// Kills the service at once (SIGKILL).
    #[serde(deserialize_with = "script")]
    pub kill: Vec<String>,
    /// Freezes the service's processes.
    #[serde(deserialize_with = "script")]
    pub pause: Vec<String>,
    /// Thaws them.
    #[serde(deserialize_with = "script")]
    pub resume: Vec<String>,
    /// Prints the service's recent logs.
    #[serde(deserialize_with = "script")]
    pub logs: Vec<String>,
    /// Prints the node's snapshot head. Absent: read it from the dashboard.
    #[serde(default, deserialize_with = "opt_script")]
    pub snapshot_head: Option<Vec<String>>,
    /// Fetches `{url}` on the node and prints the body; fails on an HTTP error status.
    #[serde(deserialize_with = "script")]
    pub http_get: Vec<String>,
}

/// How to confirm, on the new leader, that a Telegram message went through it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSpec {
    /// Text (not a regular expression) that must appear in the output of `command`
    /// once the operator sent the one-time `{code}`; it must use `{code}`.
    pub pattern: String,
    /// The command whose output is searched. Absent: `commands.logs`.
    #[serde(default, deserialize_with = "opt_script")]
    pub command: Option<Vec<String>>,
}

/// The load-bearing state files (runbook phase 5), relative to `paths.state_dir`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// Every file to hash on the leader and on the restored node.
    pub files: Vec<String>,
    /// The files whose hashes must be equal on both (a subset of `files`).
    #[serde(default)]
    pub must_match: Vec<String>,
}

/// A command line or a list of them, as a list.
fn script<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a command line (a string) or a list of command lines")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

fn opt_script<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    script(d).map(Some)
}

/// A profile loading error: the file, where in it, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError {
    /// The file (or the origin given to [`Target::parse`]).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key the error is about (`commands.bootstrap[1]`), when known.
    pub key: Option<String>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TargetError {}

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn key_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

type Spanned<'i> = toml::Spanned<toml::de::DeValue<'i>>;

/// The span of the value at `path` (or of the deepest part of it that exists).
fn span_of(root: &toml::de::DeTable<'_>, path: &[Seg]) -> Option<std::ops::Range<usize>> {
    let mut found = None;
    let mut table = Some(root);
    let mut array: Option<&[Spanned<'_>]> = None;
    for seg in path {
        let value: &Spanned<'_> = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                let (key, v) = t.iter().find(|(key, _)| key.get_ref() == k)?;
                // A table opened by a `[header]` has no useful value span: use the key's.
                found = Some(key.span());
                v
            }
            (Seg::Index(i), _, Some(a)) => a.get(*i)?,
            _ => return found,
        };
        let span = value.span();
        if span.start < span.end {
            found = Some(span);
        }
        table = value.get_ref().as_table();
        array = value.get_ref().as_array().map(|a| &a[..]);
    }
    found
}

/// The key path as the file writes it: a command given as one string rather than a list
/// is `commands.stop`, not `commands.stop[0]`.
fn as_written(root: &toml::de::DeTable<'_>, path: Vec<Seg>) -> Vec<Seg> {
    let mut out = Vec::with_capacity(path.len());
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let mut rest = path.into_iter();
    while let Some(seg) = rest.next() {
        let next = match (&seg, value) {
            (Seg::Key(k), None) => root
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(_, v)| v),
            (Seg::Key(k), Some(v)) => v
                .as_table()
                .and_then(|t| t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)),
            (Seg::Index(i), Some(v)) => match v.as_array() {
                Some(a) => a.get(*i),
                // A single string standing for a one-command list.
                None if *i == 0 && v.is_str() => continue,
                None => None,
            },
            (Seg::Index(_), None) => None,
        };
        out.push(seg);
        match next {
            Some(n) => value = Some(n.get_ref()),
            // Not in the file (a default): keep the rest as the code named it.
            None => {
                out.extend(rest);
                break;
            }
        }
    }
    out
}

/// The key path of the deepest entry whose key or value contains `offset`.
fn key_at(root: &toml::de::DeTable<'_>, offset: usize) -> Vec<Seg> {
    fn walk(value: &toml::de::DeValue<'_>, offset: usize, path: &mut Vec<Seg>) {
        if let Some(t) = value.as_table() {
            for (k, v) in t.iter() {
                if k.span().contains(&offset) || v.span().contains(&offset) {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    walk(v.get_ref(), offset, path);
                    return;
                }
            }
            // A table opened by a `[header]` has no value span around its entries: take
            // the entry whose key comes last before `offset`, if it is such a table.
            let best = t
                .iter()
                .filter(|(k, _)| k.span().start <= offset)
                .max_by_key(|(k, _)| k.span().start);
            if let Some((k, v)) = best {
                if v.get_ref().is_table() {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    walk(v.get_ref(), offset, path);
                }
            }
        } else if let Some(a) = value.as_array() {
            for (i, v) in a.iter().enumerate() {
                if v.span().contains(&offset) {
                    path.push(Seg::Index(i));
                    walk(v.get_ref(), offset, path);
                    return;
                }
            }
        }
    }
    let mut path = Vec::new();
    walk(&toml::de::DeValue::Table(root.clone()), offset, &mut path);
    path
}

/// A placeholder-or-literal piece of a template.
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a template into literal text and `{name}` placeholders.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let bytes = template.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                out.push(Piece::Text(&template[start..=i]));
                i += 2;
                start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                out.push(Piece::Text(&template[start..=i]));
                i += 2;
                start = i;
            }
            b'{' => {
                let end = template[i + 1..]
                    .find('}')
                    .map(|e| i + 1 + e)
                    .ok_or_else(|| {
                        format!(
                            "an unclosed `{{` at character {}; write `{{{{` for a literal brace",
                            i + 1
                        )
                    })?;
                let name = &template[i + 1..end];
                if !is_ident(name) {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder (names are lowercase letters, \
                         digits and `_`); write `{{{{` and `}}}}` for literal braces"
                    ));
                }
                out.push(Piece::Text(&template[start..i]));
                out.push(Piece::Var(name));
                i = end + 1;
                start = i;
            }
            b'}' => {
                return Err(format!(
                    "a lone `}}` at character {}; write `}}}}` for a literal brace",
                    i + 1
                ))
            }
            _ => i += 1,
        }
    }
    out.push(Piece::Text(&template[start..]));
    Ok(out)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `s` can go into a shell command line unquoted.
fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@=+,%".contains(c))
}

/// Whether `p` is a relative path that stays inside its base directory.
fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && shell_safe(p)
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// A problem found by validation: where (a key path) and what.
type Problem = (Vec<Seg>, String);

fn at(path: &[&str], message: impl Into<String>) -> Problem {
    (
        path.iter().map(|s| Seg::Key(s.to_string())).collect(),
        message.into(),
    )
}

fn at_index(path: &[&str], i: usize, message: impl Into<String>) -> Problem {
    let mut p = at(path, message);
    p.0.push(Seg::Index(i));
    p
}

impl Target {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> anyhow::Result<Target> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the target profile {}", path.display()))?;
        Target::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a profile; `origin` names it in errors. The error is a
    /// [`TargetError`] (downcast to read its parts).
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Target> {
        let error = |path: Vec<Seg>, span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
            anyhow!(TargetError {
                file: origin.to_string(),
                line,
                column,
                key: (!path.is_empty()).then(|| key_text(&path)),
                message,
            })
        };
        let doc = match toml::de::DeTable::parse(text) {
            Ok(d) => d,
            Err(e) => return Err(error(Vec::new(), e.span(), e.message().to_string())),
        };
        let target: Target = toml::from_str(text).map_err(|e| {
            let path = e
                .span()
                .map(|s| key_at(doc.get_ref(), s.start))
                .unwrap_or_default();
            error(path, e.span(), e.message().to_string())
        })?;
        if let Err((path, message)) = target.validate() {
            let path = as_written(doc.get_ref(), path);
            let span = span_of(doc.get_ref(), &path);
            return Err(error(path, span, message));
        }
        Ok(target)
    }

    /// The placeholders every command may use that the target defines itself: its
    /// paths, its vars and its HTTP settings, with their values.
    pub fn constants(&self) -> BTreeMap<&str, String> {
        let mut out: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in self.paths.iter().chain(&self.vars) {
            out.insert(k.as_str(), v.clone());
        }
        out.insert("port", self.http.port.to_string());
        out.insert("manifest_port", self.http.manifest_port.to_string());
        out.insert("healthz", self.http.healthz.clone());
        out.insert("readyz", self.http.readyz.clone());
        out.insert("dashboard", self.http.dashboard.clone());
        out
    }

    /// Fills a template's placeholders from `vars` (the run facts: `node`, `ip`,
    /// `primary_ip`, `code`, …) and the target's constants ([`Target::constants`]);
    /// `vars` wins where both name a value. An unknown placeholder is an error naming
    /// it.
    pub fn expand(&self, template: &str, vars: &BTreeMap<&str, String>) -> anyhow::Result<String> {
        let constants = self.constants();
        let mut out = String::with_capacity(template.len());
        for piece in pieces(template).map_err(|e| anyhow!("in `{template}`: {e}"))? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => {
                    let value =
                        vars.get(name)
                            .or_else(|| constants.get(name))
                            .ok_or_else(|| {
                                let mut known: Vec<&str> =
                                    constants.keys().chain(vars.keys()).copied().collect();
                                known.sort_unstable();
                                known.dedup();
                                anyhow!(
                            "unknown placeholder `{{{name}}}` in `{template}` (known here: {})",
                            known.join(", ")
                        )
                            })?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }

    /// [`Target::expand`] for each command of a script.
    pub fn expand_all(
        &self,
        script: &[String],
        vars: &BTreeMap<&str, String>,
    ) -> anyhow::Result<Vec<String>> {
        script.iter().map(|c| self.expand(c, vars)).collect()
    }

    /// A path of `[paths]` by name.
    pub fn path(&self, name: &str) -> anyhow::Result<&str> {
        self.paths
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("target `{}` has no path named `{name}`", self.name))
    }

    /// Every template of the profile with its key path.
    fn templates(&self) -> Vec<(Vec<Seg>, &str)> {
        let mut out: Vec<(Vec<Seg>, &str)> = Vec::new();
        let key = |parts: &[&str]| -> Vec<Seg> {
            parts.iter().map(|p| Seg::Key(p.to_string())).collect()
        };
        let c = &self.commands;
        let scripts: Vec<(&str, &Vec<String>)> = [
            ("install", Some(&c.install)),
            ("prepare", Some(&c.prepare)),
            ("after_copy", Some(&c.after_copy)),
            ("regenerate_manifest", c.regenerate_manifest.as_ref()),
            ("serve_manifest", Some(&c.serve_manifest)),
            ("stop_manifest", Some(&c.stop_manifest)),
            ("bootstrap", Some(&c.bootstrap)),
            ("start", Some(&c.start)),
            ("stop", Some(&c.stop)),
            ("kill", Some(&c.kill)),
            ("pause", Some(&c.pause)),
            ("resume", Some(&c.resume)),
            ("logs", Some(&c.logs)),
            ("snapshot_head", c.snapshot_head.as_ref()),
            ("http_get", Some(&c.http_get)),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        for (k, s) in scripts {
            for (i, cmd) in s.iter().enumerate() {
                let mut p = key(&["commands", k]);
                p.push(Seg::Index(i));
                out.push((p, cmd));
            }
        }
        for (i, cp) in c.copy.iter().enumerate() {
            for (field, v) in [("from", &cp.from), ("to", &cp.to)] {
                let mut p = key(&["commands", "copy"]);
                p.push(Seg::Index(i));
                p.push(Seg::Key(field.into()));
                out.push((p, v));
            }
        }
        if let Some(src) = &self.stage.source {
            for (i, cmd) in src.iter().enumerate() {
                let mut p = key(&["stage", "source"]);
                p.push(Seg::Index(i));
                out.push((p, cmd));
            }
        }
        for (i, cmd) in self.stage.sink.iter().enumerate() {
            let mut p = key(&["stage", "sink"]);
            p.push(Seg::Index(i));
            out.push((p, cmd));
        }
        for (k, v) in &self.env {
            out.push((key(&["env", k]), v));
        }
        if let Some(f) = &self.secrets.env_file {
            out.push((key(&["secrets", "env_file"]), f));
        }
        out.push((key(&["telegram", "pattern"]), &self.telegram.pattern));
        if let Some(cmd) = &self.telegram.command {
            for (i, c) in cmd.iter().enumerate() {
                let mut p = key(&["telegram", "command"]);
                p.push(Seg::Index(i));
                out.push((p, c));
            }
        }
        out
    }

    /// Checks what TOML alone cannot; returns the first problem with its key path.
    fn validate(&self) -> Result<(), Problem> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(at(
                &["name"],
                format!(
                    "`{}` is not a name: use lowercase letters, digits and `-`",
                    self.name
                ),
            ));
        }
        if self.description.trim().is_empty() {
            return Err(at(&["description"], "say what the profile drills"));
        }
        self.validate_server()?;
        self.validate_names()?;
        self.validate_http()?;
        self.validate_dashboard()?;
        self.validate_secrets_and_stage()?;
        self.validate_commands()?;
        self.validate_state()?;
        self.validate_templates()
    }

    fn validate_server(&self) -> Result<(), Problem> {
        let s = &self.server;
        for (k, v) in [
            ("type", &s.server_type),
            ("image", &s.image),
            ("user", &s.user),
        ] {
            if !shell_safe(v) {
                return Err(at(
                    &["server", k],
                    format!("expected a plain name, not `{v}`"),
                ));
            }
        }
        if let Some(l) = &s.location {
            if !shell_safe(l) {
                return Err(at(
                    &["server", "location"],
                    format!("`{l}` is not a location name"),
                ));
            }
        }
        if s.ssh_port == 0 {
            return Err(at(
                &["server", "ssh_port"],
                "expected a port from 1 to 65535",
            ));
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<(), Problem> {
        let reserved: BTreeSet<&str> = NODE_VARS
            .iter()
            .chain(HTTP_VARS)
            .chain(["url", "etcd_url", "code"].iter())
            .copied()
            .collect();
        for (section, map, absolute) in [("paths", &self.paths, true), ("vars", &self.vars, false)]
        {
            for (k, v) in map {
                if !is_ident(k) {
                    return Err(at(
                        &[section, k],
                        "a placeholder name: lowercase letters, digits and `_`",
                    ));
                }
                if reserved.contains(k.as_str()) {
                    return Err(at(
                        &[section, k],
                        format!("`{k}` is a placeholder the backend or [http] supplies; pick another name"),
                    ));
                }
                if !shell_safe(v) {
                    return Err(at(
                        &[section, k],
                        format!(
                            "`{v}` needs shell quoting; values are substituted unquoted, so use \
                             letters, digits and / . _ - : @ = + , % only (no placeholders)"
                        ),
                    ));
                }
                if absolute && !v.starts_with('/') {
                    return Err(at(&[section, k], format!("`{v}` is not an absolute path")));
                }
            }
        }
        if let Some(k) = self.paths.keys().find(|k| self.vars.contains_key(*k)) {
            return Err(at(&["vars", k], format!("`{k}` is already a path")));
        }
        for required in ["state_dir", "manifest"] {
            if !self.paths.contains_key(required) {
                return Err(at(&["paths"], format!("a `{required}` path is required")));
            }
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), Problem> {
        let h = &self.http;
        for (k, p) in [
            ("healthz", &h.healthz),
            ("readyz", &h.readyz),
            ("dashboard", &h.dashboard),
        ] {
            if !p.starts_with('/') || !shell_safe(p) {
                return Err(at(
                    &["http", k],
                    format!("expected a URL path such as `/{k}`, not `{p}`"),
                ));
            }
        }
        for (k, v) in [("port", h.port), ("manifest_port", h.manifest_port)] {
            if v == 0 {
                return Err(at(&["http", k], "expected a port from 1 to 65535"));
            }
        }
        if h.port == h.manifest_port {
            return Err(at(&["http", "manifest_port"], "must differ from `port`"));
        }
        Ok(())
    }

    fn validate_dashboard(&self) -> Result<(), Problem> {
        let d = &self.dashboard;
        for (k, p) in d.pointers() {
            if let Some(p) = p {
                if !valid_pointer(p) {
                    return Err(at(
                        &["dashboard", k],
                        format!(
                            "`{p}` is not a JSON pointer (RFC 6901): `/field/0/sub`, with `~0` for `~` and `~1` for `/`"
                        ),
                    ));
                }
            }
        }
        if d.role.is_some() && d.roles.is_empty() {
            return Err(at(
                &["dashboard", "roles"],
                "a `role` pointer needs a `roles` table mapping the service's words to roles",
            ));
        }
        if let Some(w) = d.roles.keys().find(|w| w.trim().is_empty()) {
            return Err(at(&["dashboard", "roles", w], "an empty role word"));
        }
        Ok(())
    }

    fn validate_secrets_and_stage(&self) -> Result<(), Problem> {
        let s = &self.secrets;
        let mut seen = BTreeSet::new();
        for (i, n) in s.names.iter().enumerate() {
            if !is_env_name(n) {
                return Err(at_index(
                    &["secrets", "names"],
                    i,
                    format!("`{n}` is not an environment variable name (A-Z, 0-9, _)"),
                ));
            }
            if !seen.insert(n) {
                return Err(at_index(&["secrets", "names"], i, format!("`{n}` twice")));
            }
        }
        if !s.names.is_empty() && s.env_file.is_none() {
            return Err(at(
                &["secrets"],
                "secrets need an `env_file` to be written to",
            ));
        }
        for k in self.env.keys() {
            if !is_env_name(k) {
                return Err(at(
                    &["env", k],
                    "not an environment variable name (A-Z, 0-9, _)",
                ));
            }
            if s.names.contains(k) {
                return Err(at(
                    &["env", k],
                    "is a secret; secrets never appear in the profile",
                ));
            }
        }
        let st = &self.stage;
        match (st.from, &st.source) {
            (StageFrom::Primary, None) => {
                return Err(at(&["stage"], "`from = \"primary\"` needs a `source` command"))
            }
            (StageFrom::Operator, Some(_)) => {
                return Err(at(
                    &["stage", "source"],
                    "`from = \"operator\"` streams the node binary; a `source` command has no place here",
                ))
            }
            _ => {}
        }
        Ok(())
    }

    fn validate_commands(&self) -> Result<(), Problem> {
        let c = &self.commands;
        let required: [(&str, &Vec<String>); 11] = [
            ("serve_manifest", &c.serve_manifest),
            ("stop_manifest", &c.stop_manifest),
            ("bootstrap", &c.bootstrap),
            ("start", &c.start),
            ("stop", &c.stop),
            ("kill", &c.kill),
            ("pause", &c.pause),
            ("resume", &c.resume),
            ("logs", &c.logs),
            ("http_get", &c.http_get),
            ("sink", &self.stage.sink),
        ];
        for (k, s) in required {
            let section = if k == "sink" { "stage" } else { "commands" };
            if s.is_empty() {
                return Err(at(&[section, k], "expected at least one command"));
            }
        }
        for (k, s) in [
            ("regenerate_manifest", c.regenerate_manifest.as_ref()),
            ("snapshot_head", c.snapshot_head.as_ref()),
        ] {
            if s.is_some_and(|s| s.is_empty()) {
                return Err(at(
                    &["commands", k],
                    "an empty list: leave the key out to let the backend do it",
                ));
            }
        }
        for (p, t) in self.templates() {
            if t.trim().is_empty() && !matches!(p.first(), Some(Seg::Key(k)) if k == "env") {
                return Err((p, "an empty command".into()));
            }
        }
        if !c.http_get.iter().any(|cmd| cmd.contains("{url}")) {
            return Err(at(
                &["commands", "http_get"],
                "must use `{url}`, the URL to fetch",
            ));
        }
        for (i, cp) in c.copy.iter().enumerate() {
            for (j, o) in cp.only.iter().enumerate() {
                if !safe_relative(o) {
                    let mut p = at_index(&["commands", "copy"], i, "");
                    p.0.push(Seg::Key("only".into()));
                    p.0.push(Seg::Index(j));
                    p.1 = format!("`{o}` is not a relative path inside `from`");
                    return Err(p);
                }
            }
        }
        if !self.telegram.pattern.contains("{code}") {
            return Err(at(
                &["telegram", "pattern"],
                "must contain `{code}`, the one-time code the operator sends",
            ));
        }
        Ok(())
    }

    fn validate_state(&self) -> Result<(), Problem> {
        let s = &self.state;
        if s.files.is_empty() {
            return Err(at(&["state", "files"], "name at least one state file"));
        }
        let mut seen = BTreeSet::new();
        for (i, f) in s.files.iter().enumerate() {
            if !safe_relative(f) {
                return Err(at_index(
                    &["state", "files"],
                    i,
                    format!("`{f}` is not a relative path inside `paths.state_dir`"),
                ));
            }
            if !seen.insert(f) {
                return Err(at_index(&["state", "files"], i, format!("`{f}` twice")));
            }
        }
        for (i, f) in s.must_match.iter().enumerate() {
            if !s.files.contains(f) {
                return Err(at_index(
                    &["state", "must_match"],
                    i,
                    format!("`{f}` is not one of `state.files`"),
                ));
            }
        }
        Ok(())
    }

    fn validate_templates(&self) -> Result<(), Problem> {
        let constants = self.constants();
        for (path, template) in self.templates() {
            let field = field_key(&path);
            let extra = field_vars(&field);
            for piece in pieces(template).map_err(|e| (path.clone(), e))? {
                let Piece::Var(name) = piece else { continue };
                if constants.contains_key(name)
                    || NODE_VARS.contains(&name)
                    || extra.contains(&name)
                {
                    continue;
                }
                let mut known: Vec<&str> = constants
                    .keys()
                    .copied()
                    .chain(NODE_VARS.iter().copied())
                    .chain(extra.iter().copied())
                    .collect();
                known.sort_unstable();
                return Err((
                    path,
                    format!(
                        "unknown placeholder `{{{name}}}`; known here: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The field a key path belongs to, for [`field_vars`]: `commands.bootstrap[0]` →
/// `commands.bootstrap`, `env.X` → `env`.
fn field_key(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        ["env", ..] => "env".into(),
        [a, b, ..] => format!("{a}.{b}"),
        [a] => (*a).into(),
        [] => String::new(),
    }
}

/// Whether `p` is a JSON pointer: empty, or `/`-separated tokens with `~` escaped.
fn valid_pointer(p: &str) -> bool {
    p.is_empty()
        || (p.starts_with('/')
            && p.split('/').skip(1).all(|tok| {
                let mut chars = tok.chars();
                while let Some(c) = chars.next() {
                    if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                        return false;
                    }
                }
                true
            }))
}

impl DashboardSpec {
    /// The pointers by key, in a fixed order.
    fn pointers(&self) -> [(&'static str, Option<&String>); 9] {
        [
            ("role", self.role.as_ref()),
            ("observed_leader", self.observed_leader.as_ref()),
            ("snapshot_head", self.snapshot_head.as_ref()),
            ("takeover_attempts", self.takeover_attempts.as_ref()),
            ("last_cycle_status", self.last_cycle_status.as_ref()),
            ("lease_token", self.lease_token.as_ref()),
            ("get_updates_conflicts", self.get_updates_conflicts.as_ref()),
            ("last_reply", self.last_reply.as_ref()),
            ("state_version", self.state_version.as_ref()),
        ]
    }

    /// The role a service's word means, if the profile maps it.
    pub fn role_of(&self, word: &str) -> Option<Role> {
        self.roles.get(word).copied()
    }

    /// Reads the dashboard JSON through the profile's pointers. A configured pointer
    /// the JSON lacks, a value of the wrong type or an unmapped role word is an error
    /// naming the pointer: a profile that does not fit the service must stop the drill,
    /// not pass it.
    pub fn read(&self, json: &serde_json::Value) -> anyhow::Result<DashboardReading> {
        use serde_json::Value;
        let get = |name: &str, p: Option<&String>| -> anyhow::Result<Option<&Value>> {
            let Some(p) = p else { return Ok(None) };
            match json.pointer(p) {
                None => Err(anyhow!(
                    "the dashboard has nothing at `{p}` (dashboard.{name} in the target profile)"
                )),
                Some(Value::Null) => Ok(None),
                Some(v) => Ok(Some(v)),
            }
        };
        let text = |name: &str, p: Option<&String>| -> anyhow::Result<Option<String>> {
            Ok(get(name, p)?.map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }))
        };
        let number = |name: &str, p: Option<&String>| -> anyhow::Result<Option<i128>> {
            get(name, p)?
                .map(|v| {
                    let n = match v {
                        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    n.ok_or_else(|| {
                        anyhow!(
                            "the dashboard's `{}` is {v}, not an integer (dashboard.{name} in the target profile)",
                            p.map(String::as_str).unwrap_or_default()
                        )
                    })
                })
                .transpose()
        };
        let unsigned = |name: &str, p: Option<&String>| -> anyhow::Result<Option<u64>> {
            number(name, p)?
                .map(|n| u64::try_from(n).map_err(|_| anyhow!("dashboard.{name}: {n} is negative")))
                .transpose()
        };
        let role_word = text("role", self.role.as_ref())?;
        let role = match &role_word {
            None => None,
            Some(w) => Some(self.role_of(w).ok_or_else(|| {
                anyhow!(
                    "the dashboard's role `{w}` is not in dashboard.roles ({})",
                    self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?),
        };
        Ok(DashboardReading {
            role,
            role_word,
            observed_leader: text("observed_leader", self.observed_leader.as_ref())?,
            snapshot_head: text("snapshot_head", self.snapshot_head.as_ref())?,
            takeover_attempts: unsigned("takeover_attempts", self.takeover_attempts.as_ref())?,
            last_cycle_status: text("last_cycle_status", self.last_cycle_status.as_ref())?,
            lease_token: unsigned("lease_token", self.lease_token.as_ref())?,
            get_updates_conflicts: unsigned(
                "get_updates_conflicts",
                self.get_updates_conflicts.as_ref(),
            )?,
            last_reply: number("last_reply", self.last_reply.as_ref())?
                .map(|n| {
                    i64::try_from(n)
                        .map_err(|_| anyhow!("dashboard.last_reply: {n} is out of range"))
                })
                .transpose()?,
            state_version: unsigned("state_version", self.state_version.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> (String, Target) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../targets")
            .join(format!("{name}.toml"));
        let t = Target::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        (std::fs::read_to_string(&path).unwrap(), t)
    }

    /// Every run fact a backend may supply, with plausible values.
    fn all_vars() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("node", "b".to_string()),
            ("ip", "203.0.113.7".to_string()),
            ("primary_ip", "203.0.113.5".to_string()),
            ("url", "http://127.0.0.1:8080/healthz".to_string()),
            ("etcd_url", "http://10.0.0.2:2379".to_string()),
            ("code", "lb-7f3a9c".to_string()),
        ])
    }

    #[test]
    fn shipped_targets_load_and_every_placeholder_expands() {
        for name in ["opentrident", "lifeboat"] {
            let (_, t) = shipped(name);
            assert_eq!(t.name, name);
            let vars = all_vars();
            for (path, template) in t.templates() {
                let out = t
                    .expand(template, &vars)
                    .unwrap_or_else(|e| panic!("{name}: {}: {e:#}", key_text(&path)));
                assert!(
                    !out.contains('{') || template.contains("{{"),
                    "{name}: {out}"
                );
            }
        }
    }

    #[test]
    fn opentrident_target_holds_the_runbook_facts() {
        let (_, t) = shipped("opentrident");
        assert_eq!(t.server, ServerSpec::default());
        assert_eq!(t.path("runtime_repo").unwrap(), "/opt/opentrident");
        assert_eq!(t.path("identity_repo").unwrap(), "/opt/OpenTrident");
        assert_eq!(t.path("state_dir").unwrap(), "/opt/opentrident-data/config");
        assert_eq!(
            t.path("manifest").unwrap(),
            "/opt/opentrident-data/config/bootstrap.json"
        );
        assert_eq!((t.http.port, t.http.manifest_port), (18889, 18890));
        let vars = all_vars();
        let stop = t.expand_all(&t.commands.stop, &vars).unwrap();
        assert_eq!(stop, ["docker stop opentrident-gateway opentrident-cli"]);
        let boot = t
            .expand_all(&t.commands.bootstrap, &vars)
            .unwrap()
            .join("\n");
        assert!(
            boot.contains(
                "node dist/index.js bootstrap --from http://127.0.0.1:18890/bootstrap.json"
            ),
            "{boot}"
        );
        assert_eq!(
            t.state.must_match,
            ["trust-telemetry-v1.json", "bootstrap.json", "snapshot-head"]
        );
        assert_eq!(t.state.files.len(), 7);
        assert_eq!(t.stage.from, StageFrom::Primary);
        assert_eq!(t.dashboard.snapshot_head.as_deref(), Some("/snapshotHead"));
    }

    #[test]
    fn lifeboat_target_reads_the_node_dashboard() {
        let (_, t) = shipped("lifeboat");
        assert_eq!(t.stage.from, StageFrom::Operator);
        // The node daemon's own dashboard, as `lifeboat node` serves it.
        let dash = lifeboat_model::node::Dashboard {
            node: lifeboat_model::ids::NodeId::parse("b").unwrap(),
            profile: "fenced".into(),
            role: Role::Leader,
            observed_leader: Some(lifeboat_model::ids::NodeId::parse("b").unwrap()),
            lease_token: Some(42),
            takeover_attempts: 1,
            last_cycle_status: "live".into(),
            snapshot_head: Some("snap-4-1a2b3c4d".into()),
            get_updates_conflicts: 0,
            last_reply: Some(17),
            state_version: 3,
            healthz: true,
            readyz: true,
        };
        let json = serde_json::to_value(&dash).unwrap();
        let r = t.dashboard.read(&json).unwrap();
        assert_eq!(r.role, Some(Role::Leader));
        assert_eq!(r.observed_leader.as_deref(), Some("b"));
        assert_eq!(r.takeover_attempts, Some(1));
        assert_eq!(r.lease_token, Some(42));
        assert_eq!(r.last_reply, Some(17));
        assert_eq!(r.snapshot_head.as_deref(), Some("snap-4-1a2b3c4d"));
        assert_eq!(r.last_cycle_status.as_deref(), Some("live"));
        let vars = all_vars();
        let kill = t.expand_all(&t.commands.kill, &vars).unwrap().join(" ");
        assert!(kill.contains("kill -KILL"), "{kill}");
    }

    #[test]
    fn dashboard_pointers_that_miss_are_errors() {
        let spec = DashboardSpec {
            role: Some("/failover/state".into()),
            roles: BTreeMap::from([("follower".to_string(), Role::Follower)]),
            takeover_attempts: Some("/failover/takeoverAttempts".into()),
            ..Default::default()
        };
        let ok = serde_json::json!({"failover": {"state": "follower", "takeoverAttempts": "2"}});
        let r = spec.read(&ok).unwrap();
        assert_eq!(
            (r.role, r.takeover_attempts),
            (Some(Role::Follower), Some(2))
        );
        let missing = serde_json::json!({"failover": {"state": "follower"}});
        let e = spec.read(&missing).unwrap_err().to_string();
        assert!(e.contains("/failover/takeoverAttempts"), "{e}");
        let unmapped = serde_json::json!({"failover": {"state": "primary", "takeoverAttempts": 0}});
        let e = spec.read(&unmapped).unwrap_err().to_string();
        assert!(e.contains("`primary`") && e.contains("follower"), "{e}");
        let wrong =
            serde_json::json!({"failover": {"state": "follower", "takeoverAttempts": true}});
        assert!(spec.read(&wrong).is_err());
    }

    #[test]
    fn expand_fills_run_facts_and_refuses_unknown_names() {
        let (_, t) = shipped("lifeboat");
        let mut vars = BTreeMap::new();
        vars.insert("node", "c".to_string());
        assert_eq!(
            t.expand("id={node} port={port}", &vars).unwrap(),
            "id=c port=8080"
        );
        assert_eq!(
            t.expand("awk '{{print $1}}'", &vars).unwrap(),
            "awk '{print $1}'"
        );
        let e = t.expand("x {nod}", &vars).unwrap_err().to_string();
        assert!(e.contains("unknown placeholder `{nod}`"), "{e}");
        assert!(e.contains("node"), "{e}");
        let e = t.expand("echo ${HOME}", &vars).unwrap_err().to_string();
        assert!(e.contains("`{HOME}` is not a placeholder"), "{e}");
        assert!(t.expand("a } b", &vars).is_err());
        assert!(t.expand("a { b", &vars).is_err());
    }

    /// A small valid profile the malformed cases start from.
    const MINIMAL: &str = r#"name = "mini"
description = "a test target"

[paths]
state_dir = "/srv/state"
manifest = "/srv/state/bootstrap.json"

[http]
port = 8080
healthz = "/healthz"
readyz = "/readyz"
dashboard = "/api/dashboard-data"
manifest_port = 18890

[dashboard]
role = "/role"
roles = { leader = "leader", follower = "follower" }

[stage]
from = "primary"
source = "cat /srv/runtime.tar"
sink = "tar -C /srv -x"

[commands]
serve_manifest = "python3 -m http.server {manifest_port} --bind 127.0.0.1 --directory {state_dir} &"
stop_manifest = "true"
bootstrap = ["cd /srv", "./svc bootstrap --node {node}"]
start = "./svc start"
stop = "./svc stop"
kill = "./svc kill"
pause = "./svc pause"
resume = "./svc resume"
logs = "./svc logs"
http_get = "curl -sf {url}"

[telegram]
pattern = "reply to {code}"

[state]
files = ["a.json", "b/c.json"]
must_match = ["a.json"]
"#;

    #[test]
    fn minimal_profile_loads_with_server_defaults() {
        let t = Target::parse(MINIMAL, "mini.toml").unwrap();
        assert_eq!(t.server.server_type, "cpx11");
        assert_eq!(t.server.image, "ubuntu-24.04");
        assert_eq!(t.server.user, "root");
        assert_eq!(t.server.ssh_port, 22);
        assert_eq!(t.commands.bootstrap.len(), 2);
        assert!(t.commands.install.is_empty());
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in the text"))
            + 1
    }

    #[test]
    fn malformed_profiles_name_the_line_and_the_key() {
        // (what, edit of MINIMAL, the line's marker in the edited text, the key, words the
        // message must hold)
        type Edit = fn(&str) -> String;
        type Case = (
            &'static str,
            Edit,
            &'static str,
            Option<&'static str>,
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (
                "bad TOML",
                |s| s.replace("port = 8080", "port = = 8080"),
                "port = = 8080",
                None,
                &[],
            ),
            (
                "unknown key",
                |s| {
                    s.replace(
                        "healthz = \"/healthz\"",
                        "healthz = \"/healthz\"\nhealth = \"/h\"",
                    )
                },
                "health = \"/h\"",
                Some("http.health"),
                &["unknown field `health`"],
            ),
            (
                "unknown top-level section",
                |s| format!("{s}\n[extras]\nx = 1\n"),
                "[extras]",
                Some("extras"),
                &["unknown field `extras`"],
            ),
            (
                "unknown placeholder",
                |s| s.replace("--node {node}", "--node {nod}"),
                "--node {nod}",
                Some("commands.bootstrap[1]"),
                &["unknown placeholder `{nod}`", "node", "state_dir"],
            ),
            (
                "placeholder outside its field",
                |s| s.replace("stop = \"./svc stop\"", "stop = \"./svc stop {code}\""),
                "./svc stop {code}",
                Some("commands.stop"),
                &["unknown placeholder `{code}`"],
            ),
            (
                "wrong type",
                |s| s.replace("port = 8080", "port = \"8080\""),
                "port = \"8080\"",
                Some("http.port"),
                &["invalid type", "u16"],
            ),
            (
                "wrong type for a command",
                |s| s.replace("start = \"./svc start\"", "start = 7"),
                "start = 7",
                Some("commands.start"),
                &["a command line"],
            ),
            (
                "unknown role",
                |s| s.replace("follower = \"follower\"", "follower = \"deputy\""),
                "deputy",
                Some("dashboard.roles.follower"),
                &["unknown variant `deputy`"],
            ),
            (
                "unknown role in a [header] table",
                |s| {
                    s.replace(
                        "roles = { leader = \"leader\", follower = \"follower\" }\n",
                        "\n[dashboard.roles]\nleader = \"leader\"\nfollower = \"deputy\"\n",
                    )
                },
                "follower = \"deputy\"",
                Some("dashboard.roles.follower"),
                &["unknown variant `deputy`"],
            ),
            (
                "unknown key in a dotted [header] table",
                |s| s.replace("[stage]\n", "[server]\nkind = \"x\"\n\n[stage]\n"),
                "kind = \"x\"",
                Some("server.kind"),
                &["unknown field `kind`"],
            ),
            (
                "relative path",
                |s| s.replace("state_dir = \"/srv/state\"", "state_dir = \"srv/state\""),
                "state_dir = \"srv/state\"",
                Some("paths.state_dir"),
                &["not an absolute path"],
            ),
            (
                "missing required path",
                |s| s.replace("manifest = \"/srv/state/bootstrap.json\"\n", ""),
                "[paths]",
                Some("paths"),
                &["`manifest` path is required"],
            ),
            (
                "state file outside the state dir",
                |s| s.replace("\"b/c.json\"", "\"../c.json\""),
                "../c.json",
                Some("state.files[1]"),
                &["not a relative path"],
            ),
            (
                "must_match not among files",
                |s| s.replace("must_match = [\"a.json\"]", "must_match = [\"z.json\"]"),
                "must_match",
                Some("state.must_match[0]"),
                &["not one of `state.files`"],
            ),
            (
                "pattern without the code",
                |s| s.replace("reply to {code}", "reply"),
                "pattern = \"reply\"",
                Some("telegram.pattern"),
                &["{code}"],
            ),
            (
                "lone brace",
                |s| s.replace("./svc logs", "./svc logs }"),
                "./svc logs }",
                Some("commands.logs"),
                &["lone `}`"],
            ),
            (
                "operator stage with a source",
                |s| s.replace("from = \"primary\"", "from = \"operator\""),
                "source = ",
                Some("stage.source"),
                &["streams the node binary"],
            ),
            (
                "path shadowing a run fact",
                |s| s.replace("[paths]\n", "[paths]\nnode = \"/srv/node\"\n"),
                "node = \"/srv/node\"",
                Some("paths.node"),
                &["backend or [http] supplies"],
            ),
            (
                "a path value that needs quoting",
                |s| {
                    s.replace(
                        "state_dir = \"/srv/state\"",
                        "state_dir = \"/srv/my state\"",
                    )
                },
                "/srv/my state",
                Some("paths.state_dir"),
                &["shell quoting"],
            ),
            (
                "secrets without a file",
                |s| format!("{s}\n[secrets]\nnames = [\"TOKEN\"]\n"),
                "[secrets]",
                Some("secrets"),
                &["env_file"],
            ),
        ];
        for (what, edit, marker, key, words) in cases {
            let text = edit(MINIMAL);
            assert_ne!(text, MINIMAL, "{what}: the edit changed nothing");
            let err = Target::parse(&text, "case.toml").expect_err(what);
            let e = err
                .downcast_ref::<TargetError>()
                .unwrap_or_else(|| panic!("{what}: not a TargetError: {err:#}"));
            assert_eq!(e.file, "case.toml", "{what}");
            assert_eq!(e.line, line_of(&text, marker), "{what}: {e}");
            assert!(e.column >= 1, "{what}: {e}");
            assert_eq!(e.key.as_deref(), *key, "{what}: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("case.toml:{}:", e.line)),
                "{what}: {shown}"
            );
            if let Some(k) = key {
                assert!(shown.contains(&format!("`{k}`")), "{what}: {shown}");
            }
            for w in *words {
                assert!(shown.contains(w), "{what}: `{w}` not in: {shown}");
            }
        }
    }

    #[test]
    fn load_names_a_missing_file() {
        let e = Target::load(Path::new("/nonexistent/t.toml")).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/t.toml"), "{e:#}");
    }
}
