//! OpenTrident's v1 snapshot format and verifier, faithfully, weaknesses included.
//!
//! See `opentrident-protocol.md` §3: the signature is made over `JSON.stringify` with a
//! property whitelist that empties the nested `files` map, `contentHash` is a plain
//! concatenation of file contents in sorted key order, the verifier trusts the public key
//! embedded in the manifest, never checks per-file hashes, and uses keys as paths. The
//! simulator needs this to show which tampers OpenTrident accepts; `lifeboat snapshot
//! verify` needs it to list those weaknesses in a real bundle.

use crate::snapshot::{SnapshotKey, TrustedKey};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One file's entry in a v1 manifest (`files[key]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1FileEntry {
    /// SHA-256 hex of the file (never checked by OpenTrident's verifier).
    pub sha256: String,
    /// Size in bytes (never checked either).
    pub bytes: u64,
}

/// A v1 `manifest.json`, field names as OpenTrident writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Manifest {
    /// Always 1.
    pub version: u32,
    /// `snap-YYYYMMDDHH-<8 hex of contentHash>`.
    pub snapshot_id: String,
    /// The previous head's id, by id only.
    pub parent_snapshot_id: Option<String>,
    /// Epoch ms.
    pub generated_at: u64,
    /// `$OPENTRIDENT_INSTANCE_ID`, default `primary`.
    pub instance_id: String,
    /// SHA-256 of the plain concatenation of file contents in sorted key order.
    pub content_hash: String,
    /// Per-file hashes (not signed: the whitelist empties this map).
    pub files: BTreeMap<String, V1FileEntry>,
    /// Base64 ed25519 signature.
    pub signature: String,
    /// The signer's public key, embedded (and trusted by the verifier).
    pub public_key_pem: String,
}

/// A v1 bundle: the manifest and the (decompressed) file contents by key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Bundle {
    /// `manifest.json`.
    pub manifest: V1Manifest,
    /// `<key>.gz` contents, decompressed, by key.
    pub files: BTreeMap<String, Vec<u8>>,
}
