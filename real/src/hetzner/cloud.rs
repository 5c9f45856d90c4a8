//! Renting and returning the drill's servers on Hetzner Cloud.
//!
//! Why this module exists: the live drill spends the user's money, so provisioning is
//! kept to a few plain functions over [`HetznerClient`] that the backend calls in order
//! and that tests check request by request against [`crate::doubles::hetzner`]:
//!
//! 1. [`plan_servers`]: what would be created (names, type, image, location, labels),
//!    from the target profile, touching nothing;
//! 2. [`quote`]: the plan's prices, read from `GET /v1/server_types` (never hard-coded),
//!    printed ([`Quote`]'s `Display`) before anything is paid for;
//! 3. [`generate_host_key`]: a fresh ed25519 host key per server, handed to the server in
//!    its cloud-init user data, so that SSH can check the host key strictly from the
//!    first connection (no trust-on-first-use);
//! 4. [`create`] and [`wait_running`];
//! 5. [`delete_run`] at teardown and [`delete_all`] for `lifeboat cleanup --backend real`.
//!
//! Every server carries `lifeboat=1`, `lifeboat.run=<run>` and `lifeboat.node=<node>`
//! (the Docker backend's labels, plus the node), and deletion only ever touches servers
//! that carry `lifeboat=1` (and the run's label for a run): a server of the same project
//! without them is never deleted, whatever a label selector answered.
//!
//! Secrets: the API token stays inside the client; the user data (it holds the host's
//! private key) lives in [`UserData`], whose `Debug` and `Display` print a placeholder.

use crate::clients::hetzner::{LocationPrice, NewServer, ServerInfo};
use crate::clients::HetznerClient;
use crate::target::Target;
use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use crate::docker::images::{LABEL, RUN_LABEL};

/// The label naming the scenario node a server runs.
pub const NODE_LABEL: &str = "lifeboat.node";

/// The label a server kept as the new primary carries instead of `lifeboat=1`: the run
/// that promoted it. No listing of lifeboat's servers selects it, so neither the run's
/// teardown nor `lifeboat cleanup --backend real` can delete it.
pub const KEPT_LABEL: &str = "lifeboat.kept-by-run";

/// What [`UserData`] shows instead of itself.
pub const USER_DATA_REDACTED: &str = "<cloud-config with the server's host key, redacted>";

/// One server the drill would create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerPlan {
    /// The scenario node it runs (`b`, `c`, …).
    pub node: String,
    /// The server's name: `lifeboat-<run>-<node>`.
    pub name: String,
    /// The server type (`cpx11`).
    pub server_type: String,
    /// The image (`ubuntu-24.04`).
    pub image: String,
    /// The location, or `None` to let Hetzner choose.
    pub location: Option<String>,
    /// `lifeboat=1`, `lifeboat.run=<run>`, `lifeboat.node=<node>`.
    pub labels: BTreeMap<String, String>,
}

/// The name of a run's server for a node.
pub fn server_name(run_id: &str, node: &str) -> String {
    format!("lifeboat-{run_id}-{node}")
}

/// Whether `v` is a valid label value (Hetzner: at most 63 characters of `a-z A-Z 0-9
/// . _ -`, starting and ending alphanumeric; empty is allowed).
pub fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Whether `name` is a valid server name (a hostname as RFC 1123 has it).
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The servers a run needs: one per node in `nodes`, with the target's server type,
/// image and location. Checks the run id and node names against Hetzner's rules for
/// labels and server names, so a bad name fails before any call.
pub fn plan_servers(
    run_id: &str,
    nodes: &[String],
    target: &Target,
) -> anyhow::Result<Vec<ServerPlan>> {
    if !valid_label_value(run_id) || run_id.is_empty() {
        bail!(
            "run id `{run_id}` cannot be a Hetzner label value (1-63 of a-z A-Z 0-9 . _ -, \
             alphanumeric at both ends)"
        );
    }
    let mut seen = BTreeSet::new();
    nodes
        .iter()
        .map(|node| {
            if node.is_empty() || !valid_label_value(node) {
                bail!("node `{node}` cannot be a Hetzner label value");
            }
            if !seen.insert(node) {
                bail!("node `{node}` is named twice");
            }
            let name = server_name(run_id, node);
            if !valid_hostname(&name) {
                bail!("`{name}` is not a valid server name (a hostname, RFC 1123)");
            }
            Ok(ServerPlan {
                node: node.clone(),
                name,
                server_type: target.server.server_type.clone(),
                image: target.server.image.clone(),
                location: target.server.location.clone(),
                labels: BTreeMap::from([
                    (LABEL.to_string(), "1".to_string()),
                    (RUN_LABEL.to_string(), run_id.to_string()),
                    (NODE_LABEL.to_string(), node.clone()),
                ]),
            })
        })
        .collect()
}

impl ServerPlan {
    /// The create call as a dry run prints it: method, path and body, with the user
    /// data replaced by [`USER_DATA_REDACTED`].
    pub fn describe_create(&self, ssh_key: &str) -> String {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "POST /v1/servers name={} server_type={} image={} location={} labels={{{labels}}} \
             ssh_keys=[{ssh_key}] start_after_create=true user_data: {USER_DATA_REDACTED}",
            self.name,
            self.server_type,
            self.image,
            self.location.as_deref().unwrap_or("(Hetzner's choice)"),
        )
    }
}

// ------------------------------------------------------------------------------- prices

/// One priced server of a [`Quote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuoteLine {
    /// The server.
    pub plan: ServerPlan,
    /// The location the price is for; `None` when the plan leaves the location to
    /// Hetzner, and the price is then the highest of the type's locations.
    pub priced_in: Option<String>,
    /// Gross price per hour in EUR, as the API writes it.
    pub hourly_gross: String,
    /// The most one month costs (gross, EUR), as the API writes it.
    pub monthly_gross: String,
}

/// What a plan costs, from the API's price list, shown before anything is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// One line per server.
    pub lines: Vec<QuoteLine>,
    /// The sum of the hourly prices (EUR, 16 decimals).
    pub total_hourly: String,
    /// The sum of the monthly caps (EUR, 16 decimals).
    pub total_monthly: String,
}

/// Decimal places of the amounts this module adds up (the API writes 16).
const SCALE: u32 = 16;

/// Parses a non-negative decimal string into units of 10^-16.
fn parse_amount(s: &str) -> anyhow::Result<u128> {
    let bad = || anyhow!("`{s}` is not a price (a decimal number)");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > SCALE as usize
    {
        return Err(bad());
    }
    let w: u128 = whole.parse().map_err(|_| bad())?;
    let f: u128 = format!("{frac:0<width$}", width = SCALE as usize)
        .parse()
        .map_err(|_| bad())?;
    w.checked_mul(10u128.pow(SCALE))
        .and_then(|w| w.checked_add(f))
        .ok_or_else(bad)
}

/// Formats units of 10^-16 with all 16 decimals, as the API does.
fn format_amount(units: u128) -> String {
    let one = 10u128.pow(SCALE);
    format!("{}.{:016}", units / one, units % one)
}

/// Formats units of 10^-16 with `places` decimals, rounded up: a price shown before
/// paying must never understate.
fn show_amount(units: u128, places: u32) -> String {
    let step = 10u128.pow(SCALE - places);
    let up = units.div_ceil(step);
    let one = 10u128.pow(places);
    format!("{}.{:0width$}", up / one, up % one, width = places as usize)
}

/// Prices the plan from `GET /v1/server_types` (one call per server type).
pub async fn quote(client: &HetznerClient, plans: &[ServerPlan]) -> anyhow::Result<Quote> {
    let mut prices: BTreeMap<&str, Vec<LocationPrice>> = BTreeMap::new();
    for p in plans {
        if !prices.contains_key(p.server_type.as_str()) {
            let list = client
                .server_type_prices(&p.server_type)
                .await
                .with_context(|| format!("pricing server type `{}`", p.server_type))?;
            prices.insert(&p.server_type, list);
        }
    }
    let (mut hourly, mut monthly) = (0u128, 0u128);
    let mut lines = Vec::with_capacity(plans.len());
    for p in plans {
        let list = &prices[p.server_type.as_str()];
        let chosen = match &p.location {
            Some(l) => list.iter().find(|x| &x.location == l).ok_or_else(|| {
                anyhow!(
                    "server type `{}` has no price in location `{l}` (it is offered in: {})",
                    p.server_type,
                    list.iter()
                        .map(|x| x.location.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            // Hetzner picks the location; quote the dearest one it could pick.
            None => {
                let mut best: Option<(&LocationPrice, u128)> = None;
                for x in list {
                    let h = parse_amount(&x.hourly_gross)?;
                    if best.is_none_or(|(_, b)| h > b) {
                        best = Some((x, h));
                    }
                }
                best.map(|(x, _)| x).ok_or_else(|| {
                    anyhow!("server type `{}` has no prices at all", p.server_type)
                })?
            }
        };
        let h = parse_amount(&chosen.hourly_gross)
            .with_context(|| format!("the hourly price of `{}`", p.server_type))?;
        let m = parse_amount(&chosen.monthly_gross)
            .with_context(|| format!("the monthly price of `{}`", p.server_type))?;
        hourly += h;
        monthly += m;
        lines.push(QuoteLine {
            plan: p.clone(),
            priced_in: p.location.as_ref().map(|_| chosen.location.clone()),
            hourly_gross: chosen.hourly_gross.clone(),
            monthly_gross: chosen.monthly_gross.clone(),
        });
    }
    Ok(Quote {
        lines,
        total_hourly: format_amount(hourly),
        total_monthly: format_amount(monthly),
    })
}

impl fmt::Display for Quote {
    /// The table the operator sees before paying. Each amount is rounded up (to 1/100
    /// cent an hour, to a cent a month) and the totals add the rounded amounts, so the
    /// figures add up on screen and never understate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.lines.len();
        writeln!(
            f,
            "will create {n} server{} on Hetzner Cloud (gross prices from the API's price list, \
             rounded up):",
            if n == 1 { "" } else { "s" }
        )?;
        // (hourly in 1/10000 €, monthly in 1/100 €), rounded up.
        let rounded = |l: &QuoteLine| -> Result<(u128, u128), fmt::Error> {
            let h = parse_amount(&l.hourly_gross).map_err(|_| fmt::Error)?;
            let m = parse_amount(&l.monthly_gross).map_err(|_| fmt::Error)?;
            Ok((
                h.div_ceil(10u128.pow(SCALE - 4)),
                m.div_ceil(10u128.pow(SCALE - 2)),
            ))
        };
        let show =
            |units: u128, places: u32| show_amount(units * 10u128.pow(SCALE - places), places);
        let width = self
            .lines
            .iter()
            .map(|l| l.plan.name.len())
            .max()
            .unwrap_or(0);
        let (mut hours, mut months) = (0u128, 0u128);
        let mut all_same = true;
        for l in &self.lines {
            let (h, m) = rounded(l)?;
            hours += h;
            months += m;
            all_same &= self.lines.first().map(|x| &x.hourly_gross) == Some(&l.hourly_gross);
            let (loc, upto) = match &l.priced_in {
                Some(loc) => (loc.clone(), ""),
                None => ("location: Hetzner's choice".to_string(), "up to "),
            };
            writeln!(
                f,
                "  {:width$}  {}  {}  {loc}  {upto}€{}/h (at most €{}/month)",
                l.plan.name,
                l.plan.server_type,
                l.plan.image,
                show(h, 4),
                show(m, 2),
            )?;
        }
        let each = match self.lines.first() {
            Some(first) if n > 1 && all_same => {
                format!(" ({n} × €{}/h)", show(rounded(first)?.0, 4))
            }
            _ => String::new(),
        };
        write!(
            f,
            "total: €{}/h{each} while they exist, at most €{} a month",
            show(hours, 4),
            show(months, 2),
        )
    }
}

// ---------------------------------------------------------------------------- host keys

/// Cloud-init user data that carries a server's host key: a secret. `Debug` and
/// `Display` print [`USER_DATA_REDACTED`]; only [`UserData::expose_secret`] gives the
/// text, for the create call.
#[derive(Clone, PartialEq, Eq)]
pub struct UserData(String);

impl UserData {
    /// The cloud-config text. Send it to the API; never print or log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(USER_DATA_REDACTED)
    }
}

impl fmt::Display for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(USER_DATA_REDACTED)
    }
}

/// An ed25519 host key pair made for one new server. The public half goes into
/// `known_hosts` once the server's address is known; the private half reaches the server
/// only inside its [`UserData`].
#[derive(Clone)]
pub struct HostKey {
    public: String,
    private: String,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

/// Makes a host key pair with `ssh-keygen -t ed25519` (the OpenSSH client the SSH steps
/// need anyway) in a private temporary directory that is removed at once. `comment`
/// names the key (`lifeboat-<run>-<node>`), so no local user or host name leaks into it.
pub fn generate_host_key(comment: &str) -> anyhow::Result<HostKey> {
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-hostkey-")
        .tempdir()
        .context("creating a private directory for a new host key")?;
    let path = dir.path().join("ssh_host_ed25519_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .context(
            "running ssh-keygen (install the OpenSSH client: apt-get install openssh-client)",
        )?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let private = std::fs::read_to_string(&path).context("reading the new host key")?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .context("reading the new host key's public half")?;
    let public = public.trim().to_string();
    if !public.starts_with("ssh-ed25519 ") || !private.contains("PRIVATE KEY") {
        bail!("ssh-keygen wrote something other than an ed25519 key pair");
    }
    Ok(HostKey { public, private })
}

impl HostKey {
    /// The public key line (`ssh-ed25519 AAAA… comment`).
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The private key (OpenSSH PEM). A secret: register it with the run's redactor,
    /// never print it.
    pub fn expose_private_key(&self) -> &str {
        &self.private
    }

    /// The `known_hosts` line for the server at `ip` and `port` (`[ip]:port` when the
    /// port is not 22, as OpenSSH writes it).
    pub fn known_hosts_line(&self, ip: IpAddr, port: u16) -> String {
        let mut fields = self.public.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let blob = fields.next().unwrap_or_default();
        let host = if port == 22 {
            ip.to_string()
        } else {
            format!("[{ip}]:{port}")
        };
        format!("{host} {kind} {blob}")
    }

    /// Cloud-init user data that installs this key as the server's only host key:
    /// `ssh_deletekeys` removes the image's keys, `ssh_genkeytypes: []` keeps cloud-init
    /// from making others, and `ssh_keys` installs this pair before sshd starts.
    pub fn user_data(&self) -> UserData {
        let mut text = String::from("#cloud-config\nssh_deletekeys: true\nssh_genkeytypes: []\n");
        text.push_str("ssh_keys:\n  ed25519_private: |\n");
        for line in self.private.lines() {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!("  ed25519_public: {}\n", self.public));
        UserData(text)
    }
}

// ------------------------------------------------------------------- create and delete

/// Finds the key the servers should trust for login: makes sure the project holds
/// `public_key` (under `name` unless it is already there under another name) and
/// returns the key's name, to pass to [`create`]. A name rather than the id: the create
/// call's `ssh_keys` takes ids or names, the `hcloud` crate sends them as strings, and
/// the API documents ids as integers; a name is never ambiguous.
pub async fn ensure_ssh_key(
    client: &HetznerClient,
    name: &str,
    public_key: &str,
) -> anyhow::Result<String> {
    let id = client
        .ensure_ssh_key(name, public_key)
        .await
        .context("registering the SSH key with Hetzner Cloud")?;
    client
        .ssh_key_name(id)
        .await
        .context("reading back the SSH key")?
        .ok_or_else(|| anyhow!("the SSH key {id} vanished right after it was registered"))
}

/// Creates one planned server, started, reachable with the SSH key `ssh_key` (its name
/// in the project), with `user_data` for cloud-init. The answer says `initializing`;
/// see [`wait_running`].
pub async fn create(
    client: &HetznerClient,
    plan: &ServerPlan,
    ssh_key: &str,
    user_data: &UserData,
) -> anyhow::Result<ServerInfo> {
    let keys = [ssh_key.to_string()];
    let server = client
        .create_server_with(&NewServer {
            name: &plan.name,
            server_type: &plan.server_type,
            image: &plan.image,
            location: plan.location.as_deref(),
            ssh_keys: &keys,
            labels: &plan.labels,
            user_data: Some(user_data.expose_secret()),
        })
        .await
        .with_context(|| format!("node {}: creating server {}", plan.node, plan.name))?;
    Ok(server)
}

/// Polls the server until it is `running` with a public IPv4 address, every `poll`, for
/// at most `timeout`.
pub async fn wait_running(
    client: &HetznerClient,
    id: i64,
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<ServerInfo> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client
            .get_server(id)
            .await
            .with_context(|| format!("reading server {id}"))?
        {
            None => bail!("server {id} no longer exists (deleted while it was starting?)"),
            Some(s) if s.status == "running" && s.ip.is_some() => return Ok(s),
            Some(s) => format!("{} ({})", s.status, s.name),
        };
        if Instant::now() + poll > deadline {
            bail!(
                "server {id} was not running with a public IPv4 address within {timeout:?}; \
                 last seen: {last}"
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// What a deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The servers deleted (or found already gone).
    pub deleted: Vec<ServerInfo>,
    /// The servers whose deletion failed, with why.
    pub failed: Vec<(ServerInfo, String)>,
}

impl Deleted {
    /// Whether every server found was deleted.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Every server of one run (`lifeboat=1` and `lifeboat.run=<run>`).
pub async fn list_run(client: &HetznerClient, run_id: &str) -> anyhow::Result<Vec<ServerInfo>> {
    let selector = format!("{LABEL}=1,{RUN_LABEL}={run_id}");
    let found = client
        .list_servers_by_label(&selector)
        .await
        .with_context(|| format!("listing the servers of run {run_id}"))?;
    Ok(found
        .into_iter()
        .filter(|s| ours(s, Some(run_id)))
        .collect())
}

/// Takes a server out of lifeboat's hands: it keeps its node label, loses `lifeboat=1`
/// and the run label, and carries [`KEPT_LABEL`] naming the run. Its other labels stay.
pub async fn mark_kept(client: &HetznerClient, server: &ServerInfo) -> anyhow::Result<()> {
    let mut labels = server.labels.clone();
    let run = labels.remove(RUN_LABEL).unwrap_or_default();
    labels.remove(LABEL);
    labels.insert(KEPT_LABEL.to_string(), run);
    let after = client
        .set_server_labels(server.id, &labels)
        .await
        .with_context(|| format!("relabelling server {} as kept", server.id))?;
    if ours(&after, None) {
        bail!(
            "server {} still carries {LABEL}=1 after relabelling",
            server.id
        );
    }
    Ok(())
}

/// Every server lifeboat created, of any run (`lifeboat=1`).
pub async fn list_all(client: &HetznerClient) -> anyhow::Result<Vec<ServerInfo>> {
    let found = client
        .list_servers_by_label(&format!("{LABEL}=1"))
        .await
        .context("listing lifeboat's servers")?;
    Ok(found.into_iter().filter(|s| ours(s, None)).collect())
}

/// Whether a listed server really carries lifeboat's labels (and the run's): the filter
/// does not trust the selector alone with a delete.
fn ours(s: &ServerInfo, run_id: Option<&str>) -> bool {
    s.labels.get(LABEL).map(String::as_str) == Some("1")
        && run_id.is_none_or(|r| s.labels.get(RUN_LABEL).map(String::as_str) == Some(r))
}

/// Deletes these servers, one by one; a failure does not stop the others. A server
/// without `lifeboat=1` is refused (listed as failed), whoever passed it in.
pub async fn delete_servers(client: &HetznerClient, servers: Vec<ServerInfo>) -> Deleted {
    let mut out = Deleted::default();
    for s in servers {
        if !ours(&s, None) {
            out.failed.push((
                s,
                format!("not deleted: it does not carry the label {LABEL}=1"),
            ));
            continue;
        }
        match client.delete_server(s.id).await {
            Ok(()) => out.deleted.push(s),
            // Already gone: what a teardown wants.
            Err(e) if e.status() == Some(404) => out.deleted.push(s),
            Err(e) => out.failed.push((s, e.to_string())),
        }
    }
    out
}

/// Deletes every server of one run (its teardown). A failure to delete one server does
/// not stop the others; it is listed in [`Deleted::failed`].
pub async fn delete_run(client: &HetznerClient, run_id: &str) -> anyhow::Result<Deleted> {
    delete_run_except(client, run_id, None, false).await
}

/// Deletes every server of one run but `keep`. With `settle` (a creation request may have
/// been cut off after the API took it), the listing is repeated a second apart until it
/// comes back empty, at most three times, since such a server may show only after the
/// first listing. A failure to delete one server does not stop the others.
pub async fn delete_run_except(
    client: &HetznerClient,
    run_id: &str,
    keep: Option<i64>,
    settle: bool,
) -> anyhow::Result<Deleted> {
    let mut all = Deleted::default();
    for round in 0..3 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let doomed: Vec<ServerInfo> = list_run(client, run_id)
            .await?
            .into_iter()
            .filter(|s| Some(s.id) != keep)
            .collect();
        if doomed.is_empty() && (round > 0 || !settle) {
            break;
        }
        let d = delete_servers(client, doomed).await;
        all.deleted.extend(d.deleted);
        all.failed.extend(d.failed);
        if !all.failed.is_empty() || !settle {
            break;
        }
    }
    Ok(all)
}

/// Deletes every server lifeboat created, of every run (`lifeboat cleanup --backend
/// real`).
pub async fn delete_all(client: &HetznerClient) -> anyhow::Result<Deleted> {
    let servers = list_all(client).await?;
    Ok(delete_servers(client, servers).await)
}

/// Waits until none of these servers exists any more (the API deletes in the
/// background), polling every `poll` for at most `timeout`.
pub async fn wait_gone(
    client: &HetznerClient,
    ids: &[i64],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<i64> = ids.to_vec();
    loop {
        let mut still = Vec::new();
        for id in left {
            if client
                .get_server(id)
                .await
                .with_context(|| format!("reading server {id}"))?
                .is_some()
            {
                still.push(id);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() + poll > deadline {
            bail!("servers {still:?} still exist {timeout:?} after their deletion");
        }
        left = still;
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_add_exactly_and_show_rounded_up() {
        let a = parse_amount("0.0083300000000000").unwrap();
        let b = parse_amount("0.00833").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_amount(a * 3), "0.0249900000000000");
        assert_eq!(show_amount(a, 4), "0.0084");
        assert_eq!(show_amount(parse_amount("5.1765").unwrap(), 2), "5.18");
        assert_eq!(show_amount(parse_amount("4.0000").unwrap(), 2), "4.00");
        for bad in ["", "-1", "1.2.3", "abc", "0.12345678901234567"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values_follow_hetzner_rules() {
        assert!(valid_label_value("1"));
        assert!(valid_label_value("1a2b3c4d"));
        assert!(valid_label_value("a.b_c-d"));
        assert!(!valid_label_value("-a"));
        assert!(!valid_label_value("a/b"));
        assert!(!valid_label_value(&"x".repeat(64)));
    }

    #[test]
    fn user_data_never_shows_itself() {
        let key = HostKey {
            public: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample lifeboat-r-b".into(),
            private: "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcy1oZXJl\n-----END OPENSSH PRIVATE KEY-----\n".into(),
        };
        let data = key.user_data();
        assert_eq!(format!("{data:?}"), USER_DATA_REDACTED);
        assert_eq!(data.to_string(), USER_DATA_REDACTED);
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        let text = data.expose_secret();
        assert!(text.starts_with("#cloud-config\n"), "{text}");
        assert!(
            text.contains("    c2VjcmV0LWtleS1ieXRlcy1oZXJl\n"),
            "{text}"
        );
        assert!(text.contains("ssh_genkeytypes: []"));
        assert!(text.contains("ssh_deletekeys: true"));
        assert!(text.contains("  ed25519_public: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"));
        assert_eq!(
            key.known_hosts_line("203.0.113.9".parse().unwrap(), 22),
            "203.0.113.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"
        );
        assert_eq!(
            key.known_hosts_line("127.0.0.1".parse().unwrap(), 2222),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"
        );
    }
}
