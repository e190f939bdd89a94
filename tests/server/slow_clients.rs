//! Slow requests time out, and a real loopback server cuts off slow clients.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::server;
use crate::support::{BOUND, call, check_error, demo_db, read_response, send};

/// A request body that never arrives.
struct StalledBody;

impl hyper::body::Body for StalledBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn slow_requests_time_out() {
    let config = server::ServerConfig {
        request_timeout: Duration::from_millis(200),
        ..server::ServerConfig::default()
    };
    let db = demo_db();
    let app = server::app_with(db.clone(), &config);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/contacts")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(StalledBody))
        .expect("request builds");
    let started = std::time::Instant::now();
    check_error(
        &send(&app, request).await,
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        call(&app, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
    let contacts = db
        .stats()
        .expect("stats")
        .records
        .iter()
        .find(|k| k.kind == crmdb::EntityKind::Contact)
        .map(|k| k.live);
    assert_eq!(contacts, Some(300));
}

/// The client side of the loopback test, on plain blocking sockets.
fn loopback_client(address: std::net::SocketAddr) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let connect = || {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("socket timeout");
        stream
    };

    // A slow client sends half a header and then nothing.
    let mut slow = connect();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .expect("write");
    let started = std::time::Instant::now();

    // Meanwhile others are served, several requests on one connection.
    let mut client = connect();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let contact = br#"{"name":"Over TCP","email":"tcp@example.com"}"#;
    let request = format!(
        "POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        contact.len()
    );
    client.write_all(request.as_bytes()).expect("write");
    client.write_all(contact).expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!(status, 201, "{body}");
    client
        .write_all(b"POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("malformed_json"))
    );

    // The slow client is disconnected once the header timeout passes (a read error
    // such as a reset counts as disconnected; the 5 s socket timeout does not).
    let mut rest = Vec::new();
    let result = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    if let Err(error) = &result {
        assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "slow client still connected after {waited:?}"
        );
    }
    assert!(
        waited >= Duration::from_millis(250),
        "cut off too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "cut off too late: {waited:?}"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "unexpected reply: {}",
        String::from_utf8_lossy(&rest)
    );

    // Still serving after all that.
    client
        .write_all(b"GET /contacts/300 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let (status, body) = read_response(&mut client);
    assert_eq!((status, &body["email"]), (200, &json!("tcp@example.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_server_cuts_off_slow_clients() {
    tokio::time::timeout(BOUND, async {
        let config = server::ServerConfig {
            header_read_timeout: Duration::from_millis(300),
            shutdown_grace: Duration::from_secs(1),
            ..server::ServerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = server::app_with(demo_db(), &config);
        let running = tokio::spawn(server::serve(listener, router, config, async {
            let _ = stopped.await;
        }));
        let client = tokio::task::spawn_blocking(move || loopback_client(address)).await;
        let _ = stop.send(());
        let stopped = running.await;
        if let Err(panic) = client {
            std::panic::resume_unwind(panic.into_panic());
        }
        stopped.expect("server task").expect("server stops cleanly");
    })
    .await
    .expect("loopback test finishes in time");
}
