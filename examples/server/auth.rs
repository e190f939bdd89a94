//! Who is asking: bearer tokens mapped to principals (`--tokens FILE`), checked on
//! every request, with a request budget per token; and the [`Caller`] every handler
//! acts as.
//!
//! The token file is JSON, a list of entries; tokens are kept as SHA-256 digests only:
//!
//! ```json
//! [{"name": "ana", "sha256": "<64 hex digits>", "principal": {"owner": 3},
//!   "requests_per_minute": 600, "personal": true}]
//! ```
//!
//! A principal is `{"owner": N}`, `{"manager": N}`, `{"team": "north"}` or
//! `"everyone"`; `"personal": false` has it read contacts' personal fields redacted.
//!
//! The console's files load without a token; opened as `/#token=…`, the console keeps
//! the token for the tab and sends it with every call (the change stream, opened by
//! the browser's `EventSource` without headers, takes it as `access_token`). `server --hash-token SECRET` prints a token's digest. A request
//! without `Authorization: Bearer …`, or with a token no entry has, is a 401; one over
//! its token's budget is a 429 with `retry-after`. The presented token's digest is
//! compared with every entry's, each comparison in constant time. Without a token file
//! every request acts for everyone, as before (the server listens on loopback only).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crmdb::{OwnerId, Principal};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::errors::ApiError;

/// The default request budget of a token, per minute.
const DEFAULT_PER_MINUTE: u32 = 600;

/// A principal as the token file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum PrincipalSpec {
    Owner(u32),
    Manager(u32),
    Team(String),
    Everyone,
}

impl PrincipalSpec {
    fn principal(&self) -> Principal {
        match self {
            PrincipalSpec::Owner(id) => Principal::owner(OwnerId::new(*id)),
            PrincipalSpec::Manager(id) => Principal::manager(OwnerId::new(*id)),
            PrincipalSpec::Team(team) => Principal::team(team.clone()),
            PrincipalSpec::Everyone => Principal::everyone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    principal: PrincipalSpec,
    #[serde(default)]
    requests_per_minute: Option<u32>,
    /// `false`: contacts' personal fields are read redacted.
    #[serde(default)]
    personal: Option<bool>,
}

/// One token: its digest, principal and request budget.
#[derive(Debug)]
struct Token {
    name: String,
    digest: [u8; 32],
    principal: Principal,
    bucket: Mutex<Bucket>,
}

/// A token bucket: `capacity` requests, refilled at `capacity` a minute.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Bucket {
        let capacity = f64::from(per_minute);
        Bucket {
            capacity,
            level: capacity,
            at: Instant::now(),
        }
    }

    /// Takes one request, or says in how many seconds one is back.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.level = (self.level + elapsed * self.capacity / 60.0).min(self.capacity);
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.level) * 60.0 / self.capacity;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The tokens a server accepts.
#[derive(Debug)]
pub struct Tokens {
    tokens: Vec<Token>,
}

/// A token's SHA-256 digest in hex, as the token file keeps it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Whether two digests are equal, in time that does not depend on where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let differ = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(differ) == 0
}

impl Tokens {
    /// Reads a token file.
    ///
    /// # Errors
    /// An unreadable file, malformed JSON, a digest that is not 64 hex digits, two
    /// entries with one name or one digest, a zero budget, or no entry at all.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Tokens::parse(&text)
    }

    /// Parses a token file's text.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let entries: Vec<Entry> =
            serde_json::from_str(text).map_err(|e| format!("the token file: {e}"))?;
        if entries.is_empty() {
            return Err("the token file lists no token".into());
        }
        let mut tokens: Vec<Token> = Vec::with_capacity(entries.len());
        for entry in entries {
            let digest = parse_digest(&entry.sha256.to_ascii_lowercase()).ok_or_else(|| {
                format!(
                    "token {:?}: sha256 is not 64 hex digits (server --hash-token prints it)",
                    entry.name
                )
            })?;
            let per_minute = entry.requests_per_minute.unwrap_or(DEFAULT_PER_MINUTE);
            if per_minute == 0 {
                return Err(format!("token {:?}: requests_per_minute is 0", entry.name));
            }
            if tokens
                .iter()
                .any(|t| t.name == entry.name || t.digest == digest)
            {
                return Err(format!("token {:?} is listed twice", entry.name));
            }
            tokens.push(Token {
                name: entry.name,
                digest,
                principal: match entry.personal {
                    Some(false) => entry.principal.principal().without_personal(),
                    _ => entry.principal.principal(),
                },
                bucket: Mutex::new(Bucket::new(per_minute)),
            });
        }
        Ok(Tokens { tokens })
    }

    /// How many tokens there are (never none: an empty file is refused).
    pub fn count(&self) -> usize {
        self.tokens.len()
    }

    /// The token a request presents, if any entry has it: every entry is compared.
    fn find(&self, presented: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if same_digest(&token.digest, &digest) {
                found = Some(token);
            }
        }
        found
    }
}

/// The principal a request acts as: the token's, or everyone's without a token file.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller(Principal::everyone())))
    }
}

impl Caller {
    /// Refuses a caller that does not see every record: configuration, the feed's
    /// consumers and the like belong to the whole database.
    pub(super) fn must_see_everything(&self) -> Result<(), ApiError> {
        if self.0.reach() == crmdb::Reach::Everything {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs a token whose principal sees every record",
            ))
        }
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether a request is for the console's own files (its page, scripts, styles and the
/// API description), which hold no data: they load without a token, and the console
/// then sends the one it is given (`/#token=…`).
fn is_console_file(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        && (path == "/" || path == "/openapi.json" || path.starts_with("/console/"))
}

/// The token a request presents: its `Authorization: Bearer` header, or for the change
/// stream, which a browser's `EventSource` opens without headers, an `access_token`
/// query parameter.
fn presented(request: &Request) -> Option<String> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let query = || {
        if request.uri().path() != super::changes::STREAM_PATH {
            return None;
        }
        let params: axum::extract::Query<HashMap<String, String>> =
            axum::extract::Query::try_from_uri(request.uri()).ok()?;
        params.0.get("access_token").cloned()
    };
    header.or_else(query).filter(|t| !t.is_empty())
}

/// The middleware: with tokens, a request needs a known bearer token within its
/// budget, and acts as its principal.
pub(super) async fn authenticate(
    State(tokens): State<Option<Arc<Tokens>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = tokens else {
        return next.run(request).await;
    };
    if is_console_file(&request) {
        return next.run(request).await;
    }
    let Some(presented) = presented(&request) else {
        return unauthorized("send Authorization: Bearer <token>");
    };
    let Some(token) = tokens.find(&presented) else {
        return unauthorized("the bearer token is not valid");
    };
    if let Err(wait) = token.bucket.lock().take(Instant::now()) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("token {:?} is over its request budget", token.name),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    request
        .extensions_mut()
        .insert(Caller(token.principal.clone()));
    next.run(request).await
}
