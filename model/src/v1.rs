//! OpenTrident's v1 snapshot format and verifier, faithfully, weaknesses included.
//!
//! See `docs/failure-modes.md`: the signature is made over `JSON.stringify` with a
//! property whitelist that empties the nested `files` map, `contentHash` is a plain
//! concatenation of file contents in sorted key order, the verifier trusts the public key
//! embedded in the manifest, never checks per-file hashes, and uses keys as paths. The
//! simulator needs this to show which tampers OpenTrident accepts; `lifeboat snapshot
//! verify` needs it to list those weaknesses in a real bundle.

use crate::snapshot::{is_safe_path, sha256_hex, SnapshotKey, TrustedKey};
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

/// The fixed DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE, the
/// algorithm identifier 1.3.101.112, and a BIT STRING header for the 32 key bytes. Node's
/// `export({type: "spki"})` writes exactly this prefix, so no ASN.1 parser is needed.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The keys of a file map in the order JavaScript's `Array.prototype.sort` puts them
/// (UTF-16 code units), which is the order OpenTrident concatenates contents in. It differs
/// from a `BTreeMap`'s byte order only for characters above U+FFFF against U+E000..U+FFFF,
/// but a faithful verifier must hash the same bytes as the original.
fn js_sorted_keys<'a, I: Iterator<Item = &'a String>>(keys: I) -> Vec<&'a String> {
    let mut keys: Vec<&String> = keys.collect();
    keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    keys
}

/// The civil UTC date and hour of epoch milliseconds (Howard Hinnant's days-to-civil),
/// by hand because the model takes no calendar dependency.
fn utc_yyyymmddhh(ms: Millis) -> String {
    let secs = ms.0 / 1000;
    let hour = (secs % 86_400) / 3600;
    let z = secs / 86_400 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{hour:02}")
}

/// The SPKI PEM of a public key, as Node's `export({type: "spki", format: "pem"})` writes it.
pub fn public_key_pem(key: &TrustedKey) -> String {
    use base64::Engine;
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&hex::decode(key.to_hex()).expect("to_hex is hex"));
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Parses an ed25519 SPKI PEM (the embedded `publicKeyPem`).
pub fn parse_public_key_pem(pem: &str) -> Result<TrustedKey, String> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if !pem.contains("-----BEGIN PUBLIC KEY-----") {
        return Err("publicKeyPem has no `-----BEGIN PUBLIC KEY-----` block".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("publicKeyPem is not valid base64: {e}"))?;
    if der.len() != 44 || der[..12] != ED25519_SPKI_PREFIX {
        return Err(format!(
            "publicKeyPem is not an ed25519 SPKI key: expected 44 DER bytes starting {}, found {} bytes",
            hex::encode(ED25519_SPKI_PREFIX),
            der.len()
        ));
    }
    TrustedKey::from_hex(&hex::encode(&der[12..]))
}

/// The bytes OpenTrident signs: `JSON.stringify(manifest, sortedKeys)`. The whitelist of
/// sorted top-level names applies at every nesting level, and no file name is on it, so
/// `files` always serialises as `{}`: the per-file map is not signed.
pub fn signed_bytes(m: &V1Manifest) -> Vec<u8> {
    let s = |v: &str| serde_json::to_string(v).expect("a string always serializes");
    let parent = m
        .parent_snapshot_id
        .as_deref()
        .map_or("null".to_string(), s);
    format!(
        "{{\"contentHash\":{},\"files\":{{}},\"generatedAt\":{},\"instanceId\":{},\"parentSnapshotId\":{},\"snapshotId\":{},\"version\":{}}}",
        s(&m.content_hash),
        m.generated_at,
        s(&m.instance_id),
        parent,
        s(&m.snapshot_id),
        m.version
    )
    .into_bytes()
}

/// OpenTrident's `contentHash`: SHA-256 of the contents concatenated in sorted key order,
/// with no names or lengths between them.
pub fn content_hash(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut all = Vec::new();
    for k in js_sorted_keys(files.keys()) {
        all.extend_from_slice(&files[k]);
    }
    sha256_hex(&all)
}

/// Makes a v1 bundle as OpenTrident's `generateSnapshot` does.
pub fn create(
    key: &SnapshotKey,
    files: BTreeMap<String, Vec<u8>>,
    parent_id: Option<String>,
    instance_id: &str,
    now_wall: Millis,
) -> V1Bundle {
    let content_hash = content_hash(&files);
    let mut manifest = V1Manifest {
        version: 1,
        snapshot_id: format!("snap-{}-{}", utc_yyyymmddhh(now_wall), &content_hash[..8]),
        parent_snapshot_id: parent_id,
        generated_at: now_wall.0,
        instance_id: instance_id.to_string(),
        content_hash,
        files: files
            .iter()
            .map(|(k, b)| {
                (
                    k.clone(),
                    V1FileEntry {
                        sha256: sha256_hex(b),
                        bytes: b.len() as u64,
                    },
                )
            })
            .collect(),
        signature: String::new(),
        public_key_pem: public_key_pem(&key.public()),
    };
    use base64::Engine;
    manifest.signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign_bytes(&signed_bytes(&manifest)));
    V1Bundle { manifest, files }
}

/// OpenTrident's `verifySnapshot`, faithfully: concatenate the files the (unsigned) map
/// names, compare to `contentHash`, verify the signature against the key embedded in the
/// same manifest. Nothing else is checked; see [`weaknesses`] for what that leaves open.
pub fn verify(b: &V1Bundle) -> Result<(), String> {
    let m = &b.manifest;
    let mut all = Vec::new();
    for k in js_sorted_keys(m.files.keys()) {
        let bytes = b
            .files
            .get(k)
            .ok_or_else(|| format!("file `{k}`: `{k}.gz` is missing from the bundle"))?;
        all.extend_from_slice(bytes);
    }
    let found = sha256_hex(&all);
    if found != m.content_hash {
        return Err(format!(
            "contentHash mismatch: manifest says {}, the files concatenate to {found}",
            m.content_hash
        ));
    }
    let key = parse_public_key_pem(&m.public_key_pem)?;
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&m.signature)
        .map_err(|e| format!("signature is not valid base64: {e}"))?;
    if !key.verify_bytes(&signed_bytes(m), &sig) {
        return Err(format!(
            "signature of {} does not verify against its embedded publicKeyPem (key id {})",
            m.snapshot_id,
            key.key_id()
        ));
    }
    Ok(())
}

/// A structural weakness of a v1 manifest: something an attacker or an accident can change
/// without OpenTrident's verifier noticing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// The whitelist empties `files` in the signed bytes.
    UnsignedFileMap,
    /// The verifier trusts `publicKeyPem` from the manifest it is verifying.
    EmbeddedKey,
    /// The embedded key is not the key the operator pinned.
    NotPinnedKey {
        /// The embedded key's id, or why it could not be read.
        embedded: String,
        /// The pinned key's id.
        pinned: String,
    },
    /// `parentSnapshotId` names the parent by id only.
    ParentByIdOnly,
    /// Per-file `sha256` and `bytes` are neither signed nor checked.
    PerFileHashesUnsigned,
    /// `contentHash` has no names or lengths between contents.
    ContentHashWithoutDelimiters,
    /// `snapshotId` carries only 8 hex characters of `contentHash`.
    ShortId,
    /// Nothing expires and `version` is always 1.
    NoExpiryOrVersion,
    /// `files` keys become paths (`<bundle>/<key>.gz`) unchecked.
    KeysUsedAsPaths {
        /// Keys in this manifest that would escape the bundle or are not plain relative paths.
        unsafe_keys: Vec<String>,
    },
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::UnsignedFileMap => write!(
                f,
                "unsigned file map: `files` is signed as `{{}}` (JSON.stringify's key whitelist empties it), so file names, hashes and sizes can be changed without breaking the signature"
            ),
            Weakness::EmbeddedKey => write!(
                f,
                "embedded key: the signature is checked against `publicKeyPem` from the same manifest, so anyone can re-sign a changed snapshot with their own key and embed it"
            ),
            Weakness::NotPinnedKey { embedded, pinned } => write!(
                f,
                "not the pinned key: `publicKeyPem` is key {embedded}, but the trusted key is {pinned}"
            ),
            Weakness::ParentByIdOnly => write!(
                f,
                "no parent hash: `parentSnapshotId` names the parent by id only, so a different snapshot with the same id can take its place"
            ),
            Weakness::PerFileHashesUnsigned => write!(
                f,
                "per-file hashes unchecked: each `files[key].sha256` and `.bytes` is neither covered by the signature nor compared by the verifier"
            ),
            Weakness::ContentHashWithoutDelimiters => write!(
                f,
                "contentHash without delimiters: `contentHash` hashes the contents concatenated with no names or lengths, so bytes can move between adjacent files unnoticed"
            ),
            Weakness::ShortId => write!(
                f,
                "short id: `snapshotId` carries only 32 bits (8 hex) of `contentHash`, so ids collide and a same-hour, same-content release is clobbered"
            ),
            Weakness::NoExpiryOrVersion => write!(
                f,
                "no expiry or version: the manifest has no expiry and `version` is always 1, so an old or frozen head verifies forever and rollback is undetectable"
            ),
            Weakness::KeysUsedAsPaths { unsafe_keys } => {
                write!(
                    f,
                    "keys used as paths: each `files` key is read as `<bundle>/<key>.gz` unchecked"
                )?;
                if unsafe_keys.is_empty() {
                    Ok(())
                } else {
                    let list: Vec<String> = unsafe_keys.iter().map(|k| format!("`{k}`")).collect();
                    write!(f, "; unsafe keys here: {}", list.join(", "))
                }
            }
        }
    }
}

/// Every weakness of `m`, with `pinned` the key the operator trusts (if any).
///
/// The format's weaknesses are always present; the pinned-key and unsafe-path findings
/// depend on this manifest.
pub fn weaknesses(m: &V1Manifest, pinned: Option<&TrustedKey>) -> Vec<Weakness> {
    let mut out = vec![Weakness::UnsignedFileMap, Weakness::EmbeddedKey];
    if let Some(pinned) = pinned {
        let embedded = match parse_public_key_pem(&m.public_key_pem) {
            Ok(k) if &k == pinned => None,
            Ok(k) => Some(k.key_id()),
            Err(e) => Some(format!("(unreadable: {e})")),
        };
        if let Some(embedded) = embedded {
            out.push(Weakness::NotPinnedKey {
                embedded,
                pinned: pinned.key_id(),
            });
        }
    }
    out.extend([
        Weakness::ParentByIdOnly,
        Weakness::PerFileHashesUnsigned,
        Weakness::ContentHashWithoutDelimiters,
        Weakness::ShortId,
        Weakness::NoExpiryOrVersion,
        Weakness::KeysUsedAsPaths {
            unsafe_keys: m
                .files
                .keys()
                .filter(|k| !is_safe_path(k))
                .cloned()
                .collect(),
        },
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SnapshotKey {
        SnapshotKey::from_seed([n; 32])
    }

    fn files() -> BTreeMap<String, Vec<u8>> {
        [
            ("identity/CLAUDE.md", &b"who I am"[..]),
            ("state/memory-v1.json", b"{\"m\":1}"),
            ("state/planner-v1.json", b"{\"plan\":[1,2]}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
    }

    const AT: Millis = Millis(1_776_423_600_000 + 1234); // 2026-04-17 11:00:01.234 UTC

    fn resign(b: &mut V1Bundle, k: &SnapshotKey) {
        use base64::Engine;
        b.manifest.public_key_pem = public_key_pem(&k.public());
        b.manifest.signature = base64::engine::general_purpose::STANDARD
            .encode(k.sign_bytes(&signed_bytes(&b.manifest)));
    }

    #[test]
    fn civil_hour_matches_known_dates() {
        assert_eq!(utc_yyyymmddhh(Millis(0)), "1970010100");
        assert_eq!(utc_yyyymmddhh(Millis(1_776_423_600_000)), "2026041711");
        assert_eq!(utc_yyyymmddhh(Millis(1_776_427_199_999)), "2026041711");
        assert_eq!(utc_yyyymmddhh(Millis(1_709_249_400_000)), "2024022923");
        assert_eq!(utc_yyyymmddhh(Millis(951_886_800_000)), "2000030105");
        assert_eq!(utc_yyyymmddhh(Millis(4_133_977_200_000)), "2100123123");
    }

    #[test]
    fn create_then_verify_passes() {
        let b = create(&key(1), files(), None, "primary", AT);
        assert_eq!(verify(&b), Ok(()));
        let m = &b.manifest;
        assert_eq!(
            m.snapshot_id,
            format!("snap-2026041711-{}", &m.content_hash[..8])
        );
        assert_eq!(m.generated_at, AT.0);
        assert_eq!(m.files["state/memory-v1.json"].bytes, 7);
        let all: Vec<u8> = files().into_values().flatten().collect();
        assert_eq!(m.content_hash, sha256_hex(&all));
    }

    #[test]
    fn signed_bytes_are_the_whitelisted_json_with_an_empty_file_map() {
        let b = create(
            &key(1),
            files(),
            Some("snap-2026041710-aaaaaaaa".into()),
            "primary",
            AT,
        );
        let m = &b.manifest;
        let want = format!(
            "{{\"contentHash\":\"{}\",\"files\":{{}},\"generatedAt\":{},\"instanceId\":\"primary\",\"parentSnapshotId\":\"snap-2026041710-aaaaaaaa\",\"snapshotId\":\"{}\",\"version\":1}}",
            m.content_hash, AT.0, m.snapshot_id
        );
        assert_eq!(String::from_utf8(signed_bytes(m)).unwrap(), want);
        let first = create(&key(1), files(), None, "a\"b", AT);
        let text = String::from_utf8(signed_bytes(&first.manifest)).unwrap();
        assert!(
            text.contains("\"instanceId\":\"a\\\"b\",\"parentSnapshotId\":null,"),
            "{text}"
        );
    }

    #[test]
    fn pem_is_spki_and_round_trips() {
        let pk = key(3).public();
        let pem = public_key_pem(&pk);
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"),
            "{pem}"
        );
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert_eq!(parse_public_key_pem(&pem), Ok(pk));
        assert!(
            parse_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .unwrap_err()
                .contains("ed25519 SPKI")
        );
    }

    #[test]
    fn verify_accepts_a_changed_file_entry() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        let e = b.manifest.files.get_mut("state/planner-v1.json").unwrap();
        e.sha256 = "0".repeat(64);
        e.bytes = 999_999;
        assert_eq!(verify(&b), Ok(()));
    }

    #[test]
    fn verify_accepts_bytes_moved_between_adjacent_files() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        // "state/memory-v1.json" and "state/planner-v1.json" are adjacent in sorted order:
        // moving the tail of one to the head of the next keeps the concatenation.
        let memory = b.files.get_mut("state/memory-v1.json").unwrap();
        let moved = memory.split_off(3);
        let planner = b.files.get_mut("state/planner-v1.json").unwrap();
        planner.splice(0..0, moved);
        assert_ne!(
            b.files["state/memory-v1.json"],
            files()["state/memory-v1.json"]
        );
        assert_eq!(verify(&b), Ok(()));
    }

    #[test]
    fn verify_accepts_a_resign_with_an_embedded_attacker_key() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        b.files
            .insert("state/memory-v1.json".into(), b"{\"evil\":true}".to_vec());
        b.manifest.content_hash = content_hash(&b.files);
        resign(&mut b, &key(66));
        assert_eq!(verify(&b), Ok(()));
    }

    #[test]
    fn verify_refuses_a_flipped_content_byte() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        b.files.get_mut("identity/CLAUDE.md").unwrap()[0] ^= 1;
        let err = verify(&b).unwrap_err();
        assert!(err.contains("contentHash mismatch"), "{err}");
    }

    #[test]
    fn verify_refuses_a_changed_signed_field_and_a_foreign_signature() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        b.manifest.parent_snapshot_id = Some("snap-2026041710-00000000".into());
        assert!(verify(&b).unwrap_err().contains("does not verify"));
        let mut b = create(&key(1), files(), None, "primary", AT);
        let pem = b.manifest.public_key_pem.clone();
        resign(&mut b, &key(66));
        b.manifest.public_key_pem = pem;
        assert!(verify(&b).unwrap_err().contains("embedded publicKeyPem"));
    }

    #[test]
    fn verify_refuses_a_missing_file_naming_it() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        b.files.remove("state/memory-v1.json");
        assert!(verify(&b)
            .unwrap_err()
            .contains("`state/memory-v1.json.gz` is missing"));
    }

    #[test]
    fn js_sort_is_utf16_order() {
        // U+FF61 sorts before U+1F600 in bytes but after it in UTF-16 code units.
        let a = "\u{FF61}".to_string();
        let b = "\u{1F600}".to_string();
        assert!(a < b);
        assert_eq!(js_sorted_keys([&a, &b].into_iter()), vec![&b, &a]);
    }

    #[test]
    fn weaknesses_name_every_field_and_the_unpinned_key() {
        let mut b = create(&key(1), files(), None, "primary", AT);
        b.manifest.files.insert(
            "../x".into(),
            V1FileEntry {
                sha256: String::new(),
                bytes: 0,
            },
        );
        let pinned = key(1).public();
        let w = weaknesses(&b.manifest, Some(&pinned));
        assert!(!w.iter().any(|w| matches!(w, Weakness::NotPinnedKey { .. })));
        assert_eq!(w.len(), 8);
        let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        for field in [
            "`files`",
            "`publicKeyPem`",
            "`parentSnapshotId`",
            "`contentHash`",
            "`snapshotId`",
            "`version`",
            "`../x`",
        ] {
            assert!(
                text.iter().any(|t| t.contains(field)),
                "{field} not named in {text:#?}"
            );
        }
        let other = key(2).public();
        let w = weaknesses(&b.manifest, Some(&other));
        assert!(w.contains(&Weakness::NotPinnedKey {
            embedded: pinned.key_id(),
            pinned: other.key_id()
        }));
    }
}
