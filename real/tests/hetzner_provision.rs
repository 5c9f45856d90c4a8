//! Provisioning for the live drill (`lifeboat_real::hetzner::cloud`) against the local
//! Hetzner Cloud double, over real HTTP on 127.0.0.1.
//!
//! The double records every request; these tests read that record back one request at a
//! time (method, path, query, bearer token, JSON body), so what the backend would send to
//! the paid API is pinned down, not just that the calls succeed.

use lifeboat_real::clients::hetzner::{NewServer, ServerInfo};
use lifeboat_real::clients::HetznerClient;
use lifeboat_real::doubles::hetzner::RecordedRequest;
use lifeboat_real::doubles::HetznerDouble;
use lifeboat_real::hetzner::cloud::{self, LABEL, NODE_LABEL, RUN_LABEL, USER_DATA_REDACTED};
use lifeboat_real::target::Target;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "HETZNERprovisionTestToken0000000000000000000000000000000000000000";
const OPERATOR_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxpZmVib2F0LXByb3Zpc2lvbi10ZXN0LWtleS1ub3QtcmVhbA operator@test";
const FAST: Duration = Duration::from_millis(5);
const PATIENT: Duration = Duration::from_secs(5);

async fn start() -> (HetznerDouble, SocketAddr, HetznerClient) {
    let double = HetznerDouble::new(TOKEN);
    let (addr, _task) = double
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let client = HetznerClient::new(&format!("http://{addr}/v1"), TOKEN).unwrap();
    (double, addr, client)
}

fn target(name: &str) -> Target {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../targets")
        .join(format!("{name}.toml"));
    Target::load(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn nodes(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The hourly and monthly gross prices of a type in a location, read straight from the
/// double's price list (so the test hard-codes no price either).
async fn listed_price(addr: SocketAddr, server_type: &str, location: &str) -> (String, String) {
    let listed: Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/server_types"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = listed["server_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!(server_type))
        .unwrap();
    let p = t["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["location"] == json!(location))
        .unwrap();
    (
        p["price_hourly"]["gross"].as_str().unwrap().to_string(),
        p["price_monthly"]["gross"].as_str().unwrap().to_string(),
    )
}

fn method_path(r: &RecordedRequest) -> (String, String) {
    (r.method.clone(), r.path.clone())
}

fn expect(method: &str, path: impl Into<String>) -> (String, String) {
    (method.to_string(), path.into())
}

#[tokio::test]
async fn full_provision_is_checked_request_by_request() {
    let (double, addr, client) = start().await;
    let mut t = target("opentrident");
    t.server.location = Some("nbg1".into());
    let run = "1a2b3c4d";

    // 1. The operator's login key.
    let key_name = cloud::ensure_ssh_key(&client, "lifeboat-operator", OPERATOR_KEY)
        .await
        .unwrap();
    assert_eq!(key_name, "lifeboat-operator");

    // 2. The plan and its price, before anything is created.
    let plans = cloud::plan_servers(run, &nodes(&["a", "b", "c"]), &t).unwrap();
    assert_eq!(
        plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [
            "lifeboat-1a2b3c4d-a",
            "lifeboat-1a2b3c4d-b",
            "lifeboat-1a2b3c4d-c"
        ]
    );
    let quote = cloud::quote(&client, &plans).await.unwrap();
    assert!(double.server_names().is_empty(), "quoting creates nothing");
    let shown = quote.to_string();
    assert!(shown.starts_with("will create 3 servers"), "{shown}");
    for p in &plans {
        assert!(shown.contains(&p.name), "{shown}");
    }
    assert!(shown.contains("cpx11") && shown.contains("nbg1"), "{shown}");
    assert!(shown.contains("/h") && shown.contains("€"), "{shown}");

    // 3. A host key per server, in its user data; 4. create and wait.
    let mut created: Vec<(ServerInfo, cloud::HostKey, cloud::UserData)> = Vec::new();
    for p in &plans {
        let key = cloud::generate_host_key(&p.name).unwrap();
        let data = key.user_data();
        assert_eq!(format!("{data:?}"), USER_DATA_REDACTED);
        let dry = p.describe_create(&key_name);
        assert!(dry.contains(USER_DATA_REDACTED), "{dry}");
        assert!(!dry.contains("PRIVATE KEY"), "{dry}");
        let s = cloud::create(&client, p, &key_name, &data).await.unwrap();
        assert_eq!(s.status, "initializing");
        created.push((s, key, data));
    }
    let mut running = Vec::new();
    for (s, key, _) in &created {
        let r = cloud::wait_running(&client, s.id, PATIENT, FAST)
            .await
            .unwrap();
        assert_eq!(r.status, "running");
        let ip = r.ip.expect("a running server has an IPv4 address");
        let line = key.known_hosts_line(ip, t.server.ssh_port);
        assert_eq!(
            line,
            format!(
                "{ip} {}",
                key.public()
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        running.push(r);
    }

    // 5. Teardown.
    let deleted = cloud::delete_run(&client, run).await.unwrap();
    assert!(deleted.is_complete(), "{deleted:?}");
    let mut ids: Vec<i64> = deleted.deleted.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    let mut want: Vec<i64> = created.iter().map(|(s, _, _)| s.id).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    cloud::wait_gone(&client, &want, PATIENT, FAST)
        .await
        .unwrap();
    assert!(double.server_names().is_empty());

    // The requests, one by one.
    let reqs = double.requests();
    let ssh_key_id = {
        let created_key: Value = serde_json::from_str(&reqs[1].body_text).unwrap();
        assert_eq!(created_key["name"], json!("lifeboat-operator"));
        assert_eq!(created_key["public_key"], json!(OPERATOR_KEY));
        // The id the double gave the key is what the read-back asks for.
        reqs[2].path.rsplit('/').next().unwrap().to_string()
    };
    let mut sequence = vec![
        expect("GET", "/v1/ssh_keys"),
        expect("POST", "/v1/ssh_keys"),
        expect("GET", format!("/v1/ssh_keys/{ssh_key_id}")),
        expect("GET", "/v1/server_types"),
    ];
    sequence.extend(created.iter().map(|_| expect("POST", "/v1/servers")));
    for (s, _, _) in &created {
        // Initializing on the first read, running on the second.
        sequence.push(expect("GET", format!("/v1/servers/{}", s.id)));
        sequence.push(expect("GET", format!("/v1/servers/{}", s.id)));
    }
    sequence.push(expect("GET", "/v1/servers"));
    for s in &deleted.deleted {
        sequence.push(expect("DELETE", format!("/v1/servers/{}", s.id)));
    }
    for id in &want {
        sequence.push(expect("GET", format!("/v1/servers/{id}")));
    }
    assert_eq!(
        reqs.iter().map(method_path).collect::<Vec<_>>(),
        sequence,
        "the exact calls, in order"
    );
    for r in &reqs {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
        if r.method == "POST" {
            assert!(
                r.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("application/json")),
                "{r:?}"
            );
        }
    }
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    let last_gets = &statuses[statuses.len() - want.len()..];
    assert!(last_gets.iter().all(|s| *s == 404), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - want.len()]
            .iter()
            .all(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        reqs[0].query.as_deref(),
        Some("name=lifeboat-operator&page=1&per_page=50")
    );
    assert!(
        reqs[3]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("name=cpx11")),
        "{:?}",
        reqs[3].query
    );

    // The create bodies: the documented fields, exactly.
    let posts: Vec<&RecordedRequest> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/servers")
        .collect();
    assert_eq!(posts.len(), 3);
    for ((post, plan), (_, _, data)) in posts.iter().zip(&plans).zip(&created) {
        let body = post.body.as_ref().expect("a JSON body");
        let mut fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "image",
                "labels",
                "location",
                "name",
                "server_type",
                "ssh_keys",
                "start_after_create",
                "user_data"
            ]
        );
        assert_eq!(body["name"], json!(plan.name));
        assert_eq!(body["server_type"], json!("cpx11"));
        assert_eq!(body["image"], json!("ubuntu-24.04"));
        assert_eq!(body["location"], json!("nbg1"));
        assert_eq!(body["ssh_keys"], json!(["lifeboat-operator"]));
        assert_eq!(body["start_after_create"], json!(true));
        assert_eq!(
            body["labels"],
            json!({LABEL: "1", RUN_LABEL: run, NODE_LABEL: plan.node})
        );
        let user_data = body["user_data"].as_str().unwrap();
        assert_eq!(user_data, data.expose_secret());
        assert!(user_data.starts_with("#cloud-config\n"));
        assert!(user_data.contains("ed25519_private: |"));
        assert!(user_data.contains("BEGIN OPENSSH PRIVATE KEY"));
    }
    // Each server got its own host key.
    let keys: std::collections::BTreeSet<&str> =
        created.iter().map(|(_, k, _)| k.public()).collect();
    assert_eq!(keys.len(), 3);

    // The teardown's listing asked for this run's servers only.
    let list = reqs
        .iter()
        .find(|r| r.method == "GET" && r.path == "/v1/servers")
        .unwrap();
    let q = list.query.as_deref().unwrap();
    assert!(
        q.contains("label_selector=lifeboat%3D1%2Clifeboat.run%3D1a2b3c4d"),
        "{q}"
    );

    // The quote's prices are the API's, for the planned location.
    let (hourly, monthly) = listed_price(addr, "cpx11", "nbg1").await;
    for line in &quote.lines {
        assert_eq!(line.hourly_gross, hourly);
        assert_eq!(line.monthly_gross, monthly);
        assert_eq!(line.priced_in.as_deref(), Some("nbg1"));
    }
    let h: f64 = hourly.parse().unwrap();
    let total: f64 = quote.total_hourly.parse().unwrap();
    assert!((total - 3.0 * h).abs() < 1e-12, "{total} vs 3 × {h}");
}

#[tokio::test]
async fn quote_without_a_location_shows_the_dearest_and_refuses_unoffered_ones() {
    let (_double, addr, client) = start().await;
    let t = target("lifeboat");
    assert_eq!(t.server.location, None);
    let plans = cloud::plan_servers("r1", &nodes(&["a", "b"]), &t).unwrap();
    let quote = cloud::quote(&client, &plans).await.unwrap();
    let mut dearest = String::new();
    let mut best = 0.0f64;
    for loc in ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"] {
        let (h, _) = listed_price(addr, "cpx11", loc).await;
        if h.parse::<f64>().unwrap() > best {
            best = h.parse().unwrap();
            dearest = h;
        }
    }
    for line in &quote.lines {
        assert_eq!(line.priced_in, None);
        assert_eq!(line.hourly_gross, dearest);
    }
    let shown = quote.to_string();
    assert!(shown.contains("up to €"), "{shown}");
    assert!(shown.contains("Hetzner's choice"), "{shown}");
    assert!(shown.contains("(2 × €"), "{shown}");

    let mut t = target("lifeboat");
    t.server.server_type = "cx22".into();
    t.server.location = Some("ash".into());
    let plans = cloud::plan_servers("r1", &nodes(&["a"]), &t).unwrap();
    let err = format!("{:#}", cloud::quote(&client, &plans).await.unwrap_err());
    assert!(err.contains("`ash`") && err.contains("fsn1"), "{err}");
}

#[test]
fn plans_refuse_names_hetzner_would_refuse() {
    let t = target("lifeboat");
    assert!(cloud::plan_servers("bad/run", &nodes(&["a"]), &t).is_err());
    assert!(cloud::plan_servers("", &nodes(&["a"]), &t).is_err());
    assert!(cloud::plan_servers("r1", &nodes(&["a", "a"]), &t).is_err());
    assert!(cloud::plan_servers("r1", &nodes(&["_x"]), &t).is_err());
    let ok = cloud::plan_servers("r1", &nodes(&["b"]), &t).unwrap();
    assert_eq!(ok[0].labels[NODE_LABEL], "b");
    assert_eq!(ok[0].server_type, "cpx11");
    assert_eq!(ok[0].image, "ubuntu-24.04");
}

/// A server that is not lifeboat's, created with the plain client.
async fn foreign(client: &HetznerClient, name: &str, labels: &[(&str, &str)]) -> ServerInfo {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client
        .create_server(name, "cpx11", "ubuntu-24.04", &[], &labels)
        .await
        .unwrap()
}

#[tokio::test]
async fn delete_all_takes_every_run_and_spares_other_servers() {
    let (double, _addr, client) = start().await;
    let t = target("lifeboat");
    let key = cloud::ensure_ssh_key(&client, "op", OPERATOR_KEY)
        .await
        .unwrap();
    let host = cloud::generate_host_key("lifeboat-test").unwrap();
    let data = host.user_data();
    // Two runs, one of them larger than a page of the listing (50), so deleting them
    // reads every page.
    let mut run_nodes: Vec<String> = (0..54).map(|i| format!("n{i}")).collect();
    run_nodes.sort();
    for (run, names) in [("r1", nodes(&["a", "b"])), ("r2", run_nodes)] {
        for p in cloud::plan_servers(run, &names, &t).unwrap() {
            cloud::create(&client, &p, &key, &data).await.unwrap();
        }
    }
    // Other servers of the same project: no lifeboat label at all, lifeboat's run label
    // without `lifeboat=1`, and `lifeboat` with another value.
    let others = [
        foreign(&client, "web-1", &[("team", "web")]).await,
        foreign(&client, "lookalike", &[(RUN_LABEL, "r1")]).await,
        foreign(&client, "not-ours", &[(LABEL, "0"), (RUN_LABEL, "r2")]).await,
    ];

    let r1 = cloud::delete_run(&client, "r1").await.unwrap();
    assert!(r1.is_complete());
    let mut names: Vec<String> = r1.deleted.iter().map(|s| s.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["lifeboat-r1-a", "lifeboat-r1-b"]);

    let all = cloud::delete_all(&client).await.unwrap();
    assert!(all.is_complete(), "{:?}", all.failed);
    assert_eq!(all.deleted.len(), 54);
    assert!(all.deleted.iter().all(|s| s.labels[RUN_LABEL] == "r2"));

    let mut left = double.server_names();
    left.sort();
    assert_eq!(left, ["lookalike", "not-ours", "web-1"]);
    let reqs = double.requests();
    for o in &others {
        assert!(
            !reqs
                .iter()
                .any(|r| r.method == "DELETE" && r.path == format!("/v1/servers/{}", o.id)),
            "{} was deleted",
            o.name
        );
    }
    // The listing for delete_all went past the first page.
    let pages: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v1/servers")
        .filter_map(|r| r.query.as_deref())
        .filter(|q| q.contains("label_selector=lifeboat%3D1&"))
        .collect();
    assert!(pages.iter().any(|q| q.contains("page=2")), "{pages:?}");

    // Nothing left: a second cleanup finds nothing and succeeds.
    let again = cloud::delete_all(&client).await.unwrap();
    assert!(again.deleted.is_empty() && again.is_complete());
}

#[tokio::test]
async fn a_bad_token_gives_a_clear_error_without_the_token() {
    let (double, addr, _client) = start().await;
    let wrong_token = "WRONGhetznerTokenWRONGhetznerTokenWRONGhetznerToken0000000000";
    let wrong = HetznerClient::new(&format!("http://{addr}/v1"), wrong_token).unwrap();
    let t = target("lifeboat");
    let plans = cloud::plan_servers("r1", &nodes(&["a"]), &t).unwrap();
    let data = cloud::generate_host_key("x").unwrap().user_data();
    let errors = vec![
        cloud::ensure_ssh_key(&wrong, "op", OPERATOR_KEY)
            .await
            .unwrap_err(),
        cloud::quote(&wrong, &plans).await.unwrap_err(),
        cloud::create(&wrong, &plans[0], "op", &data)
            .await
            .unwrap_err(),
        cloud::delete_all(&wrong).await.unwrap_err(),
        cloud::delete_run(&wrong, "r1").await.unwrap_err(),
    ];
    for e in errors {
        for text in [format!("{e:#}"), format!("{e:?}"), e.to_string()] {
            assert!(!text.contains(wrong_token), "{text}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("PRIVATE KEY"), "{text}");
        }
        let full = format!("{e:#}");
        assert!(full.contains("HTTP 401"), "{full}");
        assert!(full.contains("unauthorized"), "{full}");
        assert!(full.contains("Hetzner Cloud"), "{full}");
    }
    assert!(double.server_names().is_empty());
    assert!(double.requests().iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn user_data_is_limited_and_never_echoed_in_errors() {
    let (double, _addr, client) = start().await;
    let marker = "SECRETuserDataLineThatMustNotLeak0123456789";
    let big = format!("#cloud-config\n# {marker}\n{}", "x".repeat(33 * 1024));
    let labels = BTreeMap::new();
    let err = client
        .create_server_with(&NewServer {
            name: "too-big",
            server_type: "cpx11",
            image: "ubuntu-24.04",
            location: None,
            ssh_keys: &[],
            labels: &labels,
            user_data: Some(&big),
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert_eq!(err.code(), Some("invalid_input"));
    assert!(err.to_string().contains("user_data"), "{err}");
    assert!(!err.to_string().contains(marker) && !format!("{err:?}").contains(marker));
    assert!(double.server_names().is_empty());

    // A spec's Debug hides the user data too.
    let spec = NewServer {
        name: "n",
        server_type: "cpx11",
        image: "ubuntu-24.04",
        location: None,
        ssh_keys: &[],
        labels: &labels,
        user_data: Some(&big),
    };
    assert!(!format!("{spec:?}").contains(marker));
}

#[tokio::test]
async fn waiting_for_a_deleted_server_fails_naming_it() {
    let (_double, _addr, client) = start().await;
    let t = target("lifeboat");
    let key = cloud::ensure_ssh_key(&client, "op", OPERATOR_KEY)
        .await
        .unwrap();
    let plan = &cloud::plan_servers("r9", &nodes(&["c"]), &t).unwrap()[0];
    let data = cloud::generate_host_key(&plan.name).unwrap().user_data();
    let s = cloud::create(&client, plan, &key, &data).await.unwrap();
    client.delete_server(s.id).await.unwrap();
    let err = cloud::wait_running(&client, s.id, PATIENT, FAST)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&s.id.to_string()) && text.contains("no longer exists"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_kept_as_the_new_primary_leaves_lifeboats_hands() {
    let (double, _addr, client) = start().await;
    let t = target("lifeboat");
    let key = cloud::ensure_ssh_key(&client, "op", OPERATOR_KEY)
        .await
        .unwrap();
    let data = cloud::generate_host_key("lifeboat-test")
        .unwrap()
        .user_data();
    let mut created = Vec::new();
    for p in cloud::plan_servers("r7", &nodes(&["b", "c"]), &t).unwrap() {
        created.push(cloud::create(&client, &p, &key, &data).await.unwrap());
    }
    let b = client.get_server(created[0].id).await.unwrap().unwrap();
    cloud::mark_kept(&client, &b).await.unwrap();

    // What the API now holds: `lifeboat=1` and the run label gone, the node label kept,
    // the kept label naming the run; the request was one PUT with the whole label set.
    let after = client.get_server(b.id).await.unwrap().unwrap();
    assert_eq!(after.labels.get(LABEL), None);
    assert_eq!(after.labels.get(RUN_LABEL), None);
    assert_eq!(after.labels.get(NODE_LABEL).map(String::as_str), Some("b"));
    assert_eq!(
        after.labels.get(cloud::KEPT_LABEL).map(String::as_str),
        Some("r7")
    );
    let put: Vec<RecordedRequest> = double
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(put.len(), 1);
    assert_eq!(put[0].path, format!("/v1/servers/{}", b.id));

    // Neither the run's teardown nor a cleanup of every run deletes it.
    let run = cloud::delete_run(&client, "r7").await.unwrap();
    assert_eq!(run.deleted.len(), 1, "{:?}", run.deleted);
    let all = cloud::delete_all(&client).await.unwrap();
    assert!(all.deleted.is_empty(), "{:?}", all.deleted);
    assert_eq!(double.server_names(), vec![b.name.clone()]);
}
