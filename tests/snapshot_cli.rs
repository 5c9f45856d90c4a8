//! `lifeboat snapshot …` and `lifeboat manifest …` run as a user runs them: the built
//! binary, real files in a temporary directory, exit codes and output checked.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn both(&self) -> String {
        format!("{}\n{}", self.out, self.err)
    }
}

fn lifeboat(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the lifeboat binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> Run {
    let r = lifeboat(dir, args);
    assert_eq!(r.code, 0, "lifeboat {args:?} failed:\n{}", r.both());
    r
}

/// A work directory with a state directory and a key; returns the public key hex.
fn setup() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(state.join("playbooks")).unwrap();
    std::fs::write(state.join("planner-v1.json"), b"{\"plan\":[1,2,3]}").unwrap();
    std::fs::write(state.join("memory-v1.json"), b"{\"m\":\"remember\"}").unwrap();
    std::fs::write(state.join("playbooks/playbook-store.json"), b"[]").unwrap();
    let r = ok(tmp.path(), &["snapshot", "keygen", "--out", "snap.key"]);
    let public = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("keygen prints the public key")
        .trim()
        .to_string();
    (tmp, public)
}

fn head_id(bundle: &Path) -> String {
    let text = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["manifest"]["id"].as_str().unwrap().to_string()
}

fn create(dir: &Path, out: &str, parent: Option<&str>) -> PathBuf {
    let mut args = vec![
        "snapshot", "create", "--from", "state", "--out", out, "--key", "snap.key",
    ];
    if let Some(p) = parent {
        args.extend(["--parent", p]);
    }
    ok(dir, &args);
    dir.join(out)
}

#[test]
fn keygen_writes_a_private_seed_and_refuses_to_overwrite() {
    let (tmp, public) = setup();
    let key = tmp.path().join("snap.key");
    let seed = std::fs::read_to_string(&key).unwrap();
    assert_eq!(seed.trim().len(), 64);
    assert_ne!(
        seed.trim(),
        public,
        "the key file holds the seed, not the public key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let r = lifeboat(tmp.path(), &["snapshot", "keygen", "--out", "snap.key"]);
    assert_eq!(r.code, 2, "{}", r.both());
    assert!(r.err.contains("refusing to overwrite"), "{}", r.err);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), seed);
}

#[test]
fn create_then_verify_passes() {
    let (tmp, public) = setup();
    let bundle = create(tmp.path(), "snap1", None);
    assert_eq!(
        std::fs::read(bundle.join("files/playbooks/playbook-store.json")).unwrap(),
        b"[]"
    );
    let r = ok(
        tmp.path(),
        &["snapshot", "verify", "snap1", "--key", &public],
    );
    let id = head_id(&bundle);
    assert!(
        r.out
            .contains(&format!("verified {id} (version 1, 3 files)")),
        "{}",
        r.out
    );
}

#[test]
fn a_flipped_byte_is_refused_naming_the_file() {
    let (tmp, public) = setup();
    let bundle = create(tmp.path(), "snap1", None);
    let victim = bundle.join("files/memory-v1.json");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&victim, bytes).unwrap();
    let r = lifeboat(
        tmp.path(),
        &["snapshot", "verify", "snap1", "--key", &public],
    );
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(r.both().contains("memory-v1.json"), "{}", r.both());
    assert!(!r.both().contains("planner-v1.json"), "{}", r.both());
}

#[test]
fn a_chain_of_two_verifies_and_the_trust_state_refuses_rolling_back() {
    let (tmp, public) = setup();
    create(tmp.path(), "snap1", None);
    std::fs::write(tmp.path().join("state/planner-v1.json"), b"{\"plan\":[4]}").unwrap();
    let snap2 = create(tmp.path(), "snap2", Some("snap1"));
    let chain = std::fs::read_to_string(snap2.join("chain.json")).unwrap();
    let chain: Vec<serde_json::Value> = serde_json::from_str(&chain).unwrap();
    assert_eq!(chain.len(), 2);

    let trust = ["--key", &public, "--trust-state", "trust.json"];
    let r = ok(
        tmp.path(),
        &[&["snapshot", "verify", "snap2"][..], &trust].concat(),
    );
    assert!(r.out.contains("(version 2, 3 files)"), "{}", r.out);
    assert!(tmp.path().join("trust.json").exists());
    let r = lifeboat(
        tmp.path(),
        &[&["snapshot", "verify", "snap1"][..], &trust].concat(),
    );
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(r.err.contains("rollback"), "{}", r.err);
}

#[test]
fn verify_with_a_wrong_key_is_refused() {
    let (tmp, _) = setup();
    create(tmp.path(), "snap1", None);
    let other = ok(tmp.path(), &["snapshot", "keygen", "--out", "other.key"]);
    let other = other
        .out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_string();
    let r = lifeboat(
        tmp.path(),
        &["snapshot", "verify", "snap1", "--key", &other],
    );
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(r.err.contains("trusted key"), "{}", r.err);
}

#[test]
fn a_v1_bundle_lists_its_weaknesses_though_opentrident_accepts_it() {
    let (tmp, public) = setup();
    ok(
        tmp.path(),
        &[
            "snapshot",
            "v1-create",
            "--from",
            "state",
            "--out",
            "v1",
            "--key",
            "snap.key",
        ],
    );
    assert!(tmp
        .path()
        .join("v1/playbooks/playbook-store.json.gz")
        .exists());
    let r = lifeboat(tmp.path(), &["snapshot", "verify", "v1", "--key", &public]);
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(
        r.out
            .contains("OpenTrident's own verifier (verifySnapshot) ACCEPTS"),
        "{}",
        r.out
    );
    assert!(r.out.contains("unsigned file map"), "{}", r.out);
    assert!(r.out.contains("embedded key"), "{}", r.out);
    assert!(!r.out.contains("not the pinned key"), "{}", r.out);
}

#[test]
fn a_tampered_v1_file_map_is_still_accepted_by_the_v1_verifier() {
    let (tmp, _) = setup();
    ok(
        tmp.path(),
        &[
            "snapshot",
            "v1-create",
            "--from",
            "state",
            "--out",
            "v1",
            "--key",
            "snap.key",
        ],
    );
    let path = tmp.path().join("v1/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["files"]["memory-v1.json"]["sha256"] = "0".repeat(64).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let other = ok(tmp.path(), &["snapshot", "keygen", "--out", "other.key"]);
    let other = other
        .out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap();
    let r = lifeboat(
        tmp.path(),
        &["snapshot", "verify", "v1", "--key", other.trim()],
    );
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(r.out.contains("ACCEPTS"), "{}", r.out);
    assert!(r.out.contains("not the pinned key"), "{}", r.out);
    assert!(
        r.out.contains("files[`memory-v1.json`] says sha256 0000"),
        "{}",
        r.out
    );
}

#[test]
fn manifest_check_refuses_a_stale_manifest() {
    let (tmp, public) = setup();
    create(tmp.path(), "snap1", None);
    ok(
        tmp.path(),
        &[
            "manifest",
            "create",
            "--bundle",
            "snap1",
            "--key",
            &public,
            "--url",
            "https://example.invalid/snap1",
            "--image",
            "opentrident:latest",
            "--setting",
            "TELEGRAM_BOT_TOKEN",
            "--out",
            "bootstrap.json",
        ],
    );
    let head1 = head_id(&tmp.path().join("snap1"));
    let r = ok(
        tmp.path(),
        &["manifest", "check", "bootstrap.json", "--head", &head1],
    );
    assert!(
        r.out.contains("pre-staged"),
        "the local tag is warned about: {}",
        r.out
    );

    std::fs::write(tmp.path().join("state/memory-v1.json"), b"{}").unwrap();
    let snap2 = create(tmp.path(), "snap2", Some("snap1"));
    let head2 = head_id(&snap2);
    std::fs::write(tmp.path().join("snapshot-head"), &head2).unwrap();
    let r = lifeboat(
        tmp.path(),
        &[
            "manifest",
            "check",
            "bootstrap.json",
            "--head-file",
            "snapshot-head",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.both());
    assert!(
        r.err.contains(&format!(
            "stale: it names {head1} but the snapshot head is {head2}"
        )),
        "{}",
        r.err
    );
    // The stale manifest's key is still right: the chain verifies under it.
    ok(
        tmp.path(),
        &[
            "snapshot",
            "verify",
            "snap2",
            "--manifest",
            "bootstrap.json",
        ],
    );
}

#[test]
fn manifest_check_names_line_and_column_of_malformed_json() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bootstrap.json"),
        "{\n  \"version\": 1,\n  \"snapshot_head\": \"snap-1-00000000\"\n  \"image\": \"x\"\n}\n",
    )
    .unwrap();
    let r = lifeboat(
        tmp.path(),
        &["manifest", "check", "bootstrap.json", "--head", "x"],
    );
    assert_eq!(r.code, 2, "{}", r.both());
    assert!(
        r.err.contains("bootstrap.json: line 4, column 3"),
        "{}",
        r.err
    );
}
