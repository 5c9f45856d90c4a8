//! `lifeboat snapshot` and `lifeboat manifest`: make signing keys, create and verify snapshot
//! bundles (lifeboat's signed chain, and OpenTrident's v1 format for comparison), and make
//! and check bootstrap manifests.
//!
//! A lifeboat bundle on disk:
//!
//! ```text
//! BUNDLE/manifest.json   the head's signed manifest
//! BUNDLE/chain.json      every signed manifest from version 1 to the head, oldest first
//! BUNDLE/files/<path>    the head's files, raw bytes
//! ```
//!
//! An OpenTrident v1 bundle: `BUNDLE/manifest.json` and one gzip file `BUNDLE/<key>.gz` per
//! entry of its `files` map.
//!
//! Exit codes: 0 ok, 1 refused (or weaknesses found), 2 bad input.
//!
//! Bundles are read as hostile input (`crate::input`): every file inside one is read
//! without following a symlink, with a size limit, and gzip members inflate only up to a
//! limit; text from a manifest is printed with its control characters escaped.

use crate::input::{self, escape_control, MAX_BUNDLE_BYTES, MAX_BUNDLE_FILE_BYTES, MAX_TEXT_BYTES};
use anyhow::{anyhow, bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::snapshot::{
    self, Bundle, SignedManifest, SnapshotKey, TrustState, TrustedKey, VerifyPolicy,
};
use lifeboat_model::time::{parse_duration, Millis};
use lifeboat_model::v1;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `lifeboat snapshot …`
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Make a new ed25519 signing key and print its public key and key id.
    ///
    /// The key file holds the 32-byte seed as 64 hex characters and is created with mode
    /// 0600; an existing file is never overwritten (a silently rotated key is how
    /// OpenTrident loses its chain). Give the printed public key to verifiers with
    /// `--key`, or put it in the bootstrap manifest with `lifeboat manifest create`.
    ///
    ///     lifeboat snapshot keygen --out snapshot.key
    #[command(verbatim_doc_comment)]
    Keygen(KeygenArgs),
    /// Create a signed snapshot bundle of a state directory, optionally on top of a parent.
    ///
    /// Every regular file under --from is included by its relative path. The manifest
    /// names its parent by id and digest, carries version = parent's + 1, the fencing
    /// token, an expiry and a hash and size per file; the signature covers all of it.
    ///
    ///     lifeboat snapshot create --from state/ --out snap1/ --key snapshot.key
    ///     lifeboat snapshot create --from state/ --out snap2/ --key snapshot.key --parent snap1/
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),
    /// Verify a bundle against a pinned key, restore it into a fresh directory and re-check.
    ///
    /// A lifeboat bundle (it has chain.json) is verified end to end: every signature
    /// against the pinned key, every parent link by digest, versions, expiry, rollback and
    /// forks against --trust-state, every file byte for byte. Exit 0 verified, 1 refused.
    ///
    /// An OpenTrident v1 bundle (manifest.json with contentHash and publicKeyPem, plus
    /// <key>.gz files) is run through OpenTrident's own verifier, faithfully, and then
    /// every weakness of the format is listed. It always exits 1: a v1 bundle that
    /// OpenTrident accepts can still have been tampered with.
    ///
    ///     lifeboat snapshot verify snap2/ --key 3b6a27bc…
    ///     lifeboat snapshot verify snap2/ --manifest bootstrap.json --trust-state trust.json
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Create an OpenTrident-v1-shaped bundle (manifest.json plus one .gz per file).
    ///
    /// It is made exactly as OpenTrident makes it, weaknesses included: for tests, and to
    /// rehearse what `snapshot verify` reports about a real v1 bundle.
    ///
    ///     lifeboat snapshot v1-create --from state/ --out v1bundle/ --key snapshot.key
    #[command(name = "v1-create", verbatim_doc_comment)]
    V1Create(V1CreateArgs),
}

/// Arguments of `lifeboat snapshot keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the new key (refused if the file exists).
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
}

/// Arguments of `lifeboat snapshot create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The state directory to snapshot.
    #[arg(long, value_name = "STATE_DIR")]
    pub from: PathBuf,
    /// The bundle directory to write (must not exist, or be empty).
    #[arg(long, value_name = "BUNDLE_DIR")]
    pub out: PathBuf,
    /// The signing key file, as written by `snapshot keygen`.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The previous bundle; its chain is verified under --key and extended.
    #[arg(long, value_name = "PARENT_BUNDLE_DIR")]
    pub parent: Option<PathBuf>,
    /// The publishing leader's fencing token [default: the parent's, or 0].
    #[arg(long, value_name = "N")]
    pub token: Option<u64>,
    /// How long the snapshot may serve as a head before verifiers refuse it as expired
    /// (30d, 24h, 90m, 1d12h).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Millis,
}

/// Arguments of `lifeboat snapshot verify`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("trust").required(true).args(["key", "manifest"])))]
pub struct VerifyArgs {
    /// The bundle directory (lifeboat or OpenTrident v1).
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// Pin this public key: 64 hex characters, as `snapshot keygen` prints it.
    #[arg(long, value_name = "PUBKEY_HEX")]
    pub key: Option<String>,
    /// Pin the key named in this bootstrap manifest.
    #[arg(long, value_name = "BOOTSTRAP_JSON")]
    pub manifest: Option<PathBuf>,
    /// The verifier's persisted trust state (highest version and its digest): read before,
    /// updated only after a successful verification; created if missing.
    #[arg(long, value_name = "FILE")]
    pub trust_state: Option<PathBuf>,
}

/// Arguments of `lifeboat snapshot v1-create`.
#[derive(Args, Debug)]
pub struct V1CreateArgs {
    /// The state directory to snapshot.
    #[arg(long, value_name = "STATE_DIR")]
    pub from: PathBuf,
    /// The bundle directory to write (must not exist, or be empty).
    #[arg(long, value_name = "BUNDLE_DIR")]
    pub out: PathBuf,
    /// The signing key file, as written by `snapshot keygen`.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// `parentSnapshotId`: the previous head's id (v1 links by id only).
    #[arg(long, value_name = "ID")]
    pub parent_id: Option<String>,
    /// `instanceId`, as OpenTrident's `$OPENTRIDENT_INSTANCE_ID`.
    #[arg(long, value_name = "ID", default_value = "primary")]
    pub instance_id: String,
}

/// `lifeboat manifest …`
#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Check a bootstrap manifest: parse it, print warnings, and compare it to the head.
    ///
    /// A blank node restored from a stale manifest silently loses every snapshot since
    /// (the runbook's drill found bootstrap.json naming an older snapshot than the head).
    /// Exit 0 fresh, 1 stale, 2 malformed.
    ///
    ///     lifeboat manifest check bootstrap.json --head snap-4-1a2b3c4d
    ///     lifeboat manifest check bootstrap.json --head-file /state/snapshot-head
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// Write a bootstrap manifest for a verified lifeboat bundle (runbook phase 0).
    ///
    /// The bundle is verified under --key first: a manifest that pins a key the head was
    /// not signed with would make every blank node refuse to restore.
    ///
    ///     lifeboat manifest create --bundle snap2/ --key 3b6a27bc… \
    ///         --url https://example.org/releases/snap2 --image ghcr.io/org/app@sha256:… \
    ///         --setting TELEGRAM_BOT_TOKEN --out bootstrap.json
    #[command(verbatim_doc_comment)]
    Create(ManifestCreateArgs),
}

/// Arguments of `lifeboat manifest check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The bootstrap manifest to check.
    #[arg(value_name = "BOOTSTRAP_JSON")]
    pub file: PathBuf,
    /// The current snapshot head's id.
    #[arg(long, value_name = "ID", conflicts_with = "head_file")]
    pub head: Option<String>,
    /// A file holding the current head's id (like OpenTrident's `snapshot-head`).
    #[arg(long, value_name = "PATH")]
    pub head_file: Option<PathBuf>,
}

/// Arguments of `lifeboat manifest create`.
#[derive(Args, Debug)]
pub struct ManifestCreateArgs {
    /// The head bundle the manifest names.
    #[arg(long, value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    /// The public key to pin (64 hex characters); the bundle must verify under it.
    #[arg(long, value_name = "PUBKEY_HEX")]
    pub key: String,
    /// Where a blank node fetches the chain.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The runtime image; prefer a registry reference pinned by digest.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The name of a setting the node must be given (repeat it); never its value.
    #[arg(long = "setting", value_name = "NAME")]
    pub settings: Vec<String>,
    /// Where to write the manifest (replaced if it exists: regenerating is the point).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `lifeboat snapshot …`.
pub fn run(cmd: SnapshotCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SnapshotCommand::Keygen(a) => keygen(a),
        SnapshotCommand::Create(a) => create(a),
        SnapshotCommand::Verify(a) => verify(a),
        SnapshotCommand::V1Create(a) => v1_create(a),
    }
}

/// Runs `lifeboat manifest …`.
pub fn run_manifest(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManifestCommand::Check(a) => manifest_check(a),
        ManifestCommand::Create(a) => manifest_create(a),
    }
}

/// `parse_duration` plus whole days, because snapshot lifetimes are usually said in days.
fn parse_ttl(text: &str) -> Result<Millis, String> {
    let t = text.trim();
    if let Some((days, rest)) = t.split_once('d') {
        if !days.is_empty() && days.chars().all(|c| c.is_ascii_digit()) {
            let days: u64 = days
                .parse()
                .map_err(|_| format!("number too large in duration `{text}`"))?;
            let rest = if rest.is_empty() {
                Millis::ZERO
            } else {
                parse_duration(rest)?
            };
            return days
                .checked_mul(86_400_000)
                .and_then(|d| d.checked_add(rest.0))
                .map(Millis)
                .ok_or_else(|| format!("duration `{text}` is too large"));
        }
    }
    parse_duration(t).map_err(|e| format!("{e} (or days: 30d)"))
}

fn now_wall() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(d.as_millis() as u64)
}

fn show_time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms.0 as i64).map_or_else(
        || format!("{} ms", ms.0),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn read_key_file(path: &Path) -> anyhow::Result<SnapshotKey> {
    let text = input::read_text(path, "a key file", MAX_TEXT_BYTES)?;
    let bytes = hex::decode(text.trim()).map_err(|_| {
        anyhow!(
            "key file {}: expected 64 hex characters (a seed written by `lifeboat snapshot keygen`)",
            path.display()
        )
    })?;
    let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow!(
            "key file {}: expected a 32-byte seed (64 hex characters), found {} bytes",
            path.display(),
            b.len()
        )
    })?;
    Ok(SnapshotKey::from_seed(seed))
}

fn parse_pubkey(text: &str) -> anyhow::Result<TrustedKey> {
    TrustedKey::from_hex(text).map_err(|e| {
        anyhow!("--key: {e}; expected the public key that `lifeboat snapshot keygen` printed")
    })
}

/// Reads JSON from a file the user named, naming the file, the line and column, and what
/// the file should hold.
fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = input::read_text(path, what, MAX_TEXT_BYTES)?;
    parse_json(path, &text, what)
}

/// Reads JSON from the file `name` inside a bundle, never through a symlink.
fn read_bundle_json<T: DeserializeOwned>(dir: &Path, name: &str, what: &str) -> anyhow::Result<T> {
    let bytes = input::read_in_bundle(dir, name, what, MAX_BUNDLE_FILE_BYTES)?;
    let path = dir.join(name);
    let text = input::text_from_bytes(&path, what, bytes)?;
    parse_json(&path, &text, what)
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json ends its message with " at line L column C"; it is said up front here.
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m);
        anyhow!(
            "{}: line {}, column {}: {msg}; expected {what}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// Writes a file via a temporary in the same directory and a rename, so a reader never
/// sees half a manifest or trust state.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("model types always serialize");
    out.push(b'\n');
    out
}

/// A directory tree's regular files by relative `/` path, and the paths of anything else
/// (symlinks, sockets) that was not read.
struct Tree {
    files: BTreeMap<String, Vec<u8>>,
    others: Vec<String>,
}

fn read_tree(root: &Path) -> anyhow::Result<Tree> {
    fn walk(dir: &Path, prefix: &str, tree: &mut Tree, total: &mut u64) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read directory {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                anyhow!(
                    "{}: file names must be UTF-8 to be named in a manifest",
                    entry.path().display()
                )
            })?;
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            // symlink_metadata: a link is not followed, so a bundle cannot point outside.
            let kind = entry.path().symlink_metadata()?.file_type();
            if kind.is_dir() {
                walk(&entry.path(), &rel, tree, total)?;
            } else if kind.is_file() {
                let bytes = input::read_in_bundle(dir, name, "a file", MAX_BUNDLE_FILE_BYTES)?;
                *total += bytes.len() as u64;
                if *total > MAX_BUNDLE_BYTES {
                    bail!(
                        "{}: the files add up to more than {MAX_BUNDLE_BYTES} bytes, the limit",
                        dir.display()
                    );
                }
                tree.files.insert(rel, bytes);
            } else {
                tree.others.push(rel);
            }
        }
        Ok(())
    }
    let mut tree = Tree {
        files: BTreeMap::new(),
        others: Vec::new(),
    };
    walk(root, "", &mut tree, &mut 0)?;
    Ok(tree)
}

fn prepare_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .with_context(|| format!("cannot read {}", out.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "{} already exists and is not an empty directory: bundles are never overwritten; choose a new --out",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

fn write_file_under(root: &Path, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = rel
        .split('/')
        .fold(root.to_path_buf(), |p, part| p.join(part));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn read_state_dir(from: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    if !from.is_dir() {
        bail!("--from {}: expected a state directory", from.display());
    }
    let tree = read_tree(from)?;
    for other in &tree.others {
        eprintln!(
            "note: skipped {}: not a regular file",
            from.join(other).display()
        );
    }
    if tree.files.is_empty() {
        bail!(
            "--from {}: holds no regular files; there is nothing to snapshot",
            from.display()
        );
    }
    Ok(tree.files)
}

fn keygen(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("the OS gave no randomness: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&a.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} already exists: refusing to overwrite a signing key (a replaced key orphans every snapshot it signed)",
                a.out.display()
            )
        } else {
            anyhow!("cannot create key file {}: {e}", a.out.display())
        }
    })?;
    file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let key = SnapshotKey::from_seed(seed).public();
    println!("wrote {} (mode 0600): keep it secret", a.out.display());
    println!("public key: {}", key.to_hex());
    println!("key id:     {}", key.key_id());
    Ok(ExitCode::SUCCESS)
}

/// A lifeboat bundle read from disk.
struct OnDisk {
    chain: Vec<SignedManifest>,
    bundle: Bundle,
    others: Vec<String>,
}

fn read_bundle(dir: &Path) -> anyhow::Result<OnDisk> {
    let manifest: SignedManifest = read_bundle_json(
        dir,
        "manifest.json",
        "a lifeboat signed manifest (`manifest` and `signature`)",
    )?;
    let chain: Vec<SignedManifest> = read_bundle_json(
        dir,
        "chain.json",
        "an array of signed manifests, oldest first",
    )?;
    let files_dir = dir.join("files");
    // Not `is_dir`, which follows a link: `files` as a symlink would read another tree.
    let files_kind = std::fs::symlink_metadata(&files_dir).map(|m| m.file_type());
    if files_kind.as_ref().is_ok_and(|k| k.is_symlink()) {
        bail!(
            "{}: a symbolic link; a bundle holds regular files only and is never read through a link",
            files_dir.display()
        );
    }
    let tree = if files_kind.is_ok_and(|k| k.is_dir()) {
        read_tree(&files_dir)?
    } else {
        Tree {
            files: BTreeMap::new(),
            others: Vec::new(),
        }
    };
    Ok(OnDisk {
        chain,
        bundle: Bundle {
            manifest,
            files: tree.files,
        },
        others: tree.others,
    })
}

fn create(a: CreateArgs) -> anyhow::Result<ExitCode> {
    let key = read_key_file(&a.key)?;
    let files = read_state_dir(&a.from)?;
    let now = now_wall();
    let parent = match &a.parent {
        None => None,
        Some(dir) => {
            let p = read_bundle(dir)?;
            // Verify under our own key at the parent's own time: a child of a chain that
            // does not verify would not verify either, and expiry is the head's business.
            let policy = VerifyPolicy {
                trusted: key.public(),
                state: TrustState::default(),
                now: p.bundle.manifest.manifest.created_at,
            };
            snapshot::verify(&policy, &p.chain, &p.bundle).map_err(|e| {
                anyhow!(
                    "--parent {}: does not verify under --key: {e}; a snapshot on top of it would not verify either",
                    dir.display()
                )
            })?;
            Some(p)
        }
    };
    let parent_m = parent.as_ref().map(|p| &p.bundle.manifest);
    let token = a
        .token
        .unwrap_or_else(|| parent_m.map_or(0, |p| p.manifest.token));
    let bundle = snapshot::create(&key, files, parent_m, token, now, a.ttl)
        .map_err(|e| anyhow!("cannot create a snapshot of {}: {e}", a.from.display()))?;
    let mut chain = parent.map(|p| p.chain).unwrap_or_default();
    chain.push(bundle.manifest.clone());

    prepare_out_dir(&a.out)?;
    for (path, bytes) in &bundle.files {
        write_file_under(&a.out.join("files"), path, bytes)?;
    }
    write_atomic(&a.out.join("chain.json"), &pretty(&chain))?;
    // The manifest last: a bundle with a manifest is a complete bundle.
    write_atomic(&a.out.join("manifest.json"), &pretty(&bundle.manifest))?;
    let m = &bundle.manifest.manifest;
    println!(
        "created {} (version {}, {} files, token {}) in {}",
        m.id,
        m.version,
        m.files.len(),
        m.token,
        a.out.display()
    );
    println!(
        "expires {}; signed by key {}",
        show_time(m.expires_at),
        m.key_id
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (trusted, bootstrap) = match (&a.key, &a.manifest) {
        (Some(k), _) => (parse_pubkey(k)?, None),
        (None, Some(path)) => {
            let text = input::read_text(path, "a bootstrap manifest", MAX_TEXT_BYTES)?;
            let m = BootstrapManifest::from_json(&text)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            (
                m.trusted_key()
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
                Some(m),
            )
        }
        (None, None) => bail!("give --key PUBKEY_HEX or --manifest BOOTSTRAP_JSON"),
    };
    if !a.bundle.is_dir() {
        bail!("{}: expected a bundle directory", a.bundle.display());
    }
    if a.bundle.join("chain.json").exists() {
        return verify_lifeboat(&a, trusted, bootstrap.as_ref());
    }
    let manifest_path = a.bundle.join("manifest.json");
    if manifest_path.is_file() {
        let value: serde_json::Value =
            read_bundle_json(&a.bundle, "manifest.json", "a JSON manifest")?;
        if value.get("contentHash").is_some() && value.get("publicKeyPem").is_some() {
            return verify_v1(&a, &trusted);
        }
    }
    bail!(
        "{}: not a bundle: expected chain.json and manifest.json (lifeboat), or a manifest.json with contentHash and publicKeyPem (OpenTrident v1)",
        a.bundle.display()
    )
}

fn verify_lifeboat(
    a: &VerifyArgs,
    trusted: TrustedKey,
    bootstrap: Option<&BootstrapManifest>,
) -> anyhow::Result<ExitCode> {
    let disk = read_bundle(&a.bundle)?;
    if let Some(other) = disk.others.first() {
        eprintln!(
            "refused: {}: not a regular file; a bundle holds regular files only",
            a.bundle.join("files").join(other).display()
        );
        return Ok(ExitCode::from(1));
    }
    let state: TrustState = match &a.trust_state {
        Some(p) if p.exists() => read_json(
            p,
            "a lifeboat trust state ({\"highest\": [version, \"digest\"]} or {\"highest\": null})",
        )?,
        _ => TrustState::default(),
    };
    let policy = VerifyPolicy {
        trusted,
        state,
        now: now_wall(),
    };
    let verified = match snapshot::verify(&policy, &disk.chain, &disk.bundle) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("refused: {}: {e}", a.bundle.display());
            return Ok(ExitCode::from(1));
        }
    };
    let restored = match snapshot::restore(&disk.bundle, &verified) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("refused at restore: {}: {e}", a.bundle.display());
            return Ok(ExitCode::from(1));
        }
    };
    // Restore for real into a fresh directory and read it back: what a node would serve
    // from is what is checked, not the bytes in memory.
    let fresh = tempfile::Builder::new()
        .prefix("lifeboat-restore-")
        .tempdir()
        .context("cannot create a fresh directory to restore into")?;
    for (path, bytes) in &restored {
        write_file_under(fresh.path(), path, bytes)?;
    }
    let back = read_tree(fresh.path())?;
    if let Err(e) = snapshot::check_files(
        &verified.id,
        &disk.bundle.manifest.manifest.files,
        &back.files,
    ) {
        eprintln!("refused after restore into {}: {e}", fresh.path().display());
        return Ok(ExitCode::from(1));
    }
    if let Some(path) = &a.trust_state {
        write_atomic(path, &pretty(&verified.state))?;
    }
    println!(
        "verified {} (version {}, {} files)",
        verified.id,
        verified.version,
        restored.len()
    );
    println!(
        "restored into a fresh directory and re-checked every file against the signed manifest"
    );
    if let Some(path) = &a.trust_state {
        println!(
            "trust state {}: highest version {}",
            path.display(),
            verified.version
        );
    }
    if let Some(b) = bootstrap {
        if let Err(e) = b.check_fresh(&verified.id) {
            eprintln!("warning: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `<key>.gz` inside the bundle (no symlinks, size-limited) and inflates it up to
/// the one-file limit. The error says which: missing, a link, too large or not gzip.
fn gunzip_in_bundle(bundle: &Path, key: &str) -> Result<Vec<u8>, String> {
    let compressed = input::read_in_bundle(
        bundle,
        &format!("{key}.gz"),
        "a gzip file",
        MAX_BUNDLE_FILE_BYTES,
    )
    .map_err(|e| format!("{e:#}"))?;
    input::gunzip_limited(&compressed, MAX_BUNDLE_FILE_BYTES)
        .map_err(|e| format!("{}: {e}", bundle.join(format!("{key}.gz")).display()))
}

fn verify_v1(a: &VerifyArgs, pinned: &TrustedKey) -> anyhow::Result<ExitCode> {
    let manifest: v1::V1Manifest = read_bundle_json(
        &a.bundle,
        "manifest.json",
        "an OpenTrident v1 manifest (version, snapshotId, parentSnapshotId, generatedAt, instanceId, contentHash, files, signature, publicKeyPem)",
    )?;
    let mut findings = Vec::new();
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    // Present but unreadable (a link, not gzip, too large): OpenTrident's verifier, given
    // no bytes for them, would call them missing, which they are not.
    let mut unreadable: Vec<String> = Vec::new();
    for key in manifest.files.keys() {
        if !snapshot::is_safe_path(key) {
            // OpenTrident would read `<bundle>/<key>.gz` wherever that leads; we do not.
            findings.push(format!(
                "`{key}.gz` was not read: the key escapes the bundle (OpenTrident would read it)"
            ));
            continue;
        }
        match gunzip_in_bundle(&a.bundle, key) {
            Ok(bytes) => {
                total += bytes.len() as u64;
                if total > MAX_BUNDLE_BYTES {
                    bail!(
                        "{}: the files inflate to more than {MAX_BUNDLE_BYTES} bytes together, the limit",
                        a.bundle.display()
                    );
                }
                files.insert(key.clone(), bytes);
            }
            Err(e) => {
                unreadable.push(format!("`{key}.gz`"));
                findings.push(e);
            }
        }
    }
    for (key, entry) in &manifest.files {
        if let Some(bytes) = files.get(key) {
            let found = snapshot::sha256_hex(bytes);
            if found != entry.sha256 || bytes.len() as u64 != entry.bytes {
                findings.push(format!(
                    "files[`{key}`] says sha256 {} and {} bytes, but `{key}.gz` holds sha256 {found} and {} bytes (OpenTrident's verifier does not look)",
                    entry.sha256,
                    entry.bytes,
                    bytes.len()
                ));
            }
        }
    }
    // By characters, not bytes: a hostile contentHash may hold multi-byte ones.
    let hash_prefix: String = manifest.content_hash.chars().take(8).collect();
    if !manifest.snapshot_id.ends_with(&hash_prefix) {
        findings.push(format!(
            "snapshotId {} does not end in the first 8 hex of contentHash {} (OpenTrident's verifier does not look)",
            manifest.snapshot_id, manifest.content_hash
        ));
    }
    let bundle = v1::V1Bundle { manifest, files };
    let id = &bundle.manifest.snapshot_id;
    println!(
        "OpenTrident v1 bundle {} in {}",
        escape_control(id),
        a.bundle.display()
    );
    match v1::verify(&bundle) {
        Ok(()) => println!(
            "OpenTrident's own verifier (verifySnapshot) ACCEPTS it: contentHash matches and the signature verifies against the embedded key"
        ),
        Err(_) if !unreadable.is_empty() => println!(
            "OpenTrident's own verifier (verifySnapshot) REFUSES it: {} could not be read (not missing; see the findings)",
            escape_control(&unreadable.join(", "))
        ),
        Err(e) => println!(
            "OpenTrident's own verifier (verifySnapshot) REFUSES it: {}",
            escape_control(&e.to_string())
        ),
    }
    let weaknesses = v1::weaknesses(&bundle.manifest, Some(pinned));
    println!("weaknesses ({}):", weaknesses.len());
    for w in &weaknesses {
        println!("  - {}", escape_control(&w.to_string()));
    }
    if !findings.is_empty() {
        println!("findings in this bundle ({}):", findings.len());
        for f in &findings {
            println!("  - {}", escape_control(f));
        }
    }
    if a.trust_state.is_some() {
        println!("note: --trust-state is not used: v1 has no version to roll back from");
    }
    if weaknesses.is_empty() && findings.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "refused: acceptance by OpenTrident's verifier does not show this bundle is untampered; re-create it as a lifeboat bundle (`lifeboat snapshot create`)"
    );
    Ok(ExitCode::from(1))
}

fn v1_create(a: V1CreateArgs) -> anyhow::Result<ExitCode> {
    let key = read_key_file(&a.key)?;
    let files = read_state_dir(&a.from)?;
    let bundle = v1::create(&key, files, a.parent_id, &a.instance_id, now_wall());
    prepare_out_dir(&a.out)?;
    for (path, bytes) in &bundle.files {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes)?;
        write_file_under(&a.out, &format!("{path}.gz"), &gz.finish()?)?;
    }
    // OpenTrident writes the manifest first; order does not matter to a test bundle.
    write_atomic(&a.out.join("manifest.json"), &pretty(&bundle.manifest))?;
    println!(
        "created OpenTrident v1 bundle {} ({} files) in {}",
        bundle.manifest.snapshot_id,
        bundle.files.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn manifest_check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let text = input::read_text(&a.file, "a bootstrap manifest", MAX_TEXT_BYTES)?;
    let m = BootstrapManifest::from_json(&text)
        .map_err(|e| anyhow!("{}: {}", a.file.display(), escape_control(&e.to_string())))?;
    for w in m.warnings() {
        println!("warning: {}", escape_control(&w.to_string()));
    }
    let head = match (&a.head, &a.head_file) {
        (Some(h), _) => {
            let h = h.trim().to_string();
            if h.is_empty() {
                bail!("--head is empty: expected a snapshot id such as snap-4-1a2b3c4d");
            }
            h
        }
        (None, Some(p)) => {
            let h = input::read_text(p, "a head file", MAX_TEXT_BYTES)?;
            let h = h.trim().to_string();
            if h.is_empty() {
                bail!("head file {}: empty; expected a snapshot id", p.display());
            }
            h
        }
        (None, None) => {
            println!(
                "{}: well-formed, names {}; staleness not checked (give --head ID or --head-file PATH)",
                a.file.display(),
                escape_control(&m.snapshot_head)
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    match m.check_fresh(&head) {
        Ok(()) => {
            println!(
                "{}: fresh: names the head {}",
                a.file.display(),
                escape_control(&head)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {}", a.file.display(), escape_control(&e.to_string()));
            Ok(ExitCode::from(1))
        }
    }
}

fn manifest_create(a: ManifestCreateArgs) -> anyhow::Result<ExitCode> {
    let trusted = parse_pubkey(&a.key)?;
    if let Some(s) = a.settings.iter().find(|s| s.is_empty() || s.contains('=')) {
        bail!(
            "--setting `{s}`: expected a setting's name only; values (secrets) are never written into the manifest"
        );
    }
    let disk = read_bundle(&a.bundle)?;
    let head = &disk.bundle.manifest.manifest;
    // Checked at the head's own time: the question here is whether the key and chain are
    // right; expiry is reported separately below.
    let policy = VerifyPolicy {
        trusted: trusted.clone(),
        state: TrustState::default(),
        now: head.created_at,
    };
    if let Err(e) = snapshot::verify(&policy, &disk.chain, &disk.bundle) {
        eprintln!(
            "refused: {}: {e}; a manifest pinning this key would make every blank node refuse to restore",
            a.bundle.display()
        );
        return Ok(ExitCode::from(1));
    }
    let m = BootstrapManifest::new(
        &head.id,
        &a.url,
        &a.image,
        &trusted,
        a.settings.clone(),
        now_wall(),
    );
    write_atomic(&a.out, &pretty(&m))?;
    println!(
        "wrote {} naming head {} (version {}), pinning key {}",
        a.out.display(),
        head.id,
        head.version,
        trusted.key_id()
    );
    if now_wall() > head.expires_at {
        println!(
            "warning: head {} expired {}: a blank node will refuse it; create a new snapshot first",
            head.id,
            show_time(head.expires_at)
        );
    }
    for w in m.warnings() {
        println!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
