//! Property tests for the snapshot chain: every untampered chain verifies and restores, and
//! every tamper class the design names is refused with the error that names it. The v1
//! verifier is run on the same tampers to show which ones OpenTrident would accept.

use lifeboat_model::snapshot::{
    self, Bundle, FileEntry, Manifest, SignedManifest, SnapshotKey, TrustState, VerifyError,
    VerifyPolicy,
};
use lifeboat_model::time::Millis;
use lifeboat_model::v1;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Files = BTreeMap<String, Vec<u8>>;

const T0: u64 = 1_776_423_600_000;
const STEP: u64 = 3_600_000;
const TTL: Millis = Millis(24 * 3_600_000);

fn config() -> ProptestConfig {
    // Each case signs and verifies up to eight manifests; 48 cases per property keeps the
    // whole file to a few seconds while still covering varied shapes.
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

/// A file map with 2..=5 files (so adjacent pairs exist), each with 1..40 bytes.
fn files() -> impl Strategy<Value = Files> {
    let names = vec![
        "a",
        "b.json",
        "c/d",
        "c/e.txt",
        "identity/CLAUDE.md",
        "state/planner-v1.json",
        "z",
    ];
    (
        prop::sample::subsequence(names, 2..=5),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 5),
    )
        .prop_map(|(names, contents)| {
            names
                .into_iter()
                .zip(contents)
                .map(|(n, c)| (n.to_string(), c))
                .collect()
        })
}

fn seeds() -> impl Strategy<Value = ([u8; 32], [u8; 32])> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_filter("distinct keys", |(a, b)| a != b)
}

struct Chain {
    key: SnapshotKey,
    manifests: Vec<SignedManifest>,
    head: Bundle,
}

fn build(key: &SnapshotKey, states: &[Files]) -> Chain {
    let mut manifests: Vec<SignedManifest> = Vec::new();
    let mut head = None;
    for (i, files) in states.iter().enumerate() {
        let b = snapshot::create(
            key,
            files.clone(),
            manifests.last(),
            i as u64 + 1,
            Millis(T0 + i as u64 * STEP),
            TTL,
        )
        .expect("safe paths and rising tokens");
        manifests.push(b.manifest.clone());
        head = Some(b);
    }
    Chain {
        key: key.clone(),
        manifests,
        head: head.expect("at least one state"),
    }
}

impl Chain {
    fn policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            trusted: self.key.public(),
            state: TrustState::default(),
            now: self.head.manifest.manifest.created_at + Millis(1),
        }
    }
    fn verify(&self) -> Result<snapshot::Verified, VerifyError> {
        snapshot::verify(&self.policy(), &self.manifests, &self.head)
    }
    /// Replaces the head's manifest everywhere it appears (a re-signed head is served
    /// together with its chain).
    fn set_head_manifest(&mut self, m: SignedManifest) {
        *self.manifests.last_mut().unwrap() = m.clone();
        self.head.manifest = m;
    }
}

fn sign(key: &SnapshotKey, manifest: Manifest) -> SignedManifest {
    use base64::Engine;
    let signature = base64::engine::general_purpose::STANDARD
        .encode(key.sign_bytes(&snapshot::signed_bytes(&manifest)));
    SignedManifest {
        manifest,
        signature,
    }
}

fn mismatch_path(r: Result<snapshot::Verified, VerifyError>) -> String {
    match r {
        Err(VerifyError::FileMismatch { path, .. }) => path,
        other => panic!("expected FileMismatch, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn untampered_chains_verify_and_restore(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 1..8),
    ) {
        let c = build(&SnapshotKey::from_seed(seed), &states);
        let v = c.verify().expect("an untampered chain verifies");
        prop_assert_eq!(v.version, states.len() as u64);
        prop_assert_eq!(&v.state.highest, &Some((v.version, snapshot::digest(&c.head.manifest))));
        let restored = snapshot::restore(&c.head, &v).expect("a verified head restores");
        prop_assert_eq!(&restored, states.last().unwrap());
        // Verifying the same head again with the persisted state still passes.
        let mut p = c.policy();
        p.state = v.state;
        prop_assert!(snapshot::verify(&p, &c.manifests, &c.head).is_ok());
    }

    #[test]
    fn a_changed_byte_is_refused_naming_the_file(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 1..4),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &states);
        let name = pick.get(&c.head.files.keys().cloned().collect::<Vec<_>>()).clone();
        let bytes = c.head.files.get_mut(&name).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert_eq!(mismatch_path(c.verify()), name);
    }

    #[test]
    fn bytes_moved_between_adjacent_files_are_refused(
        seed in any::<[u8; 32]>(),
        state in files(),
        pair in any::<prop::sample::Index>(),
        count in any::<prop::sample::Index>(),
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &[state]);
        let names: Vec<String> = c.head.files.keys().cloned().collect();
        let i = pair.index(names.len() - 1);
        let (left, right) = (&names[i], &names[i + 1]);
        let from = c.head.files.get_mut(left).unwrap();
        let n = count.index(from.len()) + 1;
        let moved = from.split_off(from.len() - n);
        c.head.files.get_mut(right).unwrap().splice(0..0, moved);
        let path = mismatch_path(c.verify());
        prop_assert!(&path == left || &path == right, "{path}");
    }

    #[test]
    fn a_renamed_file_is_refused(
        seed in any::<[u8; 32]>(),
        state in files(),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &[state]);
        let name = pick.get(&c.head.files.keys().cloned().collect::<Vec<_>>()).clone();
        let bytes = c.head.files.remove(&name).unwrap();
        let renamed = format!("{name}.renamed");
        c.head.files.insert(renamed.clone(), bytes);
        prop_assert_eq!(mismatch_path(c.verify()), renamed);
    }

    #[test]
    fn a_split_file_is_refused(
        seed in any::<[u8; 32]>(),
        state in files(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &[state]);
        let name = pick.get(&c.head.files.keys().cloned().collect::<Vec<_>>()).clone();
        let bytes = c.head.files.get_mut(&name).unwrap();
        let tail = bytes.split_off(at.index(bytes.len()));
        c.head.files.insert(format!("{name}.part2"), tail);
        let path = mismatch_path(c.verify());
        prop_assert!(path == name || path == format!("{name}.part2"), "{path}");
    }

    #[test]
    fn two_merged_files_are_refused(
        seed in any::<[u8; 32]>(),
        state in files(),
        pair in any::<prop::sample::Index>(),
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &[state]);
        let names: Vec<String> = c.head.files.keys().cloned().collect();
        let i = pair.index(names.len() - 1);
        let second = c.head.files.remove(&names[i + 1]).unwrap();
        c.head.files.get_mut(&names[i]).unwrap().extend(second);
        let path = mismatch_path(c.verify());
        prop_assert!(path == names[i] || path == names[i + 1], "{path}");
    }

    #[test]
    fn a_resignature_with_another_key_is_refused(
        (seed, attacker) in seeds(),
        states in prop::collection::vec(files(), 1..4),
        change_key_id in any::<bool>(),
    ) {
        let mut c = build(&SnapshotKey::from_seed(seed), &states);
        let attacker = SnapshotKey::from_seed(attacker);
        // The attacker swaps a file and fixes up the manifest so the files match it.
        let name = c.head.files.keys().next().unwrap().clone();
        c.head.files.insert(name.clone(), b"attacker".to_vec());
        let mut m = c.head.manifest.manifest.clone();
        m.files.insert(name, FileEntry { sha256: snapshot::sha256_hex(b"attacker"), bytes: 8 });
        if change_key_id {
            m.key_id = attacker.public().key_id();
        }
        c.set_head_manifest(sign(&attacker, m));
        match (change_key_id, c.verify()) {
            (true, Err(VerifyError::UntrustedKey { found, trusted, .. })) => {
                prop_assert_eq!(found, attacker.public().key_id());
                prop_assert_eq!(trusted, c.key.public().key_id());
            }
            (false, Err(VerifyError::BadSignature { trusted, .. })) => {
                prop_assert_eq!(trusted, c.key.public().key_id());
            }
            (_, other) => prop_assert!(false, "expected a key or signature refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_rollback_to_an_older_head_is_refused(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 2..8),
        back in any::<prop::sample::Index>(),
    ) {
        let key = SnapshotKey::from_seed(seed);
        let full = build(&key, &states);
        let seen = full.verify().expect("untampered").state;
        let older = build(&key, &states[..back.index(states.len() - 1) + 1]);
        let mut p = older.policy();
        p.state = seen;
        match snapshot::verify(&p, &older.manifests, &older.head) {
            Err(VerifyError::Rollback { version, highest, .. }) => {
                prop_assert_eq!(version, older.head.manifest.manifest.version);
                prop_assert_eq!(highest, states.len() as u64);
            }
            other => prop_assert!(false, "expected Rollback, got {other:?}"),
        }
    }

    #[test]
    fn a_fork_at_a_trusted_version_is_refused(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 1..6),
        fork_at in any::<prop::sample::Index>(),
        other in files(),
        extra in prop::collection::vec(files(), 0..3),
    ) {
        let key = SnapshotKey::from_seed(seed);
        let mine = build(&key, &states);
        let seen = mine.verify().expect("untampered").state;
        // A second writer with the same parent publishes a different snapshot at the same
        // version, then perhaps builds on it.
        let at = fork_at.index(states.len());
        let mut theirs_states = states[..at].to_vec();
        theirs_states.push(other.clone());
        theirs_states.extend(extra);
        let theirs = build(&key, &theirs_states);
        prop_assume!(theirs.manifests[at] != mine.manifests[at]);
        let mut p = theirs.policy();
        p.state = seen;
        match snapshot::verify(&p, &theirs.manifests, &theirs.head) {
            Err(VerifyError::Fork { version, .. }) => prop_assert_eq!(version, states.len() as u64),
            // A fork that ends below the trusted version is also a rollback.
            Err(VerifyError::Rollback { .. }) => {
                prop_assert!(theirs_states.len() < states.len())
            }
            other => prop_assert!(false, "expected Fork, got {other:?}"),
        }
    }

    #[test]
    fn a_different_digest_trusted_at_a_chain_version_is_a_fork(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 1..6),
        at in any::<prop::sample::Index>(),
    ) {
        let c = build(&SnapshotKey::from_seed(seed), &states);
        let v = at.index(states.len()) as u64 + 1;
        let mut p = c.policy();
        p.state = TrustState { highest: Some((v, "0".repeat(64))) };
        match snapshot::verify(&p, &c.manifests, &c.head) {
            Err(VerifyError::Fork { version, found, .. }) => {
                prop_assert_eq!(version, v);
                prop_assert_eq!(found, snapshot::digest(&c.manifests[v as usize - 1]));
            }
            other => prop_assert!(false, "expected Fork, got {other:?}"),
        }
    }

    #[test]
    fn an_expired_head_is_refused(
        seed in any::<[u8; 32]>(),
        states in prop::collection::vec(files(), 1..4),
        late in 1u64..10_000_000,
    ) {
        let c = build(&SnapshotKey::from_seed(seed), &states);
        let mut p = c.policy();
        p.now = c.head.manifest.manifest.expires_at + Millis(late);
        let r = snapshot::verify(&p, &c.manifests, &c.head);
        prop_assert!(matches!(r, Err(VerifyError::Expired { .. })), "{r:?}");
        p.now = c.head.manifest.manifest.expires_at;
        prop_assert!(snapshot::verify(&p, &c.manifests, &c.head).is_ok());
    }

    #[test]
    fn v1_accepts_what_opentrident_accepts_and_lifeboat_refuses(
        (seed, attacker) in seeds(),
        state in files(),
        evil in prop::collection::vec(any::<u8>(), 1..40),
    ) {
        let key = SnapshotKey::from_seed(seed);
        let attacker = SnapshotKey::from_seed(attacker);
        let name = state.keys().next().unwrap().clone();

        // The file map is not signed: rewriting an entry keeps v1 happy...
        let mut b1 = v1::create(&key, state.clone(), None, "primary", Millis(T0));
        b1.manifest.files.get_mut(&name).unwrap().sha256 = snapshot::sha256_hex(&evil);
        prop_assert_eq!(v1::verify(&b1), Ok(()));
        // ...while lifeboat signs its file map.
        let mut c = build(&key, std::slice::from_ref(&state));
        let mut m = c.head.manifest.clone();
        m.manifest.files.get_mut(&name).unwrap().sha256 = snapshot::sha256_hex(&evil);
        c.set_head_manifest(m);
        let r = c.verify();
        prop_assert!(matches!(r, Err(VerifyError::BadSignature { .. })), "{r:?}");

        // Any content, re-signed with the attacker's key embedded: v1 accepts...
        let mut forged = state.clone();
        forged.insert(name.clone(), evil.clone());
        let b1 = v1::create(&attacker, forged, None, "primary", Millis(T0));
        prop_assert_eq!(v1::verify(&b1), Ok(()));
        let unpinned = v1::weaknesses(&b1.manifest, Some(&key.public()))
            .iter()
            .any(|w| matches!(w, v1::Weakness::NotPinnedKey { .. }));
        prop_assert!(unpinned, "the attacker's key is reported as not the pinned key");
        // ...lifeboat pins the key from the bootstrap manifest.
        let mut c = build(&key, std::slice::from_ref(&state));
        c.head.files.insert(name.clone(), evil.clone());
        let mut m = c.head.manifest.manifest.clone();
        m.files.insert(name, FileEntry { sha256: snapshot::sha256_hex(&evil), bytes: evil.len() as u64 });
        m.key_id = attacker.public().key_id();
        c.set_head_manifest(sign(&attacker, m));
        let r = c.verify();
        prop_assert!(matches!(r, Err(VerifyError::UntrustedKey { .. })), "{r:?}");
    }

    #[test]
    fn v1_accepts_bytes_moved_between_adjacent_files(
        seed in any::<[u8; 32]>(),
        state in files(),
        pair in any::<prop::sample::Index>(),
    ) {
        let mut b = v1::create(&SnapshotKey::from_seed(seed), state, None, "primary", Millis(T0));
        let names: Vec<String> = b.files.keys().cloned().collect();
        let i = pair.index(names.len() - 1);
        let last = b.files.get_mut(&names[i]).unwrap().pop().unwrap();
        b.files.get_mut(&names[i + 1]).unwrap().insert(0, last);
        prop_assert_eq!(v1::verify(&b), Ok(()));
    }
}

/// A manifest that lists a path escaping the bundle, correctly signed by the trusted key
/// (`create` refuses such paths, so it is built by hand): verify must still refuse it.
#[test]
fn a_signed_manifest_with_an_escaping_path_is_refused() {
    let key = SnapshotKey::from_seed([9; 32]);
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "./a",
        "a\\..\\x",
    ] {
        let manifest = Manifest {
            id: "snap-1-00000000".into(),
            version: 1,
            parent: None,
            token: 1,
            created_at: Millis(T0),
            expires_at: Millis(T0) + TTL,
            files: [(
                bad.to_string(),
                FileEntry {
                    sha256: snapshot::sha256_hex(b"x"),
                    bytes: 1,
                },
            )]
            .into(),
            key_id: key.public().key_id(),
        };
        let signed = sign(&key, manifest);
        let head = Bundle {
            manifest: signed.clone(),
            files: [(bad.to_string(), b"x".to_vec())].into(),
        };
        let policy = VerifyPolicy {
            trusted: key.public(),
            state: TrustState::default(),
            now: Millis(T0),
        };
        match snapshot::verify(&policy, &[signed], &head) {
            Err(VerifyError::UnsafePath { path, .. }) => assert_eq!(path, bad),
            other => panic!("{bad}: expected UnsafePath, got {other:?}"),
        }
    }
    assert!(snapshot::create(
        &key,
        [("../x".to_string(), vec![1])].into(),
        None,
        1,
        Millis(T0),
        TTL
    )
    .is_err());
}

/// An unlisted escaping path smuggled into the bundle's files next to a good manifest.
#[test]
fn an_escaping_file_next_to_a_good_manifest_is_refused() {
    let key = SnapshotKey::from_seed([9; 32]);
    let mut c = build(&key, &[[("a".to_string(), b"ok".to_vec())].into()]);
    c.head.files.insert("../x".into(), b"evil".to_vec());
    match c.verify() {
        Err(VerifyError::UnsafePath { path, .. }) => assert_eq!(path, "../x"),
        other => panic!("expected UnsafePath, got {other:?}"),
    }
}
