//! `docs/scenario.schema.json`, the JSON Schema that editors (taplo, Even Better TOML) use
//! for scenario files, must describe what `Scenario::parse` accepts:
//!
//! - every file in `scenarios/` and a scenario the fuzzer writes, with every fault kind,
//!   are valid under it;
//! - malformed documents (an unknown action, a misspelt key, a bad duration, …) are
//!   refused by both the schema and the parser;
//! - for one example of every `Action` and every `Fault`, and for every top-level key and
//!   profile timing, the schema and the parser give the same answer on the document and on
//!   hundreds of variations of it (a key dropped, a key of another action or kind added,
//!   each value swapped for good and bad samples);
//! - the defaults the schema shows are the model's.
//!
//! A scenario is TOML; a schema judges JSON. Editors convert the parsed TOML to JSON the
//! way these tests do: tables become objects, arrays of tables arrays of objects.

use jsonschema::Validator;
use lifeboat_model::fault::{Fault, Tamper};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::profile::{FencedParams, Profile, V1Params};
use lifeboat_model::scenario::{Action, NetworkSpec, Scenario, Step};
use lifeboat_model::time::{parse_duration, Millis};
use lifeboat_sim::fuzz::{
    case_scenario, make_fault, FaultPlan, PlannedFault, FAULT_KINDS, FAULT_START,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SCHEMA_FILE: &str = "docs/scenario.schema.json";

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SCHEMA_FILE} is not JSON: {e}"))
}

fn validator() -> Validator {
    jsonschema::draft7::new(&schema())
        .unwrap_or_else(|e| panic!("{SCHEMA_FILE} does not compile as a draft-07 schema: {e}"))
}

/// The schema's errors for `doc`, one line each, with where they are.
fn schema_errors(v: &Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect()
}

/// A TOML document as the JSON an editor hands the schema.
fn toml_to_json(text: &str) -> Value {
    let table: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("not TOML: {e}"));
    serde_json::to_value(table).expect("TOML converts to JSON")
}

/// A JSON document written as TOML, checked to read back as the same document.
fn json_to_toml(doc: &Value) -> String {
    let table: toml::Table = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not expressible in TOML ({e}): {doc}"));
    let text = toml::to_string(&table).expect("a TOML table serializes");
    assert_eq!(&toml_to_json(&text), doc, "TOML round trip changed\n{text}");
    text
}

/// The parser's verdict on a document.
fn parse(doc: &Value) -> Result<Scenario, String> {
    Scenario::parse("doc.toml", &json_to_toml(doc)).map_err(|e| e.to_string())
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    files
}

#[test]
fn the_schema_is_a_valid_draft_07_schema() {
    let s = schema();
    assert_eq!(
        s["$schema"], "http://json-schema.org/draft-07/schema#",
        "taplo and most editors support draft-07 best"
    );
    if let Err(e) = jsonschema::draft7::meta::validate(&s) {
        panic!("{SCHEMA_FILE} is not a valid draft-07 schema: {e}");
    }
    validator();
}

#[test]
fn every_scenario_file_is_valid_under_the_schema() {
    let v = validator();
    let mut failures = Vec::new();
    for path in scenario_files() {
        let text = std::fs::read_to_string(&path).expect("readable scenario");
        for e in schema_errors(&v, &toml_to_json(&text)) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A fuzz plan with every fault kind the fuzzer draws, each with several random draws
/// (so every tamper, endpoint, error code and both host faults appear).
fn every_fault_plan(profile: &Profile) -> FaultPlan {
    let mut faults = Vec::new();
    for kind in 0..FAULT_KINDS {
        for (i, m) in [0, 1, 2, 3, 4, 5, 0x5eed_cafe_f00d].into_iter().enumerate() {
            faults.push(PlannedFault {
                at: FAULT_START + Millis::secs(faults.len() as u64),
                fault: make_fault(kind, i as u64, m, profile),
                duration: Millis(500 + m % 60_000),
            });
        }
    }
    FaultPlan { faults }
}

#[test]
fn a_scenario_the_fuzzer_writes_with_every_fault_kind_is_valid_under_the_schema() {
    let v = validator();
    let schema_kinds: BTreeSet<String> =
        string_set(&schema()["definitions"]["fault"]["properties"]["kind"]["enum"]);
    let broken = FencedParams {
        broken_no_step_down: true,
        ..FencedParams::default()
    };
    for profile in [
        Profile::Fenced(FencedParams::default()),
        Profile::Fenced(broken),
        Profile::OpentridentV1(V1Params::default()),
    ] {
        let plan = every_fault_plan(&profile);
        let scenario = case_scenario(7, &profile, &plan);
        // As `lifeboat fuzz` writes a failure file.
        let body = format!(
            "# lifeboat fuzz failure: seed 7, profile {}.\n# reason\n# Replay: lifeboat replay x.toml\n{}",
            profile.name(),
            scenario.to_toml()
        );
        let written = Scenario::parse("fuzz.toml", &body).unwrap_or_else(|e| panic!("{e}"));
        let errors = schema_errors(&v, &toml_to_json(&body));
        assert!(
            errors.is_empty(),
            "{}:\n{}\n{body}",
            profile.name(),
            errors.join("\n")
        );

        let kinds: BTreeSet<String> = written
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Fault { fault, .. } => Some(fault.kind().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds, schema_kinds,
            "the file should hold every fault kind the schema lists, and no other"
        );
    }
}

fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// A valid scenario to break, as TOML text.
const VALID: &str = r#"
name = "valid"
invariants = ["all"]

[cluster]
nodes = ["a", "b"]
hosts = { a = "h1", b = "h1" }

[network]
latency_max = "30ms"

[profiles.fenced]
lease_ttl = "10s"

[profiles.opentrident-v1]
stale_after = "120s"

[expect]
fenced = "pass"

[[criterion]]
id = 1
name = "a leads"
invariants = ["leader-exclusive"]

[[step]]
action = "start"
node = "a"

[[step]]
action = "wait_for"
condition = "leader"
node = "a"
within = "30s"
criterion = 1

[[step]]
action = "fault"
fault = { kind = "partition", a = "a", b = "lease-store" }
for = "10s"
"#;

#[test]
fn malformed_documents_are_refused_by_the_schema_and_the_parser() {
    let v = validator();
    assert!(schema_errors(&v, &toml_to_json(VALID)).is_empty());
    Scenario::parse("valid.toml", VALID).unwrap_or_else(|e| panic!("{e}"));

    let cases: &[(&str, &str, &str)] = &[
        (
            "an unknown action",
            r#"action = "start""#,
            r#"action = "zap""#,
        ),
        (
            "a misspelt step key",
            r#"within = "30s""#,
            r#"withn = "30s""#,
        ),
        (
            "an unknown step key",
            r#"node = "a"
within"#,
            r#"node = "a"
bogus = 1
within"#,
        ),
        (
            "a key of another action",
            r#"action = "start"
node = "a""#,
            r#"action = "start"
node = "a"
within = "1s""#,
        ),
        ("a missing required step key", r#"within = "30s""#, ""),
        (
            "a node left out for a condition other than sole-leader",
            "node = \"a\"\nwithin",
            "within",
        ),
        (
            "an unknown fault kind",
            r#"kind = "partition""#,
            r#"kind = "partiton""#,
        ),
        (
            "a misspelt fault key",
            r#"b = "lease-store""#,
            r#"bb = "lease-store""#,
        ),
        (
            "an unknown endpoint",
            r#""lease-store""#,
            r#""lease_store""#,
        ),
        ("a misspelt cluster key", "nodes = [", "node = ["),
        ("a misspelt network key", "latency_max", "latency_mx"),
        ("a misspelt fenced timing", "lease_ttl", "lease_tll"),
        ("a misspelt v1 timing", "stale_after", "stale_afer"),
        (
            "an unknown profile table",
            "[profiles.opentrident-v1]",
            "[profiles.v1]",
        ),
        (
            "a misspelt top-level key",
            "invariants = [",
            "invariant = [",
        ),
        (
            "a misspelt criterion key",
            r#"invariants = ["leader"#,
            r#"invariant = ["leader"#,
        ),
        ("a duration without a unit", r#""30s""#, r#""30""#),
        ("an unquoted duration", r#""30s""#, "30"),
        ("a duration with an unknown unit", r#""30s""#, r#""3d""#),
        ("a duration with a space inside", r#""30s""#, r#""1m 30s""#),
        (
            "a duration with a space before its unit",
            r#""30s""#,
            r#""30 s""#,
        ),
        ("a fractional duration", r#""30s""#, r#""1.5s""#),
        ("a negative duration", r#""30s""#, r#""-1s""#),
        ("an upper-case unit", r#""30s""#, r#""30S""#),
        ("an empty duration", r#""30s""#, r#""""#),
        ("a unit alone", r#""30s""#, r#""s""#),
        ("a trailing number", r#""30s""#, r#""30s5""#),
        ("a bad network duration", r#""30ms""#, r#""30""#),
        (
            "a bad timing duration",
            r#"lease_ttl = "10s""#,
            r#"lease_ttl = "10""#,
        ),
        (
            "an upper-case node",
            r#"node = "a"
within"#,
            r#"node = "A"
within"#,
        ),
        (
            "a two-letter node",
            r#"nodes = ["a", "b"]"#,
            r#"nodes = ["a", "bb"]"#,
        ),
        (
            "a node named twice",
            r#"nodes = ["a", "b"]"#,
            r#"nodes = ["a", "a"]"#,
        ),
        ("no nodes", r#"nodes = ["a", "b"]"#, "nodes = []"),
        ("a bad host key", r#"b = "h1" }"#, r#"B = "h1" }"#),
        ("an unknown condition", r#""leader""#, r#""leading""#),
        ("an unknown verdict", r#""pass""#, r#""maybe""#),
        (
            "an unknown expect profile",
            r#"fenced = "pass""#,
            r#"v1 = "pass""#,
        ),
        (
            "an unknown profile",
            r#"name = "valid""#,
            r#"name = "valid"
profile = "v1""#,
        ),
        ("an unknown invariant", r#"["all"]"#, r#"["9"]"#),
        (
            "all in a criterion",
            r#"["leader-exclusive"]"#,
            r#"["all"]"#,
        ),
        (
            "a display form with the wrong number",
            r#"["all"]"#,
            r#"["4 chat-answered"]"#,
        ),
        (
            "a negative seed",
            r#"name = "valid""#,
            r#"name = "valid"
seed = -1"#,
        ),
        (
            "a drift_ppt of 500",
            r#"lease_ttl = "10s""#,
            "drift_ppt = 500",
        ),
        (
            "a loss percent past u8",
            r#"kind = "partition", a = "a", b = "lease-store""#,
            r#"kind = "loss", percent = 256"#,
        ),
        ("a string criterion", "criterion = 1", r#"criterion = "1""#),
        ("no name", r#"name = "valid""#, ""),
    ];
    let mut texts: Vec<(&str, String)> = cases
        .iter()
        .map(|(what, from, to)| {
            assert!(
                VALID.contains(from),
                "{what}: `{from}` is not in the valid scenario"
            );
            (*what, VALID.replacen(from, to, 1))
        })
        .collect();
    let no_steps = &VALID[..VALID.find("[[step]]").expect("steps")];
    texts.push(("no steps", no_steps.to_string()));
    texts.push((
        "an empty step array",
        no_steps.replacen("invariants", "step = []\ninvariants", 1),
    ));
    let mut failures = Vec::new();
    for (what, text) in texts {
        let doc: toml::Table = match toml::from_str(&text) {
            Ok(d) => d,
            Err(e) => panic!("{what}: not TOML: {e}\n{text}"),
        };
        let doc = serde_json::to_value(doc).expect("JSON");
        if schema_errors(&v, &doc).is_empty() {
            failures.push(format!("{what}: the schema accepts it"));
        }
        if Scenario::parse("bad.toml", &text).is_ok() {
            failures.push(format!("{what}: the parser accepts it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- the schema and the parser agree, variant by variant

/// How many `Action` variants there are; `action_variant` must number each.
const ACTION_VARIANTS: usize = 14;
/// How many `Fault` variants there are; `fault_variant` must number each.
const FAULT_VARIANTS: usize = 19;

/// Numbers every `Action` variant. A new variant does not compile here until it is
/// numbered, and then `every_action` must hold an example of it.
fn action_variant(a: &Action) -> usize {
    match a {
        Action::Start { .. } => 0,
        Action::RegenerateManifest => 1,
        Action::CheckManifest => 2,
        Action::Bootstrap { .. } => 3,
        Action::Wait { .. } => 4,
        Action::WaitFor { .. } => 5,
        Action::Hold { .. } => 6,
        Action::Fault { .. } => 7,
        Action::Heal { .. } => 8,
        Action::HealAll => 9,
        Action::Chat { .. } => 10,
        Action::Collect { .. } => 11,
        Action::CompareFiles { .. } => 12,
        Action::Gate { .. } => 13,
    }
}

/// Numbers every `Fault` variant, as `action_variant` does.
fn fault_variant(f: &Fault) -> usize {
    match f {
        Fault::Kill { .. } => 0,
        Fault::Crash { .. } => 1,
        Fault::Stop { .. } => 2,
        Fault::Pause { .. } => 3,
        Fault::Partition { .. } => 4,
        Fault::PartitionOneway { .. } => 5,
        Fault::Isolate { .. } => 6,
        Fault::ClockOffset { .. } => 7,
        Fault::ClockStep { .. } => 8,
        Fault::ClockRate { .. } => 9,
        Fault::Latency { .. } => 10,
        Fault::Loss { .. } => 11,
        Fault::StoreDown => 12,
        Fault::StoreSlow { .. } => 13,
        Fault::StoreTamper { .. } => 14,
        Fault::TelegramErrors { .. } => 15,
        Fault::ForeignPoller => 16,
        Fault::LockFileCorrupt { .. } => 17,
        Fault::DiskSlow { .. } => 18,
    }
}

fn node(c: char) -> NodeId {
    NodeId::parse(&c.to_string()).expect("a node letter")
}

fn every_fault() -> Vec<Fault> {
    let faults = vec![
        Fault::Kill { node: node('a') },
        Fault::Crash { node: node('b') },
        Fault::Stop { node: node('c') },
        Fault::Pause { node: node('a') },
        Fault::Partition {
            a: Endpoint::Node(node('a')),
            b: Endpoint::LeaseStore,
        },
        Fault::PartitionOneway {
            from: Endpoint::Telegram,
            to: Endpoint::Node(node('b')),
        },
        Fault::Isolate { node: node('a') },
        Fault::ClockOffset {
            node: node('a'),
            ms: -90_000,
        },
        Fault::ClockStep {
            node: node('b'),
            ms: 1_800_000,
        },
        Fault::ClockRate {
            node: node('a'),
            ppm: 200,
        },
        Fault::Latency { extra: Millis(250) },
        Fault::Loss { percent: 30 },
        Fault::StoreDown,
        Fault::StoreSlow {
            extra: Millis(2000),
        },
        Fault::StoreTamper {
            tamper: Tamper::ReSign,
        },
        Fault::TelegramErrors { code: 502 },
        Fault::ForeignPoller,
        Fault::LockFileCorrupt { host: "h1".into() },
        Fault::DiskSlow {
            host: "h1".into(),
            extra: Millis(90_500),
        },
    ];
    let numbers: BTreeSet<usize> = faults.iter().map(fault_variant).collect();
    assert_eq!(
        numbers,
        (0..FAULT_VARIANTS).collect(),
        "every_fault must hold one example of every Fault variant"
    );
    faults
}

/// One example of every action, some in more than one form, as scenario files write them
/// (read through the model, so the examples are valid whatever Rust types hold them).
fn every_action() -> Vec<Action> {
    let written = json!([
        { "action": "start", "node": "a" },
        { "action": "regenerate_manifest" },
        { "action": "check_manifest" },
        { "action": "bootstrap", "node": "b" },
        { "action": "wait", "for": "90s" },
        { "action": "wait_for", "condition": "leader", "node": "a", "within": "30s" },
        { "action": "wait_for", "condition": "sole-leader", "within": "30s" },
        { "action": "hold", "condition": "follower", "node": "b", "for": "60s" },
        { "action": "hold", "condition": "sole-leader", "for": "60s" },
        { "action": "heal_all" },
        { "action": "chat", "text": "still one voice?", "within": "1500ms", "from": "b" },
        { "action": "chat", "text": "fire and forget", "within": "0s" },
        { "action": "collect", "what": "primary-pre", "node": "a" },
        { "action": "compare_files", "leader": "a", "restored": "c" },
        { "action": "gate", "criteria": [1], "protects": "stopping the primary" },
    ]);
    let mut actions: Vec<Action> = serde_json::from_value(written).expect("valid actions");
    // Every fault, injected with and without a heal time, and healed.
    for (i, fault) in every_fault().into_iter().enumerate() {
        actions.push(Action::Fault {
            fault: fault.clone(),
            duration: (i % 2 == 0).then_some(Millis(10_000)),
        });
        actions.push(Action::Heal { fault });
    }
    let numbers: BTreeSet<usize> = actions.iter().map(action_variant).collect();
    assert_eq!(
        numbers,
        (0..ACTION_VARIANTS).collect(),
        "every_action must hold one example of every Action variant"
    );
    actions
}

/// A scenario around one step: every node letter exists and criterion 1 is declared, so
/// the only checks left to the parser alone cannot fail.
fn around(step: Value) -> Value {
    let nodes: Vec<String> = ('a'..='z').map(String::from).collect();
    json!({
        "name": "agree",
        "cluster": { "nodes": nodes },
        "criterion": [{ "id": 1, "name": "declared" }],
        "step": [step],
    })
}

const DURATIONS: &[&str] = &[
    "10s",
    "250ms",
    "2m",
    "1h",
    "1m30s",
    "0s",
    "0010s",
    "1s1s",
    "1h1m1s1ms",
    " 10s ",
    "\t10s\n",
    "\u{3000}10s\u{2028}",
    "\u{85}1s\u{a0}",
    "30",
    "",
    " ",
    "s",
    "ms",
    "3d",
    "10S",
    "10Ms",
    "1m 30s",
    "10 s",
    "1.5s",
    "-1s",
    "+1s",
    "\u{ff11}s",
    "1sm",
    "1mh",
    "10s5",
    "s10",
    "\u{feff}10s",
    "\u{200b}10s",
];
const NODES: &[&str] = &["a", "z", "A", "ab", "", "1", "é", " a"];
const ENDPOINTS: &[&str] = &[
    "a",
    "z",
    "lease-store",
    "etcd",
    "telegram",
    "snapshot-store",
    "releases",
    "Lease-store",
    "lease_store",
    "A",
    "",
    "network",
];
const INTEGERS: &[i64] = &[
    -1,
    0,
    1,
    100,
    101,
    255,
    256,
    65535,
    65536,
    4_294_967_295,
    4_294_967_296,
    i64::MAX,
    i64::MIN,
];

/// Good and bad samples for a key, from the kind of value it holds.
fn samples(table: &str, key: &str, current: &Value) -> Vec<Value> {
    let strings = |list: &[&str]| list.iter().map(|s| json!(s)).collect::<Vec<_>>();
    let mut out = match (table, key) {
        (_, "for" | "within" | "extra") => strings(DURATIONS),
        ("step", "node" | "from" | "leader" | "restored") | ("fault", "node") => strings(NODES),
        ("fault", "a" | "b" | "from" | "to") => strings(ENDPOINTS),
        ("fault", "ms" | "ppm" | "percent" | "code") => INTEGERS.iter().map(|i| json!(i)).collect(),
        ("step", "condition") => strings(&[
            "leader",
            "sole-leader",
            "head-matches",
            "Leader",
            "sole_leader",
            "",
        ]),
        ("step", "what") => strings(&["primary-pre", "restore-post", "primary_pre", "pre"]),
        ("fault", "tamper") => strings(&["flip-byte", "escape-path", "flip_byte", "reSign"]),
        ("step", "text" | "phase") | ("fault", "host") => strings(&["", "h1", "two\nlines"]),
        // Another criterion would not be declared; only its type is varied.
        ("step", "criterion") => vec![json!(1)],
        _ => Vec::new(),
    };
    // The wrong type.
    out.push(if current.is_string() {
        json!(30)
    } else {
        json!("30")
    });
    out.push(json!(true));
    out
}

/// Compares the schema's and the parser's answers; returns a line when they differ.
/// `tolerated` says the schema may refuse what the parser accepts (see `unit_variant`).
/// Rules a JSON Schema cannot state, which the parser alone enforces (the schema's
/// `$comment` says so): one key compared with another (`latency_min <= latency_max`), and
/// the upper bound of a duration, which the schema's duration pattern cannot express as a
/// number (`model::limits`: 1 h for latencies, 30 days for every other duration).
fn parser_only_rule(message: &str) -> bool {
    message.contains("expected latency_min <= latency_max")
        || message.contains(": the limit is ")
        || message.contains("which no [[criterion]] table declares")
}

fn compare(v: &Validator, what: &str, doc: &Value, tolerated: bool) -> Option<String> {
    let errors = schema_errors(v, doc);
    let parsed = parse(doc);
    match (errors.is_empty(), &parsed) {
        (true, Ok(_)) | (false, Err(_)) => None,
        (false, Ok(_)) if tolerated => None,
        (true, Err(e)) if parser_only_rule(e) => None,
        (true, Err(e)) => Some(format!(
            "{what}: the schema accepts what the parser refuses ({e})\n{}",
            json_to_toml(doc)
        )),
        (false, Ok(_)) => Some(format!(
            "{what}: the schema refuses what the parser accepts ({})\n{}",
            errors.join("; "),
            json_to_toml(doc)
        )),
    }
}

/// Serde ignores unknown keys of a unit variant of an internally tagged enum even with
/// `deny_unknown_fields` (`heal_all`, `regenerate_manifest`, `check_manifest`,
/// `store-down`, `foreign-poller`). The schema refuses them, as `docs/scenarios.md`
/// promises; adding a key to such a table is the one place the two may differ.
fn unit_variant(table: &Value, tag: &str) -> bool {
    let keys = table.as_object().expect("a table").keys();
    keys.filter(|k| !matches!(k.as_str(), "phase" | "criterion") && *k != tag)
        .count()
        == 0
}

/// Every key of a table in the schema, with a valid value taken from the examples.
fn key_universe(examples: &[Value]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for e in examples {
        for (k, val) in e.as_object().expect("a table") {
            if !out.iter().any(|(have, _)| have == k) {
                out.push((k.clone(), val.clone()));
            }
        }
    }
    out
}

/// All variations of one table, a step (tagged by `action`) or a fault (tagged by `kind`)
/// that `wrap` puts in a scenario, each judged by both; returns how many were judged.
fn vary(
    v: &Validator,
    tag: &str,
    table: &Value,
    universe: &[(String, Value)],
    wrap: &dyn Fn(Value) -> Value,
    disagreements: &mut Vec<String>,
) -> usize {
    let table_kind = if tag == "action" { "step" } else { "fault" };
    let label = format!("{table_kind} `{}`", table[tag].as_str().expect("tagged"));
    let obj = table.as_object().expect("a table");
    let unit = unit_variant(table, tag);
    let mut checked = 0;
    let mut check = |what: String, t: Value, unit_key_added: bool| {
        checked += 1;
        let doc = wrap(t);
        if let Some(d) = compare(v, &what, &doc, unit_key_added) {
            disagreements.push(d);
        } else if unit_key_added && schema_errors(v, &doc).is_empty() {
            disagreements.push(format!(
                "{what}: the schema accepts a key this kind does not have\n{}",
                json_to_toml(&doc)
            ));
        }
    };
    check(format!("{label} as written"), table.clone(), false);
    for k in obj.keys() {
        let mut t = table.clone();
        t.as_object_mut().expect("a table").remove(k);
        check(format!("{label} without `{k}`"), t, false);
    }
    for (k, sample) in universe.iter().chain([&("bogus".to_string(), json!(1))]) {
        if obj.contains_key(k) {
            continue;
        }
        let mut t = table.clone();
        t.as_object_mut()
            .expect("a table")
            .insert(k.clone(), sample.clone());
        check(format!("{label} with `{k}` added"), t, unit);
    }
    for (k, current) in obj {
        if k == tag {
            continue;
        }
        for s in samples(table_kind, k, current) {
            let mut t = table.clone();
            t.as_object_mut()
                .expect("a table")
                .insert(k.clone(), s.clone());
            check(format!("{label} with {k} = {s}"), t, false);
        }
    }
    checked
}

#[test]
fn the_schema_and_the_parser_agree_on_every_action_and_fault() {
    let v = validator();
    let s = schema();
    let steps: Vec<Value> = every_action()
        .into_iter()
        .map(|action| {
            let step = Step {
                phase: Some("phase 1".into()),
                criterion: Some(1),
                action,
            };
            serde_json::to_value(step).expect("a step serializes")
        })
        .collect();
    let faults: Vec<Value> = every_fault()
        .iter()
        .map(|f| serde_json::to_value(f).expect("a fault serializes"))
        .collect();

    // The schema names exactly the model's actions and fault kinds.
    let names = |list: &[Value], tag: &str| -> BTreeSet<String> {
        list.iter()
            .map(|t| t[tag].as_str().expect("tagged").to_string())
            .collect()
    };
    assert_eq!(
        names(&steps, "action"),
        string_set(&s["definitions"]["step"]["properties"]["action"]["enum"])
    );
    assert_eq!(
        names(&faults, "kind"),
        string_set(&s["definitions"]["fault"]["properties"]["kind"]["enum"])
    );
    let step_keys = key_universe(&steps);
    let fault_keys = key_universe(&faults);
    let schema_keys = |def: &str| -> BTreeSet<String> {
        s["definitions"][def]["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        step_keys
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>(),
        schema_keys("step")
    );
    assert_eq!(
        fault_keys
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>(),
        schema_keys("fault")
    );

    let mut disagreements = Vec::new();
    let mut checked = 0;
    for step in &steps {
        checked += vary(&v, "action", step, &step_keys, &around, &mut disagreements);
    }
    let in_a_step = |f: Value| around(json!({ "action": "fault", "fault": f }));
    for fault in &faults {
        checked += vary(
            &v,
            "kind",
            fault,
            &fault_keys,
            &in_a_step,
            &mut disagreements,
        );
    }
    assert!(checked > 1000, "only {checked} documents checked");
    assert!(
        disagreements.is_empty(),
        "{} of {checked} documents judged differently:\n\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
}

/// Sets the value at a JSON pointer, creating tables on the way.
fn with(doc: &Value, pointer: &str, value: Value) -> Value {
    let mut doc = doc.clone();
    let mut at = &mut doc;
    for part in pointer.trim_start_matches('/').split('/') {
        if let Ok(i) = part.parse::<usize>() {
            at = &mut at[i];
        } else {
            if at.get(part).is_none() {
                at.as_object_mut()
                    .expect("a table")
                    .insert(part.into(), json!({}));
            }
            at = &mut at[part];
        }
    }
    *at = value;
    doc
}

#[test]
fn the_schema_and_the_parser_agree_on_every_other_key() {
    let v = validator();
    let base = around(json!({ "action": "heal_all" }));
    let mut cases: Vec<(String, Value)> = Vec::new();
    let mut set = |pointer: &str, values: Vec<Value>| {
        for value in values {
            cases.push((format!("{pointer} = {value}"), with(&base, pointer, value)));
        }
    };
    let strings = |list: &[&str]| list.iter().map(|s| json!(s)).collect::<Vec<_>>();
    let invariant_samples = strings(&[
        "all",
        "chat-answered",
        "3",
        "3 chat-answered",
        " 3 ",
        "\t3 chat-answered\u{3000}",
        "3  chat-answered",
        "4 chat-answered",
        "9",
        "0",
        "03",
        "Chat-Answered",
        "chat_answered",
        "",
        " all",
    ]);
    set(
        "/invariants",
        invariant_samples.iter().map(|i| json!([i])).collect(),
    );
    set(
        "/criterion/0/invariants",
        invariant_samples.iter().map(|i| json!([i])).collect(),
    );
    set("/settle", strings(DURATIONS));
    set("/network/latency_min", strings(DURATIONS));
    set("/network/latency_max", strings(DURATIONS));
    set(
        "/seed",
        vec![json!(-1), json!(0), json!(i64::MAX), json!("1")],
    );
    set(
        "/failure_mode",
        vec![
            json!(-1),
            json!(0),
            json!(22),
            json!(4_294_967_295i64),
            json!(4_294_967_296i64),
        ],
    );
    set(
        "/criterion/0/id",
        vec![
            json!(-1),
            json!(0),
            json!(4_294_967_295i64),
            json!(4_294_967_296i64),
        ],
    );
    set(
        "/profile",
        strings(&["fenced", "opentrident-v1", "v1", "Fenced", ""]),
    );
    set(
        "/expect",
        vec![
            json!({"fenced": "pass", "opentrident-v1": "unknown"}),
            json!({"fenced": "maybe"}),
            json!({"v1": "fail"}),
            json!({"fenced": "PASS"}),
            json!({"opentrident-v1": {"verdict": "fail", "violated": ["leader-exclusive", "2"], "failed_criteria": [1, 2]}}),
            json!({"opentrident-v1": {"verdict": "fail"}}),
            json!({"fenced": {"violated": []}}),
            json!({"fenced": {"verdict": "pass", "violated": ["split-brain"]}}),
            json!({"fenced": {"verdict": "pass", "failed_criteria": [-1]}}),
            json!({"fenced": {"verdict": "pass", "bogus": 1}}),
        ],
    );
    set(
        "/cluster/hostnames",
        vec![
            json!({}),
            json!({"a": "box", "b": "box"}),
            json!({"a": ""}),
            json!({"a": " "}),
            json!({"A": "box"}),
            json!({"a": 1}),
        ],
    );
    set(
        "/profiles/opentrident-v1/docs_claim_conflict_exit_after",
        vec![json!(10), json!(0), json!(-1), json!("10")],
    );
    set("/description", vec![json!(""), json!(1)]);
    set("/name", vec![json!(""), json!(1)]);
    set(
        "/cluster/nodes",
        vec![
            json!([]),
            json!(["a", "a"]),
            json!([
                "z", "y", "x", "w", "v", "u", "t", "s", "r", "q", "p", "o", "n", "m", "l", "k",
                "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"
            ]),
            json!(["A"]),
            json!("a"),
        ],
    );
    set(
        "/cluster/primary",
        vec![json!([]), json!(["a", "b", "a"]), json!(["A"])],
    );
    set(
        "/cluster/hosts",
        vec![
            json!({}),
            json!({"a": "h1", "b": "h1"}),
            json!({"a": ""}),
            json!({"A": "h1"}),
            json!({"ab": "h1"}),
            json!({"a": 1}),
        ],
    );
    set("/cluster/bogus", vec![json!(1)]);
    set("/network/bogus", vec![json!("1s")]);
    set("/profiles/bogus", vec![json!({})]);
    set("/criterion/0/bogus", vec![json!(1)]);
    set(
        "/criterion/0/out_of_scope",
        vec![
            json!([]),
            json!(["real"]),
            json!(["sim", "docker", "real"]),
            json!(["hetzner"]),
            json!(["Real"]),
            json!("real"),
            json!([1]),
        ],
    );
    set("/bogus", vec![json!(1)]);

    // Every profile timing, re-spelt several ways and broken several ways. Values stay the
    // defaults so that the fenced timing rules the parser checks across keys still hold.
    let fenced = serde_json::to_value(FencedParams::default()).expect("JSON");
    let v1 = serde_json::to_value(V1Params::default()).expect("JSON");
    for (table, defaults) in [("fenced", &fenced), ("opentrident-v1", &v1)] {
        for (key, default) in defaults.as_object().expect("a table") {
            let pointer = format!("/profiles/{table}/{key}");
            let values = match default {
                Value::String(d) => {
                    let ms = parse_duration(d).expect("a duration").0;
                    let mut good =
                        vec![format!("{ms}ms"), format!(" {ms}ms\t"), format!("0{ms}ms")];
                    if ms >= 1000 {
                        good.push(format!("{}s{}ms", ms / 1000 - 1, ms % 1000 + 1000));
                    }
                    let mut all: Vec<Value> = good.into_iter().map(Value::from).collect();
                    all.extend(strings(&["", "10", "10 s", "1.5s", "-1s", "3d"]));
                    all
                }
                Value::Bool(b) => vec![json!(!b), json!("true"), json!(1)],
                _ => vec![
                    json!(-1),
                    json!(0),
                    json!(2),
                    json!(499),
                    json!(500),
                    json!(4_294_967_295i64),
                    json!(4_294_967_296i64),
                    json!("2"),
                ],
            };
            set(&pointer, values);
        }
        set(&format!("/profiles/{table}/bogus"), vec![json!(1)]);
    }
    set(
        "/profiles/fenced/broken_no_step_down",
        vec![json!(true), json!(false), json!("yes")],
    );

    let mut disagreements = Vec::new();
    for (what, doc) in &cases {
        if let Some(d) = compare(&v, what, doc, false) {
            disagreements.push(d);
        }
    }
    assert!(cases.len() > 200, "only {} documents checked", cases.len());
    assert!(
        disagreements.is_empty(),
        "{} of {} documents judged differently:\n\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n\n")
    );
}

/// A property's schema, looked up by JSON pointer below `definitions` or the root.
fn property<'a>(s: &'a Value, pointer: &str) -> &'a Value {
    s.pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the schema"))
}

/// Compares the defaults the schema shows for a table with the model's.
fn same_defaults(s: &Value, pointer: &str, model: &Value, hidden: &[&str]) {
    let props = property(s, pointer).as_object().expect("properties");
    let mut model_keys: BTreeSet<String> = model
        .as_object()
        .expect("a table")
        .keys()
        .cloned()
        .collect();
    model_keys.extend(hidden.iter().map(|k| k.to_string()));
    let schema_keys: BTreeSet<String> = props.keys().cloned().collect();
    assert_eq!(
        schema_keys, model_keys,
        "{pointer}: the schema's keys are the model's"
    );
    for (key, prop) in props {
        let Some(model_value) = model.get(key) else {
            continue;
        };
        let shown = prop
            .get("default")
            .unwrap_or_else(|| panic!("{pointer}/{key} has no default"));
        match (shown, model_value) {
            (Value::String(a), Value::String(b)) => assert_eq!(
                parse_duration(a),
                parse_duration(b),
                "{pointer}/{key}: the schema's default is {a}, the model's {b}"
            ),
            (a, b) => assert_eq!(a, b, "{pointer}/{key}: the schema's default differs"),
        }
    }
}

#[test]
fn the_schema_shows_the_model_defaults() {
    let s = schema();
    same_defaults(
        &s,
        "/definitions/fenced-params/properties",
        &serde_json::to_value(FencedParams::default()).expect("JSON"),
        // Skipped when false, and false by default.
        &["broken_no_step_down"],
    );
    let broken = property(
        &s,
        "/definitions/fenced-params/properties/broken_no_step_down",
    );
    assert_eq!(broken["default"], json!(false));
    same_defaults(
        &s,
        "/definitions/v1-params/properties",
        &serde_json::to_value(V1Params::default()).expect("JSON"),
        // The docs' 409 escalation: absent (never) by default.
        &["docs_claim_conflict_exit_after"],
    );
    same_defaults(
        &s,
        "/properties/network/properties",
        &serde_json::to_value(NetworkSpec::default()).expect("JSON"),
        &[],
    );
    // The top-level defaults, as the parser fills them in.
    let minimal = Scenario::parse(
        "min.toml",
        "name = \"m\"\n[cluster]\nnodes = [\"a\"]\n[[step]]\naction = \"heal_all\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let parsed = serde_json::to_value(&minimal).expect("JSON");
    for key in ["seed", "settle", "description"] {
        let shown = &property(&s, &format!("/properties/{key}"))["default"];
        match shown {
            Value::String(d) if key == "settle" => {
                assert_eq!(
                    parse_duration(d),
                    parse_duration(parsed[key].as_str().expect("a duration"))
                )
            }
            other => assert_eq!(other, &parsed[key], "default of {key}"),
        }
    }
}
