//! The module layering ARCHITECTURE.md promises, checked on the source text: the
//! transaction module is in no import circle (nothing it uses imports it), only it
//! opens redb write transactions, no code asks a record which type it is, and no
//! source file is over the size limit.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(path relative to the crate root, text without line comments)`.
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("a readable source file");
            let code: String = text
                .lines()
                .map(|line| match line.find("//") {
                    Some(at) => &line[..at],
                    None => line,
                })
                .collect::<Vec<_>>()
                .join("\n");
            let relative = path
                .strip_prefix(root())
                .expect("under the crate root")
                .to_string_lossy()
                .replace('\\', "/");
            (relative, code)
        })
        .collect()
}

/// Modules the transaction module uses: none of them may use it, or the modules
/// built on it, in turn.
const BELOW_TXN: [&str; 11] = [
    "src/access.rs",
    "src/assign.rs",
    "src/clock.rs",
    "src/codec/",
    "src/config.rs",
    "src/error/",
    "src/index/",
    "src/lifecycle/",
    "src/query/",
    "src/schema/",
    "src/storage/",
];
const ABOVE: [&str; 5] = [
    "crate::txn",
    "crate::db",
    "crate::bulk",
    "crate::analytics",
    "crate::demo",
];

#[test]
fn modules_below_the_transaction_module_do_not_import_it() {
    let mut offences = Vec::new();
    for (path, code) in sources("src") {
        if path == "src/lib.rs" || !BELOW_TXN.iter().any(|p| path.starts_with(p)) {
            continue;
        }
        for name in ABOVE {
            if code.contains(name) {
                offences.push(format!("{path} names {name}"));
            }
        }
        // Re-exports at the crate root (`crate::Snapshot`, `crate::WriteTransaction`)
        // are the transaction module too.
        for item in [
            "crate::Snapshot",
            "crate::WriteTransaction",
            "crate::ReadTransaction",
            "crate::Database",
        ] {
            if code.contains(item) {
                offences.push(format!("{path} names {item}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "import circles through txn: {offences:#?}"
    );
}

#[test]
fn only_the_transaction_module_opens_redb_write_transactions() {
    let mut offences = Vec::new();
    for (path, code) in sources("src") {
        if path.starts_with("src/txn/") {
            continue;
        }
        for pattern in ["redb.begin_write(", "redb::WriteTransaction", "txn.commit("] {
            if code.contains(pattern) {
                offences.push(format!("{path} uses {pattern}"));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn no_code_asks_a_record_which_type_it_is() {
    let mut offences = Vec::new();
    for (path, code) in sources("src") {
        for pattern in ["downcast", "std::any::Any", "dyn Any", "type_id("] {
            if code.contains(pattern) {
                offences.push(format!("{path} uses {pattern}"));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

/// Most lines in one source file.
const MAX_LINES: usize = 800;

#[test]
fn no_source_file_is_over_the_size_limit() {
    let mut offences = Vec::new();
    for dir in ["src", "examples", "tests", "benches", "fuzz/fuzz_targets"] {
        for (path, code) in sources(dir) {
            let lines = code.lines().count();
            if lines > MAX_LINES {
                offences.push(format!("{path}: {lines} lines"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "files over {MAX_LINES} lines: {offences:#?}"
    );
}

/// The module path of a source file under `src/`: `src/txn/mod.rs` is `["txn"]`.
fn module_path(path: &str) -> Vec<String> {
    let inner = path.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Paths named by `use crate::…;` items (braces expanded) and inline `crate::…`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], text: &str, out: &mut Vec<Vec<String>>) {
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (i, c) in text.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&text[start..]);
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (head, rest) = match part.split_once('{') {
                Some((head, rest)) => (head, Some(rest.trim_end().trim_end_matches('}'))),
                None => (part.split(" as ").next().unwrap_or(part), None),
            };
            let mut path = prefix.to_vec();
            path.extend(
                head.split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            match rest {
                Some(rest) => expand(&path, rest, out),
                None => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use crate::") {
        let tail = &rest[at + "use crate::".len()..];
        let end = tail.find(';').unwrap_or(tail.len());
        expand(&[], &tail[..end], &mut out);
        rest = &tail[end..];
    }
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        out.push(
            tail[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
        rest = &tail[end..];
    }
    out
}

/// No two source files of the library import each other, directly or through others
/// (the crate root's re-exports aside: they are the public façade).
#[test]
fn no_import_circles() {
    let files = sources("src");
    let modules: Vec<(Vec<String>, &str)> = files
        .iter()
        .map(|(path, _)| (module_path(path), path.as_str()))
        .collect();
    let resolve = |path: &[String]| -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| modules.iter().position(|(m, _)| m.as_slice() == &path[..n]))
    };
    let edges: Vec<Vec<usize>> = files
        .iter()
        .enumerate()
        .map(|(i, (_, code))| {
            let mut targets: Vec<usize> = crate_paths(code)
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|&t| t != i && !modules[t].0.is_empty())
                .collect();
            targets.sort_unstable();
            targets.dedup();
            targets
        })
        .collect();
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[node] = 1;
        stack.push(node);
        for &next in &edges[node] {
            if state[next] == 1 {
                let from = stack.iter().position(|&n| n == next).unwrap_or(0);
                return Some(stack[from..].to_vec());
            }
            if state[next] == 0
                && let Some(circle) = visit(next, edges, state, stack)
            {
                return Some(circle);
            }
        }
        stack.pop();
        state[node] = 2;
        None
    }
    let mut state = vec![0u8; files.len()];
    for start in 0..files.len() {
        if state[start] == 0 && !modules[start].0.is_empty() {
            let mut stack = Vec::new();
            if let Some(circle) = visit(start, &edges, &mut state, &mut stack) {
                let names: Vec<&str> = circle.iter().map(|&n| modules[n].1).collect();
                panic!("import circle: {}", names.join(" -> "));
            }
        }
    }
}
