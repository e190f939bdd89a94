//! The change feed over HTTP: the long poll and its parameters, watched segments, and
//! the event stream, in process and over a loopback socket.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crmdb::feed::Retention;
use crmdb::{Contact, ContactId, Database, RecordId, Snapshot};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::server;
use crate::support::{BOUND, call, check_error, id_of, send};

fn empty_db() -> Database {
    Database::in_memory().expect("in-memory database")
}

fn last_sequence(db: &Database) -> u64 {
    db.begin_read()
        .and_then(|r| r.sequence())
        .expect("sequence")
}

fn insert_contact(db: &Database, name: &str) -> ContactId {
    db.write(|tx| {
        tx.insert(Contact {
            name: name.into(),
            ..Default::default()
        })
    })
    .expect("insert")
}

async fn poll(app: &axum::Router, query: &str) -> Value {
    let (status, body) = call(app, Method::GET, &format!("/changes?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The events of every batch of a poll, flattened.
fn events(body: &Value) -> Vec<Value> {
    body["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .flat_map(|batch| batch["events"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("a {kind} event in {events:?}"))
}

#[tokio::test]
async fn long_poll_returns_the_batches_of_writes() {
    let db = empty_db();
    let app = server::app(db.clone());
    let start = last_sequence(&db);

    let (status, created) = call(
        &app,
        Method::POST,
        "/contacts",
        Some(json!({"name": "Ada", "email": "ada@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/contacts/{id}/tags"),
        Some(json!({"tag": "vip"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut replaced = created.clone();
    replaced["phone"] = json!("+44 20 7946 0000");
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/contacts/{id}"),
        Some(replaced),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let body = poll(&app, &format!("after={start}")).await;
    let batches = body["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 3, "{body}");
    assert_eq!(body["last"], start + 3);
    for (n, batch) in batches.iter().enumerate() {
        assert_eq!(batch["sequence"], start + 1 + n as u64);
        assert_eq!(batch["actor"], "system");
        assert!(batch["time"].is_string(), "{batch}");
    }
    let all = events(&body);
    let inserted = event(&all, "inserted");
    assert_eq!(inserted["kind"], "contact");
    assert_eq!(inserted["id"], id);
    assert_eq!(inserted["cause"], json!({"type": "write"}));
    assert!(inserted["time"].is_string());
    assert_eq!(inserted["record"]["name"], "Ada");
    assert_eq!(inserted["record"]["email"], "ada@example.com");
    assert_eq!(event(&all, "tag_added")["tag"], "vip");
    let updated = events(&json!({"batches": [batches[2]]}));
    let updated = event(&updated, "updated");
    assert_eq!(updated["before"]["phone"], Value::Null);
    assert_eq!(updated["after"]["phone"], "+44 20 7946 0000");
    let fields = updated["fields"].as_array().expect("fields");
    assert!(fields.contains(&json!("phone")), "{updated}");

    // Paging through the log with `limit` and `last`.
    let first = poll(&app, &format!("after={start}&limit=1")).await;
    assert_eq!(first["batches"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["last"], start + 1);
    let rest = poll(&app, &format!("after={}&limit=5000", start + 1)).await;
    assert_eq!(rest["batches"].as_array().map(Vec::len), Some(2));
    let none = poll(&app, &format!("after={}", start + 3)).await;
    assert_eq!(none, json!({"batches": [], "last": start + 3}));
    // `after` defaults to 0: the whole log.
    let whole = poll(&app, "").await;
    assert_eq!(whole["last"], start + 3);
}

#[tokio::test]
async fn waiting_ends_at_a_commit_or_after_the_wait() {
    let db = empty_db();
    let app = server::app(db.clone());
    let after = last_sequence(&db);

    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            insert_contact(&db, "From another thread")
        })
    };
    let started = Instant::now();
    let body = poll(&app, &format!("after={after}&wait=10")).await;
    let waited = started.elapsed();
    let id = writer.join().expect("writer thread");
    assert!(
        waited < Duration::from_secs(5),
        "woken by the commit: {waited:?}"
    );
    assert_eq!(body["last"], after + 1, "{body}");
    assert_eq!(event(&events(&body), "inserted")["id"], id.row());

    let started = Instant::now();
    let body = poll(&app, &format!("after={}&wait=1", after + 1)).await;
    let waited = started.elapsed();
    assert_eq!(body, json!({"batches": [], "last": after + 1}));
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn bad_feed_parameters_are_refused() {
    let db = empty_db();
    insert_contact(&db, "Only one");
    let app = server::app(db.clone());
    let last = last_sequence(&db);
    let started = Instant::now();
    for uri in [
        "/changes?wait=31".to_owned(),
        format!("/changes?after={}", last + 1),
        // Refused at once, not after the wait.
        format!("/changes?after={}&wait=5", last + 1),
        "/changes?limit=0".to_owned(),
        "/changes?after=-1".to_owned(),
        "/changes?after=soon".to_owned(),
        "/changes?since=1".to_owned(),
        format!("/changes/stream?after={}", last + 1),
        "/changes/stream?limit=3".to_owned(),
    ] {
        let response = call(&app, Method::GET, &uri, None).await;
        check_error(&response, StatusCode::BAD_REQUEST, "invalid_parameter");
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    let request = Request::builder()
        .uri("/changes/stream")
        .header("last-event-id", "yesterday")
        .body(Body::empty())
        .expect("request builds");
    check_error(
        &send(&app, request).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    );
    check_error(
        &call(&app, Method::POST, "/changes", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    check_error(
        &call(&app, Method::POST, "/changes/stream", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn trimmed_batches_are_gone() {
    let db = Database::builder()
        .retention(Retention::Batches(2))
        .in_memory()
        .expect("in-memory database");
    for n in 0..6 {
        insert_contact(&db, &format!("Contact {n}"));
    }
    let oldest = db
        .begin_read()
        .and_then(|r| r.oldest_change())
        .expect("oldest");
    assert!(oldest > 1, "retention trimmed something");
    let app = server::app(db.clone());
    for uri in ["/changes?after=0", "/changes/stream?after=0"] {
        let response = call(&app, Method::GET, uri, None).await;
        check_error(&response, StatusCode::GONE, "trimmed");
        assert_eq!(response.1["error"]["oldest"], oldest);
    }
    let body = poll(&app, &format!("after={}", oldest - 1)).await;
    assert_eq!(body["batches"][0]["sequence"], oldest);
}

#[tokio::test]
async fn watched_segments() {
    let db = empty_db();
    let ids: Vec<ContactId> = ["Ann", "Bo", "Cy"]
        .iter()
        .map(|name| insert_contact(&db, name))
        .collect();
    db.write(|tx| {
        tx.add_tag(ids[0], "vip")?;
        tx.add_tag(ids[1], "vip")
    })
    .expect("tags");
    let app = server::app(db.clone());
    let (status, _) = call(
        &app,
        Method::PUT,
        "/segments/vips",
        Some(json!({"kind": "contact", "query": "tag:vip"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let listed = |body: &Value| body["segments"][0].clone();
    let (_, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(listed(&body)["watched"], false);
    assert!(listed(&body).get("members").is_none(), "{body}");

    let before = last_sequence(&db);
    for _ in 0..2 {
        let (status, body) = call(&app, Method::PUT, "/segments/vips/watch", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"segment": "vips", "watched": true, "members": 2})
        );
    }
    let (_, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(listed(&body)["watched"], true);
    assert_eq!(listed(&body)["members"], 2);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/contacts/{}/tags", ids[2].row()),
        Some(json!({"tag": "vip"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let all = events(&poll(&app, &format!("after={before}")).await);
    assert_eq!(event(&all, "watched")["segment"], "vips");
    let entered: Vec<&Value> = all.iter().filter(|e| e["type"] == "entered").collect();
    assert_eq!(entered.len(), 2, "{all:?}");
    assert_eq!(entered[0]["ids"], json!([ids[0].row(), ids[1].row()]));
    assert_eq!(entered[1]["ids"], json!([ids[2].row()]));
    assert_eq!(entered[1]["kind"], "contact");
    assert_eq!(entered[1]["cause"]["type"], "write");
    let (_, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(listed(&body)["members"], 3);

    // A watched segment can be neither deleted nor turned to another kind.
    check_error(
        &call(&app, Method::DELETE, "/segments/vips", None).await,
        StatusCode::CONFLICT,
        "watched",
    );
    check_error(
        &call(
            &app,
            Method::PUT,
            "/segments/vips",
            Some(json!({"kind": "account", "query": "*"})),
        )
        .await,
        StatusCode::CONFLICT,
        "watched",
    );
    check_error(
        &call(&app, Method::PUT, "/segments/nothing/watch", None).await,
        StatusCode::NOT_FOUND,
        "unknown_segment",
    );

    let (status, body) = call(&app, Method::DELETE, "/segments/vips/watch", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"segment": "vips", "watched": false}));
    check_error(
        &call(&app, Method::DELETE, "/segments/vips/watch", None).await,
        StatusCode::NOT_FOUND,
        "not_watched",
    );
    let (_, body) = call(&app, Method::GET, "/segments", None).await;
    assert_eq!(listed(&body)["watched"], false);
    assert!(listed(&body).get("members").is_none(), "{body}");
    let (status, _) = call(&app, Method::DELETE, "/segments/vips", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Opens a stream through the router without reading its body.
async fn open_stream(app: &axum::Router, after: u64) -> axum::response::Response {
    let request = Request::builder()
        .uri(format!("/changes/stream?after={after}"))
        .body(Body::empty())
        .expect("request builds");
    tokio::time::timeout(BOUND, app.clone().oneshot(request))
        .await
        .expect("stream opens in time")
        .expect("router is infallible")
}

#[tokio::test]
async fn streams_are_limited() {
    let db = empty_db();
    let start = last_sequence(&db);
    let id = insert_contact(&db, "Streamed");
    let config = server::ServerConfig {
        max_streams: 1,
        ..server::ServerConfig::default()
    };
    let app = server::app_with(db.clone(), &config);
    let open = open_stream(&app, start).await;
    assert_eq!(open.status(), StatusCode::OK);
    assert_eq!(
        open.headers()[header::CONTENT_TYPE],
        "text/event-stream",
        "{:?}",
        open.headers()
    );
    check_error(
        &call(&app, Method::GET, "/changes/stream", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_streams",
    );
    // Other requests are still served while the stream is open.
    assert_eq!(
        call(&app, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );

    // The first frame holds the first batch: the insert.
    let mut body = open.into_body();
    let frame = tokio::time::timeout(BOUND, body.frame())
        .await
        .expect("a frame in time")
        .expect("a frame")
        .expect("frame reads");
    let text = String::from_utf8_lossy(frame.data_ref().expect("data")).to_string();
    let sequence = last_sequence(&db);
    assert!(text.starts_with(&format!("id: {sequence}\n")), "{text}");
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("a data line");
    let batch: Value = serde_json::from_str(data).expect("batch JSON");
    assert_eq!(batch["sequence"], sequence);
    assert_eq!(
        event(&events(&json!({"batches": [batch]})), "inserted")["id"],
        id.row()
    );

    // Closing the stream gives its place back.
    drop(body);
    assert_eq!(open_stream(&app, start).await.status(), StatusCode::OK);
}

/// One event of a stream: its `id:` and its `data:` as JSON.
type Received = (u64, Value);

/// A client of `/changes/stream` over a plain socket (HTTP/1.0, so the body comes
/// unframed until the connection closes).
struct StreamClient {
    socket: tokio::net::TcpStream,
    /// Received and not yet parsed.
    buffer: String,
}

impl StreamClient {
    /// Opens a stream, retrying (a bounded number of times) while every stream place
    /// is taken: a client that went away gives its place back once the server sees the
    /// connection closed.
    async fn open(address: std::net::SocketAddr, query: &str, last_event_id: Option<u64>) -> Self {
        for _ in 0..50 {
            if let Some(client) = StreamClient::try_open(address, query, last_event_id).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no stream place within 5 s");
    }

    /// A stream, or `None` when the server answers 503.
    async fn try_open(
        address: std::net::SocketAddr,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Option<Self> {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let mut request = format!("GET /changes/stream?{query} HTTP/1.0\r\nHost: localhost\r\n");
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        let mut client = StreamClient {
            socket,
            buffer: String::new(),
        };
        client
            .socket
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let end = loop {
            if let Some(end) = client.buffer.find("\r\n\r\n") {
                break end;
            }
            client.read_more().await;
        };
        let head = client.buffer[..end].to_ascii_lowercase();
        if head.starts_with("http/1.1 503") || head.starts_with("http/1.0 503") {
            return None;
        }
        assert!(head.contains(" 200 ok"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        client.buffer.drain(..end + 4);
        Some(client)
    }

    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut chunk))
            .await
            .expect("data within 5 s")
            .expect("read");
        assert!(n > 0, "stream closed early: {}", self.buffer);
        self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }

    /// The next event with an id, skipping comments; bounded in reads and time.
    async fn next(&mut self) -> Received {
        for _ in 0..1000 {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let id = block.lines().find_map(|l| l.strip_prefix("id: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(id), Some(data)) = (id, data) {
                    let id = id.parse().expect("numeric id");
                    return (id, serde_json::from_str(data).expect("batch JSON"));
                }
            }
            self.read_more().await;
        }
        panic!("no event in 1000 reads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_over_loopback() {
    tokio::time::timeout(BOUND, async {
        let db = empty_db();
        let start = last_sequence(&db);
        for name in ["One", "Two", "Three"] {
            insert_contact(&db, name);
        }
        let sequences: Vec<u64> = db
            .changes(start, 100)
            .expect("changes")
            .iter()
            .map(|batch| batch.sequence)
            .collect();
        assert_eq!(sequences.len(), 3);

        // One stream at a time: reconnecting needs the first stream's place back.
        let config = server::ServerConfig {
            shutdown_grace: Duration::from_secs(1),
            max_streams: 1,
            ..server::ServerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = server::app_with(db.clone(), &config);
        let running = tokio::spawn(server::serve(listener, router, config, async {
            let _ = stopped.await;
        }));

        let mut client = StreamClient::open(address, &format!("after={start}"), None).await;
        for &expected in &sequences {
            let (id, batch) = client.next().await;
            assert_eq!(id, expected);
            assert_eq!(batch["sequence"], expected);
            assert_eq!(batch["events"][0]["type"], "inserted");
        }
        // A commit while the stream waits arrives live.
        let writer = db.clone();
        tokio::task::spawn_blocking(move || insert_contact(&writer, "Four"))
            .await
            .expect("writer");
        let (live, batch) = client.next().await;
        assert_eq!(live, sequences[2] + 1);
        assert_eq!(batch["events"][0]["record"]["name"], "Four");
        drop(client);

        // Reconnecting resumes after Last-Event-ID, which wins over `after`.
        let mut client = StreamClient::open(address, "after=0", Some(sequences[1])).await;
        assert_eq!(client.next().await.0, sequences[2]);
        assert_eq!(client.next().await.0, live);
        drop(client);

        let _ = stop.send(());
        running
            .await
            .expect("server task")
            .expect("server stops cleanly");
    })
    .await
    .expect("loopback test finishes in time");
}
