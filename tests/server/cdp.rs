//! A small client of the Chrome DevTools protocol, enough to drive the console in a
//! headless Chromium: launch it, open a page, evaluate script, type, take screenshots,
//! and collect the page's uncaught exceptions. Messages are JSON over one WebSocket
//! (`tungstenite`); page commands go to a flattened session of one target.
//!
//! Every wait is bounded: a command answers within [`COMMAND_TIMEOUT`], a condition is
//! polled until its deadline, and the browser is killed when the client is dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long one command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Chromium may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Chromium is: `CRMDB_CHROMIUM`, else the first of the usual names on `PATH`.
pub(crate) fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRMDB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A running headless Chromium with one page open.
pub(crate) struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Uncaught exceptions the page threw, as text.
    pub(crate) exceptions: Vec<String>,
    profile: PathBuf,
}

impl Browser {
    /// Starts Chromium headless, with a fresh profile and no background networking,
    /// and opens a blank page of `width`×`height`.
    pub(crate) fn launch(binary: &Path, width: u32, height: u32) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "crmdb-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&profile).expect("profile directory");
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Chromium starts");
        let endpoint = listening_on(&mut child);
        let address = endpoint
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a ws:// endpoint")
            .to_owned();
        let stream = TcpStream::connect(&address).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("read timeout");
        let (socket, _) = tungstenite::client(endpoint.as_str(), stream).expect("WebSocket");
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            exceptions: Vec::new(),
            profile,
        };
        let target = browser.browser_call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params)
    }

    /// A command to the page's session; panics on a protocol error.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send a command");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while Instant::now() < deadline {
            let text = match self.socket.read().expect("read from DevTools") {
                Message::Text(text) => text,
                _ => continue,
            };
            let reply: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if reply["method"] == "Runtime.exceptionThrown" {
                let details = &reply["params"]["exceptionDetails"];
                self.exceptions.push(format!(
                    "{} {}",
                    details["text"].as_str().unwrap_or(""),
                    details["exception"]["description"].as_str().unwrap_or("")
                ));
            }
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
        panic!("{method} did not answer in {COMMAND_TIMEOUT:?}");
    }

    /// Evaluates a script expression in the page (awaiting a promise) and returns its
    /// value; panics on an exception.
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; panics with `what` at the deadline.
    pub(crate) fn wait_for(&mut self, expression: &str, within: Duration, what: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.eval(expression);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let shown =
                    self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
                panic!("timed out waiting for {what} ({expression}); the page shows:\n{shown}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Loads a URL.
    pub(crate) fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "navigation failed: {result}"
        );
    }

    /// Types text into the focused element one character at a time, as a keyboard
    /// would, pausing `pause` between keys.
    pub(crate) fn type_text(&mut self, text: &str, pause: Duration) {
        for c in text.chars() {
            self.call("Input.insertText", json!({"text": c.to_string()}));
            std::thread::sleep(pause);
        }
    }

    /// Writes a PNG of the viewport to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        assert!(data.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, data).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Reads Chromium's stderr until it names its DevTools endpoint; the rest of its
/// output is drained in the background so that it never blocks on a full pipe.
fn listening_on(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, endpoint) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(at) = line.find("ws://") {
                let _ = found.send(line[at..].trim().to_owned());
                break;
            }
        }
        for _ in lines {}
    });
    endpoint
        .recv_timeout(START_TIMEOUT)
        .expect("Chromium names its DevTools endpoint")
}
