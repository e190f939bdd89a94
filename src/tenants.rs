//! Many tenants in one process: one database file per tenant in a directory, opened on
//! demand, closed in least-recently-used order when idle, under one memory budget.
//!
//! **Invariant**: the budget bounds the sum of every open tenant's caches. Half of it is
//! one bitmap cache pool shared by all open tenants (`index::cache::CachePool`: the
//! least recently used entries of any tenant make room); the other half is split into
//! `max_open` equal redb page caches, and no more than `max_open` tenants are ever open.
//! A tenant a caller still holds is never closed, so when all `max_open` are held, the
//! next open is refused with [`Error::TenantsBusy`] rather than going over the budget.
//! *Enforced by* `TenantSet::open_slot` (the only place a tenant is opened) and tested
//! in `tests/tenants.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::db::{Builder, Database};
use crate::error::{Error, Result};
use crate::index::cache::CachePool;
use crate::schema::Timestamp;

/// The file name suffix of a tenant's database.
const SUFFIX: &str = ".redb";

/// The longest tenant name.
pub const MAX_TENANT_NAME: usize = 64;

/// How a [`TenantSet`] sizes its tenants.
#[derive(Debug, Clone)]
pub struct TenantOptions {
    /// Bytes shared by every open tenant's page cache and bitmap cache.
    pub memory_budget: usize,
    /// The most tenants open at once.
    pub max_open: usize,
    /// The builder each tenant is opened with; its cache sizes are replaced by the
    /// set's shares of the budget.
    pub builder: Builder,
}

impl Default for TenantOptions {
    fn default() -> Self {
        TenantOptions {
            memory_budget: 512 << 20,
            max_open: 64,
            builder: Builder::new(),
        }
    }
}

/// What a tenant set knows of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStats {
    /// The tenant's name.
    pub name: String,
    /// The size of its database file.
    pub file_bytes: u64,
    /// Whether it is open now.
    pub open: bool,
    /// Bytes of its decoded bitmaps in the shared cache (0 when closed).
    pub bitmap_cache_bytes: usize,
    /// When it was last handed out by this set, if it was.
    pub last_used: Option<Timestamp>,
}

/// An open tenant.
struct Open {
    db: Database,
    /// The set's use counter at the last hand-out, for least-recently-used closing.
    used: u64,
}

#[derive(Default)]
struct State {
    open: HashMap<String, Open>,
    last_used: HashMap<String, Timestamp>,
    uses: u64,
}

impl State {
    /// Notes a hand-out of `name`; returns its place in the use order.
    fn touch(&mut self, name: &str, now: Timestamp) -> u64 {
        self.uses += 1;
        self.last_used.insert(name.to_owned(), now);
        self.uses
    }
}

/// Tenants in one directory, each a crmdb database file `<name>.redb`.
///
/// ```no_run
/// # fn main() -> crmdb::Result<()> {
/// use crmdb::{Contact, TenantOptions, TenantSet};
/// let tenants = TenantSet::open("tenants", TenantOptions::default())?;
/// let acme = tenants.create("acme")?;
/// acme.write(|tx| tx.insert(Contact { name: "Li Lei".into(), ..Default::default() }))?;
/// drop(acme); // idle now: the set may close it to open others
/// let acme = tenants.get("acme")?; // opened again on demand
/// # Ok(()) }
/// ```
pub struct TenantSet {
    dir: PathBuf,
    options: TenantOptions,
    pool: Arc<CachePool>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for TenantSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSet")
            .field("dir", &self.dir)
            .field("memory_budget", &self.options.memory_budget)
            .field("max_open", &self.options.max_open)
            .finish_non_exhaustive()
    }
}

/// Checks a tenant name: 1 to 64 of `a-z`, `0-9`, `_` and `-`, not starting with `-`,
/// so that it is a file name on every platform and never a path.
pub fn check_tenant_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidArgument(format!(
            "tenant name {name:?}: {reason}"
        )))
    };
    if name.is_empty() || name.len() > MAX_TENANT_NAME {
        return bad("must be 1 to 64 characters");
    }
    if name.starts_with('-') {
        return bad("must not start with '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return bad("only a-z, 0-9, '_' and '-' are allowed");
    }
    Ok(())
}

impl TenantSet {
    /// Opens (creating it if needed) the directory `dir` as a tenant set. No tenant is
    /// opened until asked for.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero budget or `max_open`; [`Error::Io`] when the
    /// directory cannot be created.
    pub fn open(dir: impl AsRef<Path>, options: TenantOptions) -> Result<TenantSet> {
        if options.max_open == 0 || options.memory_budget == 0 {
            return Err(Error::InvalidArgument(
                "a tenant set needs a memory budget and room for one open tenant".into(),
            ));
        }
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(TenantSet {
            dir: dir.as_ref().to_owned(),
            pool: CachePool::new(options.memory_budget / 2),
            clock: Arc::new(SystemClock),
            options,
            state: Mutex::new(State::default()),
        })
    }

    /// The redb page cache each open tenant gets.
    pub fn page_cache_share(&self) -> usize {
        self.options.memory_budget / 2 / self.options.max_open
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    fn builder(&self) -> Builder {
        let mut builder = self.options.builder.clone();
        builder
            .cache_size(self.page_cache_share())
            .bitmap_cache_pool(Arc::clone(&self.pool));
        builder
    }

    /// Creates a tenant and hands it out.
    ///
    /// # Errors
    /// [`Error::TenantExists`], [`Error::InvalidArgument`] for a bad name,
    /// [`Error::TenantsBusy`], or the errors of creating a database.
    pub fn create(&self, name: &str) -> Result<Database> {
        check_tenant_name(name)?;
        let mut state = self.state.lock();
        let path = self.path(name);
        if state.open.contains_key(name) || path.exists() {
            return Err(Error::TenantExists(name.to_owned()));
        }
        self.open_slot(&mut state, name, || self.builder().create(&path))
    }

    /// Hands out a tenant, opening it if it is closed.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], [`Error::InvalidArgument`] for a bad name,
    /// [`Error::TenantsBusy`], or the errors of opening a database.
    pub fn get(&self, name: &str) -> Result<Database> {
        check_tenant_name(name)?;
        let mut state = self.state.lock();
        if state.open.contains_key(name) {
            let used = state.touch(name, self.clock.now());
            if let Some(open) = state.open.get_mut(name) {
                open.used = used;
                return Ok(open.db.clone());
            }
        }
        let path = self.path(name);
        if !path.is_file() {
            return Err(Error::UnknownTenant(name.to_owned()));
        }
        self.open_slot(&mut state, name, || self.builder().open(&path))
    }

    /// Opens a tenant into a free slot, closing the least recently used idle tenant
    /// when every slot is taken.
    fn open_slot(
        &self,
        state: &mut State,
        name: &str,
        open: impl FnOnce() -> Result<Database>,
    ) -> Result<Database> {
        if state.open.len() >= self.options.max_open {
            let idle = state
                .open
                .iter()
                .filter(|(_, o)| o.db.holders() == 1)
                .min_by_key(|(_, o)| o.used)
                .map(|(n, _)| n.clone());
            match idle {
                Some(victim) => {
                    state.open.remove(&victim);
                }
                None => {
                    return Err(Error::TenantsBusy {
                        max_open: self.options.max_open,
                    });
                }
            }
        }
        let db = open()?;
        let used = state.touch(name, self.clock.now());
        state.open.insert(
            name.to_owned(),
            Open {
                db: db.clone(),
                used,
            },
        );
        Ok(db)
    }

    /// The tenants in the directory, by name.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let file = entry?.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(SUFFIX)) else {
                continue;
            };
            if check_tenant_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Closes a tenant if it is open and idle. Returns whether it was open.
    ///
    /// # Errors
    /// [`Error::TenantBusy`] while a caller holds it.
    pub fn close(&self, name: &str) -> Result<bool> {
        let mut state = self.state.lock();
        match state.open.get(name) {
            None => Ok(false),
            Some(open) if open.db.holders() > 1 => Err(Error::TenantBusy(name.to_owned())),
            Some(_) => {
                state.open.remove(name);
                Ok(true)
            }
        }
    }

    /// Deletes a tenant and its file.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`], [`Error::TenantBusy`] while a caller holds it, or
    /// [`Error::Io`].
    pub fn drop_tenant(&self, name: &str) -> Result<()> {
        check_tenant_name(name)?;
        let mut state = self.state.lock();
        if let Some(open) = state.open.get(name) {
            if open.db.holders() > 1 {
                return Err(Error::TenantBusy(name.to_owned()));
            }
            state.open.remove(name);
        }
        let path = self.path(name);
        if !path.is_file() {
            return Err(Error::UnknownTenant(name.to_owned()));
        }
        std::fs::remove_file(&path)?;
        state.last_used.remove(name);
        Ok(())
    }

    /// Per-tenant statistics, by name.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn stats(&self) -> Result<Vec<TenantStats>> {
        let names = self.list()?;
        let state = self.state.lock();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let file_bytes = std::fs::metadata(self.path(&name)).map_or(0, |m| m.len());
            let open = state.open.get(&name);
            out.push(TenantStats {
                file_bytes,
                open: open.is_some(),
                bitmap_cache_bytes: open.map_or(0, |o| o.db.bitmap_cache_bytes()),
                last_used: state.last_used.get(&name).copied(),
                name,
            });
        }
        Ok(out)
    }

    /// How many tenants are open now.
    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }

    /// The bytes of every open tenant's decoded bitmaps (at most half the budget).
    pub fn bitmap_cache_bytes(&self) -> usize {
        self.pool.bytes()
    }

    /// The memory budget.
    pub fn memory_budget(&self) -> usize {
        self.options.memory_budget
    }

    /// The bitmap cache pool's share of the budget.
    pub fn bitmap_cache_share(&self) -> usize {
        self.pool.budget()
    }
}
