//! The signed snapshot chain: create, verify and restore.
//!
//! Each manifest names its parent by id *and* digest, carries a version bound to the
//! publisher's fencing token, an expiry, and a hash and size for every file; the ed25519
//! signature covers all of it with the payload type bound in (DSSE's pre-authentication
//! encoding), so no field can be swapped for another message's. Verification pins the
//! trusted key from the bootstrap manifest and refuses rollback below the highest version
//! the verifier has persisted, forks, expired heads, unsafe paths and any byte that does not
//! match. This is TUF's lesson applied to one chain.

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The payload type bound into every signature.
pub const PAYLOAD_TYPE: &str = "application/vnd.lifeboat.snapshot+json;version=1";

/// The hash and size of one file in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// A link to the parent snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent's id.
    pub id: String,
    /// [`digest`] of the parent's signed manifest.
    pub digest: String,
}

/// What a snapshot says about itself; every field is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `snap-<version>-<first 8 hex of the content digest>`.
    pub id: String,
    /// Monotonic version: the parent's plus one, starting at 1.
    pub version: u64,
    /// The parent, absent for the first snapshot.
    pub parent: Option<ParentRef>,
    /// The fencing token of the leader that published it.
    pub token: u64,
    /// When it was made (the publisher's wall clock, ms since the epoch).
    pub created_at: Millis,
    /// After this, a head is refused as expired (the freeze attack).
    pub expires_at: Millis,
    /// Every file, by relative path.
    pub files: BTreeMap<String, FileEntry>,
    /// The signing key's id ([`TrustedKey::key_id`]).
    pub key_id: String,
}

/// A manifest with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The signed content.
    pub manifest: Manifest,
    /// Base64 ed25519 signature over the DSSE pre-authentication encoding of
    /// [`PAYLOAD_TYPE`] and the canonical JSON of `manifest`.
    pub signature: String,
}

/// A manifest and the files it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The signed manifest.
    pub manifest: SignedManifest,
    /// The files' bytes, by relative path.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A private signing key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SnapshotKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotKey(key id {})", self.public().key_id())
    }
}

/// A public key that verifiers pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey(ed25519_dalek::VerifyingKey);

/// Why a snapshot could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A file path would escape the snapshot directory or is not a plain relative path.
    #[error("unsafe path `{0}`: paths must be relative, use `/`, and contain no `..`, `.` or empty parts")]
    UnsafePath(String),
    /// The parent does not come before this snapshot.
    #[error("{0}")]
    BadParent(String),
}

/// Why a snapshot chain was refused. Each names the snapshot and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The fetch returned no snapshot.
    #[error("no snapshot to verify")]
    Empty,
    /// A signature does not verify against the pinned key.
    #[error("snapshot {id}: signature does not verify against the trusted key {trusted}")]
    BadSignature {
        /// The snapshot.
        id: String,
        /// The pinned key's id.
        trusted: String,
    },
    /// A manifest was signed by a key other than the pinned one.
    #[error("snapshot {id}: signed by key {found}, but the trusted key is {trusted}")]
    UntrustedKey {
        /// The snapshot.
        id: String,
        /// The key id in the manifest.
        found: String,
        /// The pinned key's id.
        trusted: String,
    },
    /// A link in the chain does not name its predecessor.
    #[error("snapshot {id}: parent link broken: expected {expected}, found {found}")]
    BrokenLink {
        /// The snapshot.
        id: String,
        /// What the chain says the parent is.
        expected: String,
        /// What the manifest names.
        found: String,
    },
    /// The head is older than what this verifier already trusted.
    #[error("snapshot {id}: rollback: version {version} is below the highest version already trusted, {highest}")]
    Rollback {
        /// The snapshot.
        id: String,
        /// Its version.
        version: u64,
        /// The highest version this verifier has persisted.
        highest: u64,
    },
    /// The chain disagrees with what this verifier trusted at the same version.
    #[error("snapshot {id}: fork: version {version} has digest {found}, but {trusted} was trusted at that version")]
    Fork {
        /// The snapshot.
        id: String,
        /// The version.
        version: u64,
        /// The digest found now.
        found: String,
        /// The digest trusted before.
        trusted: String,
    },
    /// The head has expired.
    #[error("snapshot {id}: expired at {expires_at} ms, now {now} ms")]
    Expired {
        /// The snapshot.
        id: String,
        /// Its expiry.
        expires_at: u64,
        /// The verifier's time.
        now: u64,
    },
    /// A path in the manifest or bundle is unsafe.
    #[error("snapshot {id}: unsafe path `{path}`")]
    UnsafePath {
        /// The snapshot.
        id: String,
        /// The path.
        path: String,
    },
    /// A file's bytes do not match the manifest.
    #[error("snapshot {id}: file `{path}`: {what}")]
    FileMismatch {
        /// The snapshot.
        id: String,
        /// The file.
        path: String,
        /// What differs (hash, size, missing, unexpected).
        what: String,
    },
    /// The id does not match the content.
    #[error("snapshot {id}: {what}")]
    Malformed {
        /// The snapshot.
        id: String,
        /// What is wrong.
        what: String,
    },
}

/// What a verifier remembers between runs (TUF: persist the highest version trusted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// The highest version trusted so far, and its manifest digest.
    pub highest: Option<(u64, String)>,
}

/// The inputs of a verification.
#[derive(Clone, Debug)]
pub struct VerifyPolicy {
    /// The pinned key, from the bootstrap manifest.
    pub trusted: TrustedKey,
    /// What this verifier trusted before.
    pub state: TrustState,
    /// The verifier's wall-clock time, for expiry.
    pub now: Millis,
}

/// A verified snapshot: what a restore may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: u64,
    /// Its digest.
    pub digest: String,
    /// The trust state to persist after this verification.
    pub state: TrustState,
    /// The lowest version whose manifest this verification vouched for: the version
    /// trusted before, or 1 when nothing was. Below it the chain was not read.
    pub from_version: u64,
    /// What the verification cost, so tests can tell it does not grow with the chain.
    pub work: VerifyWork,
}

impl Verified {
    /// The manifests of `chain` (the chain this verdict was given for) that it vouched
    /// for, oldest first: those from [`Verified::from_version`] to the head. Anything
    /// before them was not read and may be anything the store chose to serve.
    pub fn vouched<'a>(&self, chain: &'a [SignedManifest]) -> &'a [SignedManifest] {
        let above =
            usize::try_from(self.version.saturating_sub(self.from_version)).unwrap_or(usize::MAX);
        &chain[chain.len().saturating_sub(above.saturating_add(1))..]
    }
}

/// The work one verification did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyWork {
    /// ed25519 signature checks (the expensive part: about 76 µs each).
    pub signatures: u32,
    /// Manifests whose id, paths and parent link were checked.
    pub links: u32,
}

/// The version in a snapshot id (`snap-<version>-<hex>`), if the id has that form.
pub fn id_version(id: &str) -> Option<u64> {
    id.strip_prefix("snap-")?.split('-').next()?.parse().ok()
}

impl SnapshotKey {
    /// A key from 32 seed bytes (the sim derives them from its seed; the CLI from the OS).
    pub fn from_seed(seed: [u8; 32]) -> SnapshotKey {
        SnapshotKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }
    /// The seed bytes, for writing a key file.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// The matching public key.
    pub fn public(&self) -> TrustedKey {
        TrustedKey(self.0.verifying_key())
    }
    /// Signs raw bytes (used by the v1 format too).
    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(msg).to_bytes()
    }
}

impl TrustedKey {
    /// The key as 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<TrustedKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("trusted key is not hex: {e}"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "trusted key must be 32 bytes (64 hex characters)".to_string())?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(TrustedKey)
            .map_err(|e| format!("trusted key is not a valid ed25519 key: {e}"))
    }
    /// A short id: the first 16 hex characters of the SHA-256 of the key.
    pub fn key_id(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.0.to_bytes()))[..16].to_string()
    }
    /// Verifies a raw signature (used by the v1 format too).
    pub fn verify_bytes(&self, msg: &[u8], sig: &[u8]) -> bool {
        let memo_key = SIGNATURE_MEMO.with(|m| {
            m.borrow().as_ref().map(|_| {
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                h.update(self.0.to_bytes());
                h.update((sig.len() as u64).to_le_bytes());
                h.update(sig);
                h.update(msg);
                <[u8; 32]>::from(h.finalize())
            })
        });
        if let Some(k) = memo_key {
            if let Some(ok) = SIGNATURE_MEMO.with(|m| m.borrow().as_ref()?.get(&k).copied()) {
                return ok;
            }
        }
        let ok = ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|sig| self.0.verify_strict(msg, &sig).is_ok());
        if let Some(k) = memo_key {
            SIGNATURE_MEMO.with(|m| {
                if let Some(memo) = m.borrow_mut().as_mut() {
                    if memo.len() >= SIGNATURE_MEMO_MAX {
                        memo.clear();
                    }
                    memo.insert(k, ok);
                }
            });
        }
        ok
    }
}

thread_local! {
    /// Signature checks already done on this thread, by SHA-256 of key, signature and
    /// message; `None` while memoising is off (the default).
    static SIGNATURE_MEMO: std::cell::RefCell<Option<std::collections::BTreeMap<[u8; 32], bool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Bounds the memo's memory: about 3 MB at most.
const SIGNATURE_MEMO_MAX: usize = 65_536;

/// Remembers signature checks on this thread from now on. Why: a simulated drill verifies
/// the same head hundreds or thousands of times (every follower checks the head's
/// signature at every sync, every 30 s, and a node refusing a tampered store retries
/// every second or so), and ed25519 verification is half of the fast engine's time on
/// such drills even at one signature per verification. A check is a pure
/// function of key, signature and message, so remembering it changes no outcome, only
/// the cost. The simulator turns it on; real nodes and the benchmarks leave it off, so
/// verification throughput is measured uncached.
pub fn memoize_signature_checks() {
    SIGNATURE_MEMO.with(|m| {
        m.borrow_mut().get_or_insert_with(Default::default);
    });
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// Whether a path is a safe relative path inside a bundle.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The exact bytes an ed25519 signature covers: DSSE's pre-authentication encoding of the
/// payload type and the canonical JSON of the manifest.
pub fn signed_bytes(m: &Manifest) -> Vec<u8> {
    // serde_json writes struct fields in declaration order and BTreeMap keys sorted, so
    // this JSON is canonical for a given manifest.
    let body = serde_json::to_vec(m).expect("a manifest always serializes");
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(PAYLOAD_TYPE.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(PAYLOAD_TYPE.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(&body);
    out
}

/// The digest that children use to name this manifest: SHA-256 over its signed bytes and
/// signature.
pub fn digest(m: &SignedManifest) -> String {
    let mut bytes = signed_bytes(&m.manifest);
    bytes.extend_from_slice(m.signature.as_bytes());
    sha256_hex(&bytes)
}

/// The digest of a file map that the id's suffix is taken from: length-prefixed names and
/// hashes, so no two different file maps share it (unlike OpenTrident's plain
/// concatenation).
fn content_digest(files: &BTreeMap<String, FileEntry>) -> String {
    let mut bytes = Vec::new();
    for (path, entry) in files {
        for part in [path.as_bytes(), entry.sha256.as_bytes()] {
            bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
            bytes.extend_from_slice(part);
        }
        bytes.extend_from_slice(&entry.bytes.to_be_bytes());
    }
    sha256_hex(&bytes)
}

/// Makes and signs the next snapshot of `files` on top of `parent`.
pub fn create(
    key: &SnapshotKey,
    files: BTreeMap<String, Vec<u8>>,
    parent: Option<&SignedManifest>,
    token: u64,
    now: Millis,
    ttl: Millis,
) -> Result<Bundle, SnapshotError> {
    if let Some(bad) = files.keys().find(|p| !is_safe_path(p)) {
        return Err(SnapshotError::UnsafePath(bad.clone()));
    }
    if let Some(p) = parent {
        if token < p.manifest.token {
            return Err(SnapshotError::BadParent(format!(
                "fencing token {token} is below the parent's token {}",
                p.manifest.token
            )));
        }
    }
    let entries: BTreeMap<String, FileEntry> = files
        .iter()
        .map(|(p, b)| {
            (
                p.clone(),
                FileEntry {
                    sha256: sha256_hex(b),
                    bytes: b.len() as u64,
                },
            )
        })
        .collect();
    let version = parent.map_or(1, |p| p.manifest.version + 1);
    let manifest = Manifest {
        id: format!("snap-{version}-{}", &content_digest(&entries)[..8]),
        version,
        parent: parent.map(|p| ParentRef {
            id: p.manifest.id.clone(),
            digest: digest(p),
        }),
        token,
        created_at: now,
        // Saturating: a huge TTL must mean "far future", not wrap into the past.
        expires_at: Millis(now.0.saturating_add(ttl.0)),
        files: entries,
        key_id: key.public().key_id(),
    };
    use base64::Engine;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign_bytes(&signed_bytes(&manifest)));
    Ok(Bundle {
        manifest: SignedManifest {
            manifest,
            signature,
        },
        files,
    })
}

fn check_key(policy: &VerifyPolicy, m: &SignedManifest) -> Result<(), VerifyError> {
    let trusted = policy.trusted.key_id();
    if m.manifest.key_id != trusted {
        return Err(VerifyError::UntrustedKey {
            id: m.manifest.id.clone(),
            found: m.manifest.key_id.clone(),
            trusted,
        });
    }
    Ok(())
}

fn check_signature(policy: &VerifyPolicy, m: &SignedManifest) -> Result<(), VerifyError> {
    check_key(policy, m)?;
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&m.signature)
        .unwrap_or_default();
    if !policy
        .trusted
        .verify_bytes(&signed_bytes(&m.manifest), &sig)
    {
        return Err(VerifyError::BadSignature {
            id: m.manifest.id.clone(),
            trusted: policy.trusted.key_id(),
        });
    }
    Ok(())
}

/// The checks on one manifest's own content: safe paths and an id that matches them.
fn check_content(m: &SignedManifest) -> Result<(), VerifyError> {
    let id = &m.manifest.id;
    if let Some(bad) = m.manifest.files.keys().find(|p| !is_safe_path(p)) {
        return Err(VerifyError::UnsafePath {
            id: id.clone(),
            path: bad.clone(),
        });
    }
    let expected_id = format!(
        "snap-{}-{}",
        m.manifest.version,
        &content_digest(&m.manifest.files)[..8]
    );
    if *id != expected_id {
        return Err(VerifyError::Malformed {
            id: id.clone(),
            what: format!("id does not match its content, expected {expected_id}"),
        });
    }
    Ok(())
}

/// Checks that `m` names `parent` by id and digest and comes right after it.
fn check_link(m: &SignedManifest, parent: &SignedManifest) -> Result<(), VerifyError> {
    let id = &m.manifest.id;
    let want = ParentRef {
        id: parent.manifest.id.clone(),
        digest: digest(parent),
    };
    let link = &m.manifest.parent;
    if link.as_ref() != Some(&want) {
        return Err(VerifyError::BrokenLink {
            id: id.clone(),
            expected: format!("{} ({})", want.id, &want.digest[..12]),
            found: link.as_ref().map_or("none".into(), |l| {
                format!("{} ({})", l.id, &l.digest[..l.digest.len().min(12)])
            }),
        });
    }
    if Some(m.manifest.version) != parent.manifest.version.checked_add(1) {
        return Err(VerifyError::BrokenLink {
            id: id.clone(),
            expected: format!("version {}", parent.manifest.version.saturating_add(1)),
            found: format!("version {}", m.manifest.version),
        });
    }
    Ok(())
}

/// Checks that `m` is a chain's first snapshot.
fn check_genesis(m: &SignedManifest) -> Result<(), VerifyError> {
    let id = &m.manifest.id;
    if let Some(p) = &m.manifest.parent {
        return Err(VerifyError::BrokenLink {
            id: id.clone(),
            expected: "no parent (the chain starts here)".into(),
            found: p.id.clone(),
        });
    }
    if m.manifest.version != 1 {
        return Err(VerifyError::BrokenLink {
            id: id.clone(),
            expected: "the chain's first snapshot (version 1)".into(),
            found: format!("version {} without a parent", m.manifest.version),
        });
    }
    Ok(())
}

/// Verifies `chain` (oldest first, ending with the head's own manifest) and the head's
/// files, against the pinned key and what this verifier trusted before.
///
/// The head's key and signature are checked; then, from the head down, every manifest's
/// id and paths and its link to the one below it (parent id, parent digest, version one
/// lower) until the version this verifier already trusts, whose digest must be the one
/// trusted (else a fork), or the first snapshot when nothing is trusted yet. A parent
/// digest is SHA-256 over the parent's whole signed manifest and signature, and the head
/// that names it is signed, so the head's signature vouches for every verified ancestor
/// byte for byte: an altered inner manifest breaks the link above it. Links at or below
/// the trusted version were verified when that version was trusted and are not read
/// again, so a follower sync costs the links that are new, not the chain's length. The
/// head must not be expired nor below the trusted version; every file must be listed,
/// safe and byte-exact.
pub fn verify(
    policy: &VerifyPolicy,
    chain: &[SignedManifest],
    head: &Bundle,
) -> Result<Verified, VerifyError> {
    verify_skipping(policy, chain, head, Skips::default())
}

/// Checks of [`verify`] that a mutant removes (`docs/mutants.md`); none outside the
/// mutant tests.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Skips {
    /// The head's signature and the manifests' keys go unchecked.
    pub(crate) signatures: bool,
    /// A head below the persisted version is accepted.
    pub(crate) version_floor: bool,
}

/// [`verify`], with the checks `skips` names left out.
pub(crate) fn verify_skipping(
    policy: &VerifyPolicy,
    chain: &[SignedManifest],
    head: &Bundle,
    skips: Skips,
) -> Result<Verified, VerifyError> {
    let head_m = &head.manifest;
    let Some(last) = chain.last() else {
        return Err(VerifyError::Empty);
    };
    if last != head_m {
        return Err(VerifyError::BrokenLink {
            id: head_m.manifest.id.clone(),
            expected: last.manifest.id.clone(),
            found: head_m.manifest.id.clone(),
        });
    }
    let hm = &head_m.manifest;
    let floor = policy.state.highest.as_ref();
    if let Some((v, _)) = floor.filter(|_| !skips.version_floor) {
        if hm.version < *v {
            return Err(VerifyError::Rollback {
                id: hm.id.clone(),
                version: hm.version,
                highest: *v,
            });
        }
    }
    let mut signatures = 0;
    if !skips.signatures {
        check_signature(policy, head_m)?;
        signatures += 1;
    }
    // From the head down: each manifest is vouched for by the verified one above it.
    let mut links = 0;
    let mut from_version = hm.version;
    for i in (0..chain.len()).rev() {
        let m = &chain[i];
        if let Some((v, d)) = floor {
            if m.manifest.version == *v {
                let found = digest(m);
                if found != *d {
                    return Err(VerifyError::Fork {
                        id: m.manifest.id.clone(),
                        version: *v,
                        found,
                        trusted: d.clone(),
                    });
                }
                // Trusted before, with everything below it.
                from_version = *v;
                break;
            }
        }
        if !skips.signatures {
            check_key(policy, m)?;
        }
        check_content(m)?;
        from_version = m.manifest.version;
        match i.checked_sub(1) {
            Some(below) => check_link(m, &chain[below])?,
            None => check_genesis(m)?,
        }
        links += 1;
    }
    if policy.now > hm.expires_at {
        return Err(VerifyError::Expired {
            id: hm.id.clone(),
            expires_at: hm.expires_at.0,
            now: policy.now.0,
        });
    }
    check_files(&hm.id, &hm.files, &head.files)?;
    let d = digest(head_m);
    Ok(Verified {
        id: hm.id.clone(),
        version: hm.version,
        digest: d.clone(),
        state: TrustState {
            highest: Some((hm.version, d)),
        },
        from_version,
        work: VerifyWork { signatures, links },
    })
}

/// Checks that `files` holds exactly the files `entries` lists, byte for byte.
pub fn check_files(
    id: &str,
    entries: &BTreeMap<String, FileEntry>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), VerifyError> {
    let mismatch = |path: &str, what: String| VerifyError::FileMismatch {
        id: id.to_string(),
        path: path.to_string(),
        what,
    };
    for path in files.keys() {
        if !is_safe_path(path) {
            return Err(VerifyError::UnsafePath {
                id: id.to_string(),
                path: path.clone(),
            });
        }
        if !entries.contains_key(path) {
            return Err(mismatch(path, "not listed in the signed manifest".into()));
        }
    }
    for (path, entry) in entries {
        let Some(bytes) = files.get(path) else {
            return Err(mismatch(path, "listed in the manifest but missing".into()));
        };
        if bytes.len() as u64 != entry.bytes {
            return Err(mismatch(
                path,
                format!("size {} bytes, manifest says {}", bytes.len(), entry.bytes),
            ));
        }
        let found = sha256_hex(bytes);
        if found != entry.sha256 {
            return Err(mismatch(
                path,
                format!("sha256 {found}, manifest says {}", entry.sha256),
            ));
        }
    }
    Ok(())
}

/// Restores a verified bundle into a fresh file map and checks the result again before
/// it is used (restore into a fresh directory, then verify, then swap in).
pub fn restore(
    head: &Bundle,
    verified: &Verified,
) -> Result<BTreeMap<String, Vec<u8>>, VerifyError> {
    // The digest, not only the id: ids are short and a re-signed manifest keeps its id, so
    // a bundle swapped in after verification must not restore under the old verdict.
    if head.manifest.manifest.id != verified.id || digest(&head.manifest) != verified.digest {
        return Err(VerifyError::Malformed {
            id: head.manifest.manifest.id.clone(),
            what: format!(
                "restore asked for {} (digest {}), bundle is another",
                verified.id,
                &verified.digest[..verified.digest.len().min(12)]
            ),
        });
    }
    let fresh: BTreeMap<String, Vec<u8>> = head.files.clone();
    check_files(&verified.id, &head.manifest.manifest.files, &fresh)?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> BTreeMap<String, Vec<u8>> {
        [("state.json".to_string(), text.as_bytes().to_vec())].into()
    }

    #[test]
    fn a_huge_ttl_saturates_instead_of_wrapping_into_the_past() {
        let key = SnapshotKey::from_seed([1; 32]);
        let b = create(&key, files("a"), None, 1, Millis(5), Millis(u64::MAX)).unwrap();
        assert_eq!(b.manifest.manifest.expires_at, Millis(u64::MAX));
    }

    #[test]
    fn restore_refuses_a_bundle_swapped_in_after_verification() {
        let key = SnapshotKey::from_seed([1; 32]);
        let good = create(&key, files("a"), None, 1, Millis(5), Millis(100)).unwrap();
        let policy = VerifyPolicy {
            trusted: key.public(),
            state: TrustState::default(),
            now: Millis(6),
        };
        let verified = verify(&policy, std::slice::from_ref(&good.manifest), &good).unwrap();
        assert_eq!(restore(&good, &verified), Ok(files("a")));
        // Same id (the id covers the file map, not the token), different signed manifest.
        let swapped = create(&key, files("a"), None, 2, Millis(5), Millis(100)).unwrap();
        assert_eq!(swapped.manifest.manifest.id, good.manifest.manifest.id);
        let err = restore(&swapped, &verified).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed { .. }), "{err:?}");
    }

    /// A chain of `len` snapshots under `key` and its head's bundle.
    fn chain(key: &SnapshotKey, len: u64) -> (Vec<SignedManifest>, Bundle) {
        let mut manifests: Vec<SignedManifest> = Vec::new();
        let mut head = None;
        for v in 1..=len {
            let b = create(
                key,
                files(&v.to_string()),
                manifests.last(),
                1,
                Millis(v),
                Millis(1_000_000),
            )
            .unwrap();
            manifests.push(b.manifest.clone());
            head = Some(b);
        }
        (manifests, head.unwrap())
    }

    fn policy(key: &SnapshotKey, trusted: Option<&SignedManifest>) -> VerifyPolicy {
        VerifyPolicy {
            trusted: key.public(),
            state: TrustState {
                highest: trusted.map(|m| (m.manifest.version, digest(m))),
            },
            now: Millis(10_000),
        }
    }

    /// Re-signs `m` with `key` after `f` changed it.
    fn resign(key: &SnapshotKey, m: &mut SignedManifest) {
        use base64::Engine;
        m.signature = base64::engine::general_purpose::STANDARD
            .encode(key.sign_bytes(&signed_bytes(&m.manifest)));
    }

    #[test]
    fn a_follower_sync_costs_the_same_at_any_chain_length() {
        let key = SnapshotKey::from_seed([1; 32]);
        for len in [3, 30, 300] {
            let (c, head) = chain(&key, len);
            // Trusting the version two below the head: two new links to check.
            let sync = verify(&policy(&key, Some(&c[c.len() - 3])), &c, &head).unwrap();
            assert_eq!(
                sync.work,
                VerifyWork {
                    signatures: 1,
                    links: 2
                },
                "chain of {len}"
            );
            assert_eq!(sync.from_version, len - 2);
            assert_eq!(sync.vouched(&c).len(), 3);
            // Nothing trusted yet: every link down to the first, still one signature.
            let full = verify(&policy(&key, None), &c, &head).unwrap();
            assert_eq!(
                full.work,
                VerifyWork {
                    signatures: 1,
                    links: len as u32
                }
            );
            assert_eq!(full.from_version, 1);
            assert_eq!(full.vouched(&c).len(), c.len());
            assert_eq!(sync.state, full.state);
        }
    }

    #[test]
    fn an_altered_inner_manifest_is_refused_though_only_the_head_is_signed() {
        let key = SnapshotKey::from_seed([1; 32]);
        let (mut c, head) = chain(&key, 6);
        c[2].manifest.token = 99;
        let err = verify(&policy(&key, None), &c, &head).unwrap_err();
        assert!(
            matches!(&err, VerifyError::BrokenLink { id, .. } if *id == c[3].manifest.id),
            "{err:?}"
        );
        // Above a trusted version as well.
        let err = verify(&policy(&key, Some(&c[1])), &c, &head).unwrap_err();
        assert!(matches!(err, VerifyError::BrokenLink { .. }), "{err:?}");
        // An inner signature swapped for another is part of the digest too.
        let (mut c, head) = chain(&key, 6);
        c[2].signature = c[1].signature.clone();
        let err = verify(&policy(&key, None), &c, &head).unwrap_err();
        assert!(matches!(err, VerifyError::BrokenLink { .. }), "{err:?}");
    }

    #[test]
    fn an_altered_inner_content_digest_is_refused() {
        let key = SnapshotKey::from_seed([1; 32]);
        let (mut c, head) = chain(&key, 6);
        let entry = c[3].manifest.files.get_mut("state.json").unwrap();
        entry.sha256 = sha256_hex(b"forged");
        let err = verify(&policy(&key, Some(&c[0])), &c, &head).unwrap_err();
        assert!(
            matches!(&err, VerifyError::BrokenLink { id, .. } if *id == c[4].manifest.id),
            "{err:?}"
        );
        // The head's own content is checked byte for byte against its signed entries.
        let (c, mut head) = chain(&key, 6);
        head.files.insert("state.json".into(), b"forged".to_vec());
        let err = verify(&policy(&key, Some(&c[4])), &c, &head).unwrap_err();
        assert!(matches!(err, VerifyError::FileMismatch { .. }), "{err:?}");
    }

    #[test]
    fn a_head_resigned_over_a_forged_parent_is_refused() {
        let key = SnapshotKey::from_seed([1; 32]);
        let attacker = SnapshotKey::from_seed([2; 32]);
        let (mut c, mut head) = chain(&key, 6);
        // The parent forged (and re-signed by the attacker), the head re-linked to it.
        c[4].manifest.token = 99;
        resign(&attacker, &mut c[4]);
        head.manifest.manifest.parent = Some(ParentRef {
            id: c[4].manifest.id.clone(),
            digest: digest(&c[4]),
        });
        // Re-signed by the attacker under the trusted key's id: the signature fails.
        resign(&attacker, &mut head.manifest);
        c[5] = head.manifest.clone();
        let err = verify(&policy(&key, Some(&c[3])), &c, &head).unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
        // Under the attacker's own key id: an untrusted key.
        head.manifest.manifest.key_id = attacker.public().key_id();
        resign(&attacker, &mut head.manifest);
        c[5] = head.manifest.clone();
        let err = verify(&policy(&key, None), &c, &head).unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err:?}");
    }

    #[test]
    fn a_head_below_the_trusted_version_or_off_its_digest_is_refused() {
        let key = SnapshotKey::from_seed([1; 32]);
        let (c, _) = chain(&key, 6);
        let (older, older_head) = chain(&key, 4);
        let err = verify(&policy(&key, Some(&c[4])), &older, &older_head).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Rollback {
                    version: 4,
                    highest: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        // Another chain through the trusted version: a fork, though every link holds.
        let mut forked: Vec<SignedManifest> = c[..3].to_vec();
        let mut fork_head = None;
        for v in 4..=6u64 {
            let b = create(
                &key,
                files("fork"),
                forked.last(),
                2,
                Millis(v),
                Millis(1_000_000),
            )
            .unwrap();
            forked.push(b.manifest.clone());
            fork_head = Some(b);
        }
        let err = verify(&policy(&key, Some(&c[4])), &forked, &fork_head.unwrap()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Fork { version: 5, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_sync_does_not_read_below_the_trusted_version() {
        // What was trusted is not re-verified: bytes below it are not read at all, and
        // the verdict says which manifests it vouched for.
        let key = SnapshotKey::from_seed([1; 32]);
        let (mut c, head) = chain(&key, 6);
        c[1].manifest.token = 99;
        let v = verify(&policy(&key, Some(&c[3])), &c, &head).unwrap();
        assert_eq!(v.from_version, 4);
        let vouched: Vec<u64> = v.vouched(&c).iter().map(|m| m.manifest.version).collect();
        assert_eq!(vouched, vec![4, 5, 6]);
        assert_eq!(id_version(&c[2].manifest.id), Some(3));
        assert_eq!(id_version("snap-x-1"), None);
    }
}
