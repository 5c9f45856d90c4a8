//! The real clients against the local doubles, over real HTTP on 127.0.0.1.
//!
//! Each test starts its own double on `127.0.0.1:0` and drives it with the client that
//! lifeboat uses against the real service (and, where a client would never send the
//! request, with raw HTTP), so the doubles' fidelity and the clients' handling of it are
//! checked together.

use lifeboat_model::proto;
use lifeboat_model::telegram::CONFLICT;
use lifeboat_real::clients::{HetznerClient, ReleasesClient, TelegramClient};
use lifeboat_real::doubles::{telegram, HetznerDouble, ReleasesDouble, TelegramDouble};
use reqwest::Url;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TG_TOKEN: &str = "7000000001:TELEGRAM-secret-token-for-tests-AAAA";
const GH_TOKEN: &str = "ghp_GITHUBsecretTokenForTests0000000000000";
const HZ_TOKEN: &str = "HETZNERsecretTokenForTests00000000000000000000000000000000000000";
const PUBKEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxpZmVib2F0LXRlc3Qta2V5LW5vdC1hLXJlYWwta2V5 lifeboat@test";
const OTHER_PUBKEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG90aGVyLWxpZmVib2F0LXRlc3Qta2V5LW5vdC1yZWFs other@test";

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn base(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).unwrap()
}

// ---------------------------------------------------------------------------------------
// Telegram

async fn start_telegram() -> (TelegramDouble, SocketAddr, TelegramClient) {
    let double = TelegramDouble::new(TG_TOKEN);
    let (addr, _task) = double.serve(local()).await.unwrap();
    let client = TelegramClient::new(base(addr), TG_TOKEN).unwrap();
    (double, addr, client)
}

/// Injects a user message over the double's HTTP injection endpoint; returns its update id.
async fn inject(addr: SocketAddr, chat_id: i64, text: &str) -> i64 {
    let resp: Value = reqwest::Client::new()
        .post(format!("http://{addr}/inject/message"))
        .json(&json!({ "chat_id": chat_id, "text": text }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["update_id"].as_i64().expect("an update id")
}

#[tokio::test]
async fn telegram_long_poll_waits_then_returns_injected_message() {
    let (_double, addr, client) = start_telegram().await;
    let started = Instant::now();
    let poll = tokio::spawn(async move { client.get_updates(None, 10).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !poll.is_finished(),
        "the long poll answered before any message"
    );
    let update_id = inject(addr, 42, "/status").await;
    let updates = poll.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "waited {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "the injection did not end the poll early: {waited:?}"
    );
    assert_eq!(updates.len(), 1);
    let message = updates[0].message.as_ref().expect("a message update");
    assert_eq!(message.chat.id, 42);
    assert_eq!(message.text.as_deref(), Some("/status"));
    assert_eq!(
        updates[0].to_model(),
        Some(proto::Update {
            update_id,
            chat_id: 42,
            text: "/status".into()
        })
    );
}

#[tokio::test]
async fn telegram_long_poll_times_out_empty_after_its_timeout() {
    let (_double, _addr, client) = start_telegram().await;
    let started = Instant::now();
    let updates = client.get_updates(None, 1).await.unwrap();
    let waited = started.elapsed();
    assert!(updates.is_empty());
    assert!(
        waited >= Duration::from_secs(1),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "returned after {waited:?}");
}

#[tokio::test]
async fn telegram_overlapping_get_updates_end_the_first_with_409() {
    let (_double, addr, client) = start_telegram().await;
    let first_client = client.clone();
    let started = Instant::now();
    let first = tokio::spawn(async move { first_client.get_updates(None, 10).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished());
    let second_client = client.clone();
    let second = tokio::spawn(async move { second_client.get_updates(None, 10).await });

    let err = first
        .await
        .unwrap()
        .expect_err("the first poll must be terminated");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.status(), Some(409), "{err}");
    assert_eq!(err.message(), Some(CONFLICT));
    assert_eq!(err.call(), "getUpdates");
    assert!(err.to_string().contains("409"), "{err}");

    // The newer poll is now the one waiting: an injected message goes to it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second.is_finished());
    inject(addr, 7, "ping").await;
    let updates = second.await.unwrap().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].message.as_ref().unwrap().text.as_deref(),
        Some("ping")
    );
}

#[tokio::test]
async fn telegram_offset_confirms_and_unconfirmed_updates_come_again() {
    let (double, addr, client) = start_telegram().await;
    let id1 = inject(addr, 1, "one").await;
    let id2 = inject(addr, 1, "two").await;
    assert!(id2 > id1);

    let ids = |u: Vec<lifeboat_real::clients::telegram::Update>| {
        u.iter().map(|u| u.update_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(client.get_updates(None, 0).await.unwrap()),
        vec![id1, id2]
    );
    // Not confirmed: delivered again.
    assert_eq!(
        ids(client.get_updates(None, 0).await.unwrap()),
        vec![id1, id2]
    );
    // An offset above id1 confirms it only.
    assert_eq!(
        ids(client.get_updates(Some(id1 + 1), 0).await.unwrap()),
        vec![id2]
    );
    assert_eq!(ids(client.get_updates(None, 0).await.unwrap()), vec![id2]);
    assert_eq!(double.pending(), 1);
    assert!(client
        .get_updates(Some(id2 + 1), 0)
        .await
        .unwrap()
        .is_empty());
    assert!(client.get_updates(None, 0).await.unwrap().is_empty());
    assert_eq!(double.pending(), 0);
}

#[tokio::test]
async fn telegram_accepts_get_query_and_form_parameters() {
    let (_double, addr, _client) = start_telegram().await;
    let id1 = inject(addr, 5, "a").await;
    let id2 = inject(addr, 5, "b").await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/bot{TG_TOKEN}/getUpdates");

    let got: Value = http
        .get(format!("{url}?offset={}&timeout=0&limit=1", id1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["ok"], json!(true));
    assert_eq!(got["result"].as_array().unwrap().len(), 1, "limit=1: {got}");
    assert_eq!(got["result"][0]["update_id"], json!(id1));

    let got: Value = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("offset={}&timeout=0", id2))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["result"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["result"][0]["update_id"], json!(id2));
    assert_eq!(got["result"][0]["message"]["text"], json!("b"));
}

#[tokio::test]
async fn telegram_wrong_token_is_401_and_get_me_names_the_bot() {
    let (_double, addr, client) = start_telegram().await;
    let me = client.get_me().await.unwrap();
    assert!(me.is_bot);
    assert_eq!(me.id, 7_000_000_001);
    assert_eq!(me.username.as_deref(), Some(telegram::BOT_USERNAME));

    let wrong = TelegramClient::new(base(addr), "7000000001:wrong-token").unwrap();
    let err = wrong.get_me().await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(err.message(), Some("Unauthorized"));
    let err = wrong.get_updates(None, 0).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
}

#[tokio::test]
async fn telegram_send_message_is_recorded() {
    let (double, addr, client) = start_telegram().await;
    let sent = client
        .send_message(42, "leader is a (token 7)")
        .await
        .unwrap();
    assert_eq!(sent.chat.id, 42);
    assert_eq!(sent.text.as_deref(), Some("leader is a (token 7)"));
    let second = client.send_message(-100, "group note").await.unwrap();
    assert!(second.message_id > sent.message_id);

    let replies: Value = reqwest::get(format!("http://{addr}/inject/replies"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["chat_id"], json!(42));
    assert_eq!(replies[0]["text"], json!("leader is a (token 7)"));
    assert!(replies[0]["time_ms"].is_u64());
    assert_eq!(replies[1]["chat_id"], json!(-100));
    assert_eq!(double.replies().len(), 2);

    let err = client.send_message(42, "").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(
        double.replies().len(),
        2,
        "a refused message is not recorded"
    );
}

#[tokio::test]
async fn telegram_injected_fault_fails_every_call_until_cleared() {
    let (double, addr, client) = start_telegram().await;
    let http = reqwest::Client::new();
    http.post(format!("http://{addr}/inject/fault"))
        .json(&json!({ "code": 502 }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    for err in [
        client.get_me().await.unwrap_err(),
        client.get_updates(None, 0).await.unwrap_err(),
        client.send_message(1, "x").await.unwrap_err(),
    ] {
        assert_eq!(err.status(), Some(502), "{err}");
    }
    assert!(double.replies().is_empty());

    http.delete(format!("http://{addr}/inject/fault"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client.get_me().await.unwrap();

    double.set_fault(Some(429));
    let err = client.get_me().await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(matches!(
        err,
        lifeboat_real::clients::ClientError::Status {
            retry_after: Some(1),
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------
// GitHub Releases

async fn start_releases(token: &str) -> (ReleasesDouble, SocketAddr, ReleasesClient) {
    let double = ReleasesDouble::new(GH_TOKEN);
    let (addr, _task) = double.serve(local()).await.unwrap();
    let client =
        ReleasesClient::new(base(addr), base(addr), "lifeboat-org", "snapshots", token).unwrap();
    (double, addr, client)
}

#[tokio::test]
async fn releases_create_upload_download_and_refuse_duplicates() {
    let (_double, _addr, client) = start_releases(GH_TOKEN).await;
    assert_eq!(client.latest().await.unwrap(), None);

    let release = client
        .create_release("snap-0001", "snapshot 1", "signed bundle")
        .await
        .unwrap();
    assert_eq!(release.tag_name, "snap-0001");
    assert!(
        release.upload_url.ends_with("/assets{?name,label}"),
        "{}",
        release.upload_url
    );

    let dup = client
        .create_release("snap-0001", "again", "")
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(422), "{dup}");
    assert_eq!(dup.code(), Some("already_exists"));

    // Every byte value, more than one network buffer.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let asset = client
        .upload_asset(
            release.id,
            "bundle.tar.gz",
            "application/gzip",
            bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(asset.name, "bundle.tar.gz");
    assert_eq!(asset.size, bytes.len() as u64);
    assert_eq!(asset.state, "uploaded");
    assert_eq!(client.download_asset(asset.id).await.unwrap(), bytes);

    let dup = client
        .upload_asset(
            release.id,
            "bundle.tar.gz",
            "application/gzip",
            vec![1, 2, 3],
        )
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(422), "{dup}");
    assert_eq!(dup.code(), Some("already_exists"));
    assert_eq!(
        client.download_asset(asset.id).await.unwrap(),
        bytes,
        "unchanged"
    );

    let by_tag = client.release_by_tag("snap-0001").await.unwrap().unwrap();
    assert_eq!(by_tag.id, release.id);
    assert_eq!(by_tag.asset("bundle.tar.gz").map(|a| a.id), Some(asset.id));
    assert_eq!(
        client.latest().await.unwrap().map(|r| r.id),
        Some(release.id)
    );
    assert_eq!(client.release_by_tag("snap-9999").await.unwrap(), None);

    let missing = client.download_asset(asset.id + 1000).await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn releases_list_newest_first_with_pages() {
    let (double, _addr, client) = start_releases(GH_TOKEN).await;
    for tag in ["snap-1", "snap-2", "snap-3"] {
        client.create_release(tag, tag, "").await.unwrap();
    }
    let tags = |rs: Vec<lifeboat_real::clients::releases::Release>| {
        rs.into_iter().map(|r| r.tag_name).collect::<Vec<_>>()
    };
    assert_eq!(
        tags(client.list_releases(2, 1).await.unwrap()),
        ["snap-3", "snap-2"]
    );
    assert_eq!(tags(client.list_releases(2, 2).await.unwrap()), ["snap-1"]);
    assert!(client.list_releases(2, 3).await.unwrap().is_empty());
    assert_eq!(client.latest().await.unwrap().unwrap().tag_name, "snap-3");
    assert_eq!(
        double.tags("lifeboat-org", "snapshots"),
        ["snap-1", "snap-2", "snap-3"]
    );
}

#[tokio::test]
async fn releases_require_the_bearer_token() {
    let (double, addr, client) = start_releases("ghp_wrong").await;
    let err = client.create_release("snap-1", "", "").await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(double.tags("lifeboat-org", "snapshots").is_empty());

    let resp = reqwest::Client::new()
        .get(format!(
            "http://{addr}/repos/lifeboat-org/snapshots/releases"
        ))
        .header("user-agent", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "no Authorization header");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], json!("Bad credentials"));
}

// ---------------------------------------------------------------------------------------
// Hetzner Cloud

async fn start_hetzner() -> (HetznerDouble, SocketAddr, HetznerClient) {
    let double = HetznerDouble::new(HZ_TOKEN);
    let (addr, _task) = double.serve(local()).await.unwrap();
    let client = HetznerClient::new(&format!("http://{addr}/v1"), HZ_TOKEN).unwrap();
    (double, addr, client)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn hetzner_create_server_request_is_checked_and_recorded() {
    let (double, _addr, client) = start_hetzner().await;
    double.set_server_ip("127.0.0.2".parse().unwrap());
    client.ensure_ssh_key("lifeboat", PUBKEY).await.unwrap();
    let wanted = labels(&[("lifeboat", "drill"), ("node", "a")]);
    let server = client
        .create_server(
            "lifeboat-a",
            "cpx11",
            "ubuntu-24.04",
            &["lifeboat".into()],
            &wanted,
        )
        .await
        .unwrap();
    assert_eq!(server.status, "initializing");
    assert_eq!(server.ip, Some("127.0.0.2".parse().unwrap()));
    assert_eq!(server.server_type, "cpx11");
    assert_eq!(server.labels, wanted);

    let requests = double.requests();
    let post = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/v1/servers")
        .expect("the create request");
    assert_eq!(post.status, 201);
    assert_eq!(
        post.authorization.as_deref(),
        Some(format!("Bearer {HZ_TOKEN}").as_str())
    );
    assert!(
        post.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        post.content_type
    );
    let body = post.body.as_ref().expect("a JSON body");
    assert_eq!(body["name"], json!("lifeboat-a"));
    assert_eq!(body["server_type"], json!("cpx11"));
    assert_eq!(body["image"], json!("ubuntu-24.04"));
    assert_eq!(body["ssh_keys"], json!(["lifeboat"]));
    assert_eq!(body["labels"], json!({"lifeboat": "drill", "node": "a"}));
    assert_eq!(body["start_after_create"], json!(true));
}

#[tokio::test]
async fn hetzner_server_lifecycle_get_list_delete() {
    let (double, _addr, client) = start_hetzner().await;
    let a = client
        .create_server(
            "lifeboat-a",
            "cpx11",
            "ubuntu-24.04",
            &[],
            &labels(&[("lifeboat", "drill"), ("node", "a")]),
        )
        .await
        .unwrap();
    let b = client
        .create_server(
            "lifeboat-b",
            "cx22",
            "debian-12",
            &[],
            &labels(&[("lifeboat", "drill"), ("node", "b")]),
        )
        .await
        .unwrap();
    assert_eq!(
        a.ip,
        Some("127.0.0.1".parse().unwrap()),
        "the default IP is loopback"
    );

    // Initializing on the first read, running after it.
    assert_eq!(
        client.get_server(a.id).await.unwrap().unwrap().status,
        "initializing"
    );
    assert_eq!(
        client.get_server(a.id).await.unwrap().unwrap().status,
        "running"
    );

    let ids = |v: Vec<lifeboat_real::clients::hetzner::ServerInfo>| {
        let mut ids: Vec<i64> = v.iter().map(|s| s.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(client
            .list_servers_by_label("lifeboat=drill")
            .await
            .unwrap()),
        vec![a.id, b.id]
    );
    assert_eq!(
        ids(client
            .list_servers_by_label("lifeboat=drill,node=b")
            .await
            .unwrap()),
        vec![b.id]
    );
    assert_eq!(
        ids(client.list_servers_by_label("node!=b").await.unwrap()),
        vec![a.id]
    );
    assert!(client
        .list_servers_by_label("lifeboat=prod")
        .await
        .unwrap()
        .is_empty());

    let list = double
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/v1/servers")
        .unwrap();
    assert!(
        list.query
            .as_deref()
            .is_some_and(|q| q.contains("label_selector=lifeboat%3Ddrill")),
        "{:?}",
        list.query
    );

    client.delete_server(a.id).await.unwrap();
    assert_eq!(client.get_server(a.id).await.unwrap(), None);
    let last = double.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("GET", 404));
    assert_eq!(last.path, format!("/v1/servers/{}", a.id));
    assert_eq!(
        ids(client.list_servers_by_label("lifeboat").await.unwrap()),
        vec![b.id]
    );
    assert_eq!(double.server_names(), ["lifeboat-b"]);

    let err = client.delete_server(a.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
}

#[tokio::test]
async fn hetzner_refuses_missing_or_wrong_authorization() {
    let (double, addr, _client) = start_hetzner().await;
    let resp = reqwest::get(format!("http://{addr}/v1/servers"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("unauthorized"));
    assert!(body["error"]["message"].is_string());
    assert!(body["error"].get("details").is_some());

    let wrong_token = "WRONGtokenWRONGtokenWRONGtoken";
    let wrong = HetznerClient::new(&format!("http://{addr}/v1"), wrong_token).unwrap();
    let err = wrong.list_servers_by_label("lifeboat").await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(err.code(), Some("unauthorized"));
    assert!(!err.to_string().contains(wrong_token));
    let err = wrong
        .create_server("x", "cpx11", "ubuntu-24.04", &[], &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(double.server_names().is_empty());
}

#[tokio::test]
async fn hetzner_refuses_bodies_that_break_the_documented_shape() {
    let (double, addr, client) = start_hetzner().await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("http://{addr}/v1/servers"))
            .bearer_auth(HZ_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let resp = post(json!({"name": "x", "image": "ubuntu-24.04"}).to_string())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("invalid_input"));
    assert_eq!(
        body["error"]["details"]["fields"][0]["name"],
        json!("server_type")
    );

    let cases = [
        json!({"name": "x", "server_type": "cpx11", "image": "ubuntu-24.04", "colour": "red"}),
        json!({"name": "not_a_hostname", "server_type": "cpx11", "image": "ubuntu-24.04"}),
        json!({"name": "x", "server_type": "cpx11", "image": "ubuntu-24.04", "ssh_keys": ["nobody"]}),
        json!({"name": "x", "server_type": "cpx11", "image": "ubuntu-24.04", "labels": {"k": 1}}),
        json!({"name": "x", "server_type": "cx22", "image": "ubuntu-24.04", "location": "ash"}),
    ];
    for case in cases {
        let resp = post(case.to_string()).await.unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{case}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], json!("invalid_input"), "{case}");
    }

    let resp = post("{not json".into()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("json_error"));

    let resp = http
        .put(format!("http://{addr}/v1/servers"))
        .bearer_auth(HZ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    // Through the client: an unknown server type, and a name already used.
    let err = client
        .create_server("x", "cpx999", "ubuntu-24.04", &[], &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(422), Some("invalid_input")),
        "{err}"
    );
    client
        .create_server("x", "cpx11", "ubuntu-24.04", &[], &BTreeMap::new())
        .await
        .unwrap();
    let err = client
        .create_server("x", "cpx21", "ubuntu-24.04", &[], &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("uniqueness_error")),
        "{err}"
    );
    assert_eq!(double.server_names(), ["x"]);
}

#[tokio::test]
async fn hetzner_price_comes_from_server_types() {
    let (_double, addr, client) = start_hetzner().await;
    let price = client.server_type_price("cpx11", "fsn1").await.unwrap();

    let listed: Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/server_types"))
        .bearer_auth(HZ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cpx11 = listed["server_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("cpx11"))
        .unwrap();
    let fsn1 = cpx11["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["location"] == json!("fsn1"))
        .unwrap();
    assert_eq!(json!(price), fsn1["price_hourly"]["gross"]);
    assert_ne!(fsn1["price_hourly"]["gross"], fsn1["price_hourly"]["net"]);
    assert!(price.parse::<f64>().unwrap() > 0.0);

    let us = client.server_type_price("cpx11", "ash").await.unwrap();
    assert_ne!(us, price, "prices differ per location");
    let err = client.server_type_price("cx22", "ash").await.unwrap_err();
    assert!(err.to_string().contains("ash"), "{err}");
    let err = client
        .server_type_price("cpx999", "fsn1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cpx999"), "{err}");
}

#[tokio::test]
async fn hetzner_ensure_ssh_key_is_idempotent() {
    let (_double, _addr, client) = start_hetzner().await;
    let id = client.ensure_ssh_key("lifeboat", PUBKEY).await.unwrap();
    assert_eq!(client.ensure_ssh_key("lifeboat", PUBKEY).await.unwrap(), id);
    // The same key under another name: the existing key is used.
    assert_eq!(
        client.ensure_ssh_key("another-name", PUBKEY).await.unwrap(),
        id
    );
    // Another key under a taken name: refused rather than silently mixed up.
    let err = client
        .ensure_ssh_key("lifeboat", OTHER_PUBKEY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("different public key"), "{err}");
    let other = client.ensure_ssh_key("other", OTHER_PUBKEY).await.unwrap();
    assert_ne!(other, id);
}

// ---------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn tokens_never_appear_in_debug_output_or_errors() {
    let closed = {
        let listener = std::net::TcpListener::bind(local()).unwrap();
        listener.local_addr().unwrap()
    };
    let tg = TelegramClient::new(base(closed), TG_TOKEN).unwrap();
    let gh = ReleasesClient::new(base(closed), base(closed), "o", "r", GH_TOKEN).unwrap();
    let hz = HetznerClient::new(&format!("http://{closed}/v1"), HZ_TOKEN).unwrap();
    let doubles = (
        TelegramDouble::new(TG_TOKEN),
        ReleasesDouble::new(GH_TOKEN),
        HetznerDouble::new(HZ_TOKEN),
    );

    let mut texts = vec![
        format!("{tg:?}"),
        format!("{tg:#?}"),
        format!("{gh:?}"),
        format!("{gh:#?}"),
        format!("{hz:?}"),
        format!("{hz:#?}"),
        format!("{doubles:?}"),
    ];
    // Nothing listens there: transport errors, whose reqwest source names the URL (and
    // the Telegram URL holds the token).
    let errors = [
        tg.get_me().await.unwrap_err(),
        tg.get_updates(Some(3), 0).await.unwrap_err(),
        gh.latest().await.unwrap_err(),
        hz.get_server(1).await.unwrap_err(),
    ];
    for err in &errors {
        assert_eq!(err.status(), None);
        assert!(err.to_string().contains(err.service()), "{err}");
        assert!(err.to_string().contains(err.call()), "{err}");
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    for text in &texts {
        for secret in [TG_TOKEN, "TELEGRAM-secret", GH_TOKEN, HZ_TOKEN] {
            assert!(!text.contains(secret), "a token leaked into: {text}");
        }
    }
    assert!(texts[0].contains("<redacted>"));
}
