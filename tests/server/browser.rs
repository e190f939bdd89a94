//! The console in a real headless Chromium over a loopback server with demo data: a
//! typed query's count is the API's, a parse error is shown at its offset, the funnel
//! chart renders, a record page shows its history and events, the table sorts and
//! pages, a watched segment's tail shows who enters, live, and the analytics and
//! identity pages load with their tables and no error. Screenshots of each page
//! go to a temporary directory, whose path is printed.
//!
//! A second run is against a server with tokens, opened as `/#token=…`.
//!
//! Without Chromium the test says so and passes; with `CRMDB_REQUIRE_BROWSER` set (CI,
//! once it has installed Chromium) a missing browser is a failure.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};

use crate::cdp::{Browser, find_chromium};
use crate::server;
use crate::support::{call, percent_encode};

/// How long a page may take to show what it loaded.
const PAGE_WAIT: Duration = Duration::from_secs(15);
/// Contacts in the demo data.
const CONTACTS: u32 = 3_000;

/// The console, driven through the browser, and the API, asked in process.
struct Session {
    browser: Browser,
    base: String,
    app: axum::Router,
    runtime: tokio::runtime::Runtime,
    shots: PathBuf,
}

impl Session {
    fn api(&self, method: Method, uri: &str, body: Option<Value>) -> Value {
        let (status, value) = self.runtime.block_on(call(&self.app, method, uri, body));
        assert!(status.is_success(), "{uri}: {status} {value}");
        value
    }

    /// Opens a console route and waits until its page says it has loaded.
    fn open(&mut self, route: &str, page: &str) {
        self.browser
            .eval("document.body && (document.body.dataset.loaded = '')");
        self.browser.navigate(&format!("{}/{route}", self.base));
        self.browser.wait_for(
            &format!(
                "!!document.body && document.body.dataset.loaded === '1' && \
                 document.body.dataset.page === '{page}'"
            ),
            PAGE_WAIT,
            &format!("the {page} page to load"),
        );
    }

    fn shot(&mut self, name: &str) {
        let path = self.shots.join(format!("{name}.png"));
        self.browser.screenshot(&path);
        println!("screenshot: {}", path.display());
    }

    /// Empties the query box and types `text` into it.
    fn type_query(&mut self, text: &str) {
        self.browser.eval(
            "(() => { const i = document.querySelector('#query-input'); i.value = ''; \
             i.dispatchEvent(new Event('input', {bubbles: true})); i.focus(); return true })()",
        );
        self.browser.type_text(text, Duration::from_millis(25));
    }

    fn count_of(&mut self, selector: &str) -> u64 {
        self.browser
            .eval(&format!("document.querySelectorAll({selector:?}).length"))
            .as_u64()
            .unwrap_or(0)
    }
}

/// The Chromium to drive, or `None` (with a message) when there is none and none is
/// required.
fn chromium(test: &str) -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("CRMDB_REQUIRE_BROWSER").is_none(),
            "CRMDB_REQUIRE_BROWSER is set, but no Chromium was found"
        );
        eprintln!(
            "SKIPPED {test}: no Chromium found (install Debian's chromium package, or set \
             CRMDB_CHROMIUM to its path)"
        );
    }
    found
}

/// A loopback server for `app` and a browser in front of it; `finish` stops both.
fn start(chromium: &std::path::Path, app: axum::Router, name: &str) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = server::ServerConfig {
        shutdown_grace: Duration::from_secs(1),
        ..server::ServerConfig::default()
    };
    let serving = runtime.spawn(server::serve(listener, app.clone(), config, async {
        let _ = stopped.await;
    }));
    let shots = std::env::temp_dir().join(format!("crmdb-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    println!("screenshots go to {}", shots.display());
    Running {
        session: Session {
            browser: Browser::launch(chromium, 1280, 900),
            base: format!("http://{address}"),
            app,
            runtime,
            shots,
        },
        stop,
        serving,
    }
}

/// A session with its server running.
struct Running {
    session: Session,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Checks that the page threw nothing, then stops the server.
    fn finish(mut self) {
        let exceptions = std::mem::take(&mut self.session.browser.exceptions);
        assert!(exceptions.is_empty(), "the page threw: {exceptions:?}");
        let _ = self.stop.send(());
        self.session
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), self.serving).await })
            .expect("the server stops in time")
            .expect("server task")
            .expect("server stops cleanly");
    }
}

fn demo(contacts: u32) -> crmdb::Database {
    let db = crmdb::Database::in_memory().expect("database");
    crmdb::demo::Generator::new(contacts)
        .load(&db, |_| {})
        .expect("demo data");
    db
}

#[test]
fn the_console_in_a_real_browser() {
    let Some(chromium) = chromium("the_console_in_a_real_browser") else {
        return;
    };
    let mut running = start(&chromium, server::app(demo(CONTACTS)), "console");
    let session = &mut running.session;
    query_count_and_error(session);
    funnel_chart(session);
    record_page(session);
    records_table(session);
    segment_tail(session);
    other_pages(session);
    running.finish();
}

/// A server run with tokens: the console loads, says a token is wanted, and opened as
/// `/#token=…` counts what the token's principal sees, with the token gone from the
/// address (`tests/server/auth.rs` checks the stream's `access_token`).
#[test]
fn the_console_with_a_token() {
    use crate::server::auth::{Tokens, hash_token};
    let Some(chromium) = chromium("the_console_with_a_token") else {
        return;
    };
    let secret = "console-secret";
    let file = json!([{"name": "rep", "sha256": hash_token(secret), "principal": {"owner": 0}}]);
    let tokens = std::sync::Arc::new(Tokens::parse(&file.to_string()).expect("tokens"));
    let db = demo(1_000);
    let rep = crmdb::Principal::owner(crmdb::OwnerId::new(0));
    let mine = db
        .read_as(&rep, |r| {
            use crmdb::Snapshot as _;
            r.count(crmdb::EntityKind::Contact, &crmdb::Query::parse("tag:vip")?)
        })
        .expect("the rep's count");
    let app = server::app_secured(db, &server::ServerConfig::default(), Some(tokens));
    let mut running = start(&chromium, app, "console-token");
    let s = &mut running.session;
    s.browser.navigate(&format!("{}/#/query", s.base));
    s.browser.wait_for(
        "!!document.querySelector('.error') && document.querySelector('.error').textContent.includes('#token=')",
        PAGE_WAIT,
        "the console to say it wants a token",
    );
    s.shot("no-token");
    s.browser
        .eval("document.body && (document.body.dataset.loaded = '')");
    s.browser.navigate(&format!("{}/#token={secret}", s.base));
    s.browser.wait_for(
        "!!document.body && document.body.dataset.loaded === '1' && document.body.dataset.page === 'query'",
        PAGE_WAIT,
        "the query page with the token",
    );
    let address = s.browser.eval("location.href");
    assert!(
        address
            .as_str()
            .is_some_and(|a| a.contains("#/query") && !a.contains(secret)),
        "the token left the address: {address}"
    );
    s.type_query("tag:vip");
    s.browser.wait_for(
        &format!(
            "(() => {{ const c = document.querySelector('#query-count'); \
             return c && !c.dataset.pending && c.textContent === '{mine}' }})()"
        ),
        PAGE_WAIT,
        &format!("the rep's count {mine}"),
    );
    s.shot("with-token");
    running.finish();
}

fn query_count_and_error(s: &mut Session) {
    s.open("#/query", "query");
    let query = "tag:vip AND region = \"shanghai\" AND lifetime_value > 100";
    let uri = format!("/contacts?limit=0&query={}", percent_encode(query));
    let expected = s.api(Method::GET, &uri, None)["count"].to_string();
    s.type_query(query);
    let shown = s.browser.wait_for(
        &format!(
            "(() => {{ const c = document.querySelector('#query-count'); \
             return c && !c.dataset.pending && c.textContent === '{expected}' }})()"
        ),
        PAGE_WAIT,
        &format!("the count {expected}"),
    );
    assert_eq!(shown, json!(true));
    assert_eq!(
        s.browser
            .eval("document.querySelector('#query-input').value"),
        json!(query),
        "the typed text"
    );
    s.browser.wait_for(
        "document.querySelectorAll('#group-charts svg, #group-charts .bar').length > 0",
        PAGE_WAIT,
        "the group-by charts",
    );
    s.shot("query");

    // A parse error, shown at the offset the API gives.
    let broken = "tag:vip AND (region = \"x\"";
    let uri = format!("/contacts?limit=0&query={}", percent_encode(broken));
    let (status, refused) = s.runtime.block_on(call(&s.app, Method::GET, &uri, None));
    assert_eq!(status.as_u16(), 422, "{refused}");
    let offset = refused["error"]["offset"].as_u64().expect("an offset");
    s.type_query(broken);
    let shown = s.browser.wait_for(
        "document.querySelector('#query-error').dataset.offset",
        PAGE_WAIT,
        "the parse error",
    );
    assert_eq!(shown, json!(offset.to_string()));
    let text = s
        .browser
        .eval("document.querySelector('#query-error').textContent");
    let message = refused["error"]["message"].as_str().expect("a message");
    assert!(
        text.as_str().is_some_and(|t| t.contains(message)),
        "{text} shows {message}"
    );
    s.shot("query-error");
}

fn funnel_chart(s: &mut Session) {
    s.open("#/funnel", "funnel");
    let funnel = s.api(
        Method::POST,
        "/analytics/funnel",
        Some(json!({"from": "2000-01-01", "to": "2100-01-01"})),
    );
    let stages = funnel["stages"].as_array().expect("stages").len() as u64;
    assert_eq!(s.count_of("#funnel-chart rect.funnel-bar"), stages);
    let widest = s.browser.eval(
        "Math.max(...[...document.querySelectorAll('#funnel-chart rect.funnel-bar')]\
         .map(r => r.getBBox().width))",
    );
    assert!(
        widest.as_f64().is_some_and(|w| w > 10.0),
        "bars are drawn: {widest}"
    );
    assert_eq!(s.count_of("#funnel-table tbody tr"), stages);
    s.shot("funnel");
}

fn record_page(s: &mut Session) {
    // A contact whose stage has moved, so that its timeline has entries.
    let (id, history) = (0..200)
        .find_map(|id| {
            let history = s.api(Method::GET, &format!("/contacts/{id}/history"), None);
            let entries = history["history"].as_array().map_or(0, Vec::len);
            (entries > 1).then_some((id, entries as u64))
        })
        .expect("a demo contact with a stage history");
    s.api(
        Method::POST,
        &format!("/contacts/{id}/tags"),
        Some(json!({"tag": "seen_in_browser"})),
    );
    let contact = s.api(Method::GET, &format!("/contacts/{id}"), None);
    s.open(&format!("#/record/contact/{id}"), "record");
    assert_eq!(s.count_of("#record-history li.history-entry"), history);
    let fields = s
        .browser
        .eval("document.querySelector('#record-fields').textContent");
    let name = contact["name"].as_str().expect("a name");
    assert!(
        fields.as_str().is_some_and(|f| f.contains(name)),
        "{fields}"
    );
    s.browser.wait_for(
        "[...document.querySelectorAll('#record-changes li.change-event')]\
         .some(li => li.textContent.includes('seen_in_browser'))",
        PAGE_WAIT,
        "the tag event among the record's changes",
    );
    s.browser.wait_for(
        "document.querySelector('#record-consent') !== null",
        PAGE_WAIT,
        "the consent section",
    );
    s.shot("record");
}

fn records_table(s: &mut Session) {
    s.open(
        "#/records/contact?sort=lifetime_value&descending=1",
        "records",
    );
    let page = s.api(
        Method::GET,
        "/contacts?sort=lifetime_value&descending=true&limit=50",
        None,
    );
    let first = page["items"][0]["id"].to_string();
    let shown = s
        .browser
        .eval("document.querySelector('#records-table tbody tr').dataset.id");
    assert_eq!(shown, json!(first));
    let total = s
        .browser
        .eval("document.querySelector('#records-total').textContent");
    assert_eq!(total, json!(CONTACTS.to_string()));
    // The next page starts where the API's second page does.
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let second = s.api(
        Method::GET,
        &format!("/contacts?sort=lifetime_value&descending=true&limit=50&cursor={cursor}"),
        None,
    );
    s.browser
        .eval("document.body.dataset.loaded = ''; document.querySelector('#next-page').click()");
    let expected = second["items"][0]["id"].to_string();
    s.browser.wait_for(
        &format!(
            "document.body.dataset.loaded === '1' && \
             document.querySelector('#records-table tbody tr').dataset.id === '{expected}'"
        ),
        PAGE_WAIT,
        "the second page",
    );
    s.shot("records");
}

fn segment_tail(s: &mut Session) {
    s.api(
        Method::PUT,
        "/segments/browser_probe",
        Some(json!({"kind": "contact", "query": "tag:browser_probe"})),
    );
    s.api(Method::PUT, "/segments/browser_probe/watch", None);
    s.open("#/segments", "segments");
    s.browser.wait_for(
        "[...document.querySelectorAll('#segments-table tr')]\
         .some(tr => tr.textContent.includes('browser_probe'))",
        PAGE_WAIT,
        "the saved segment in the table",
    );
    // Give the page's stream a moment to connect, then make someone enter.
    std::thread::sleep(Duration::from_millis(500));
    s.api(
        Method::POST,
        "/contacts/7/tags",
        Some(json!({"tag": "browser_probe"})),
    );
    s.browser.wait_for(
        "[...document.querySelectorAll('#segment-tail li.tail-event')]\
         .some(li => li.classList.contains('entered') && li.dataset.segment === 'browser_probe' \
               && li.querySelector('a[href=\"#/record/contact/7\"]') !== null)",
        PAGE_WAIT,
        "contact 7 entering the watched segment, live",
    );
    s.shot("segments");
}

/// The pages the steps above do not drive: each loads, shows its table or chart, and
/// no error.
fn other_pages(s: &mut Session) {
    s.api(Method::POST, "/analytics/rfm/refresh", Some(json!({})));
    for (route, page, shown) in [
        ("#/owners", "owners", "#owners-table tbody tr"),
        ("#/products", "products", "#products-table tbody tr"),
        ("#/rfm", "rfm", "#rfm-charts .bar"),
    ] {
        s.open(route, page);
        s.browser.wait_for(
            &format!("document.querySelectorAll({shown:?}).length > 0"),
            PAGE_WAIT,
            &format!("the {page} page's content"),
        );
        assert_eq!(s.count_of("#view .error"), 0, "{page} shows an error");
        s.shot(page);
    }

    // A copy of a contact from another form, found as a candidate and shown.
    let original = s.api(Method::GET, "/contacts/0", None);
    let copy = s.api(
        Method::POST,
        "/contacts",
        Some(json!({"name": original["name"], "phone": original["phone"],
                    "region": original["region"]})),
    );
    let link = format!("#/record/contact/{}", copy["id"]);
    s.open("#/identity", "identity");
    s.browser.wait_for(
        &format!("document.querySelector('#candidates-table a[href=\"{link}\"]') !== null"),
        PAGE_WAIT,
        "the planted copy among the duplicate candidates",
    );
    assert_eq!(s.count_of("#view .error"), 0, "identity shows an error");
    s.shot("identity");
}
