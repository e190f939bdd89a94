//! A real server process on a durable file, killed hard (SIGKILL) while concurrent HTTP
//! clients write to it, restarted, and killed again: the file then holds every write
//! the server acknowledged, each one whole (row, indexes, history, change event).
//!
//! The server process is this test binary run again with the ignored test
//! `crash::crash_child_server` and the database path in `CRMDB_CRASH_CHILD_DB`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmdb::feed::Change;
use crmdb::{AnyRecord, Contact, Database, EntityKind, Query, Snapshot};

use crate::server;
use crate::support::try_read_response;

const CHILD_ENV: &str = "CRMDB_CRASH_CHILD_DB";
const WRITERS: usize = 8;
/// Acknowledged writes per server run before it is killed (or the time bound below).
const WRITES_PER_RUN: usize = 150;
const RUN_BOUND: Duration = Duration::from_secs(20);

/// The server process of the crash test (it serves until killed, at most a minute).
#[test]
#[ignore = "the server process of a_server_killed_mid_load_keeps_every_acknowledged_write"]
fn crash_child_server() {
    let path = std::env::var(CHILD_ENV).expect("run by the crash test, which names the file");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = Database::create(&path).expect("open the durable file");
        let config = server::ServerConfig::default();
        let router = server::app_with(db, &config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        println!("listening on port {port}");
        std::io::stdout().flush().expect("flush");
        let bound = tokio::time::sleep(Duration::from_secs(60));
        server::serve(listener, router, config, bound)
            .await
            .expect("serve");
    });
}

/// Starts the server process on `path` and returns it with its address.
fn start_server(path: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--ignored",
            "--exact",
            "crash::crash_child_server",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server process prints its port")
            .expect("read a line");
        // The test harness prints the test's name on the same line.
        if let Some((_, port)) = line.split_once("listening on port ") {
            break port.trim().parse::<u16>().expect("a port number");
        }
    };
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One writer: posts contacts on a keep-alive connection until the server dies or the
/// run is over, recording the emails the server acknowledged.
fn writer(
    address: SocketAddr,
    run: usize,
    writer: usize,
    acknowledged: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("socket timeout");
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let email = format!("r{run}-w{writer}-{i}@example.com");
        let body = format!(
            r#"{{"name":"r{run} w{writer} {i}","email":"{email}","region":"north","tags":["crash","w{writer}"]}}"#
        );
        let request = format!(
            "POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // A killed server ends the connection, perhaps mid-response.
        let Ok((status, _)) = try_read_response(&mut stream) else {
            return;
        };
        assert_eq!(status, 201, "write {email}");
        acknowledged.lock().expect("lock").push(email);
    }
}

#[test]
fn a_server_killed_mid_load_keeps_every_acknowledged_write() {
    let dir = std::env::temp_dir().join(format!("crmdb-server-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("crm.redb");
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    for run in 0..2 {
        let (mut child, address) = start_server(&path);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
                std::thread::spawn(move || writer(address, run, w, &acknowledged, &stop))
            })
            .collect();
        let started = Instant::now();
        let target = (run + 1) * WRITES_PER_RUN;
        while acknowledged.lock().expect("lock").len() < target && started.elapsed() < RUN_BOUND {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Killed while the writers are still sending.
        child.kill().expect("kill the server");
        child.wait().expect("reap the server");
        stop.store(true, Ordering::Relaxed);
        for handle in writers {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
    let acknowledged: BTreeSet<String> = acknowledged.lock().expect("lock").drain(..).collect();
    assert!(
        acknowledged.len() >= WRITES_PER_RUN,
        "only {} writes were acknowledged",
        acknowledged.len()
    );

    let mut db = Database::open(&path).expect("reopen after the kills");
    assert_eq!(db.check_integrity().ok(), Some(true), "integrity check");
    db.read(|r| {
        let contacts = r.records::<Contact>()?;
        let stored: BTreeSet<String> = contacts
            .iter()
            .filter_map(|(_, c)| c.email.clone())
            .collect();
        let lost: Vec<&String> = acknowledged.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
        // Each stored write is whole: its key, its indexes, its history and its event.
        for (id, contact) in &contacts {
            let email = contact.email.as_deref().expect("every write has an email");
            assert_eq!(r.contact_by_email(email)?, Some(*id), "{email}: its key");
            assert_eq!(r.history(*id)?.len(), 1, "{email}: its creation entry");
        }
        let all: roaring::RoaringBitmap = contacts.iter().map(|(id, _)| id.get()).collect();
        assert_eq!(
            r.ids(EntityKind::Contact, &Query::tag("crash"))?,
            all,
            "the tag index"
        );
        assert_eq!(
            r.ids(EntityKind::Contact, &Query::parse("region = \"north\"")?)?,
            all,
            "the region index"
        );
        let logged: roaring::RoaringBitmap = r
            .changes(0, usize::MAX)?
            .iter()
            .flat_map(|b| &b.events)
            .filter_map(|e| match &e.change {
                Change::Inserted {
                    id,
                    record: AnyRecord::Contact(_),
                } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(logged, all, "the change log's inserts");
        Ok(())
    })
    .expect("reading the reopened file");
    let _ = std::fs::remove_dir_all(&dir);
}
