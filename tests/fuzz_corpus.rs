//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same
//! checks the fuzz targets run, so that the corpus, and every crash ever minimised into
//! it, is a regression test of the ordinary test run. Regression cases found by fuzzing
//! are also spelled out below as named tests.

#[path = "support/fuzz_checks.rs"]
mod fuzz_checks;

use std::fs;
use std::path::{Path, PathBuf};

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| {
            path.is_file()
                && !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for file in corpus_files(target) {
        let data = fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        if let Err(panic) = outcome {
            eprintln!("corpus file {} failed", file.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn query_parse_corpus() {
    replay("query_parse", fuzz_checks::check_query_parse);
}

#[test]
fn ops_model_corpus() {
    replay("ops_model", fuzz_checks::check_ops_model);
}

#[test]
fn decode_corpus() {
    replay("decode", fuzz_checks::check_decode);
}

// Regression cases minimised from fuzzing crashes. They state the promised behaviour.

/// `query_parse`: `Display` writes string literals with Rust's debug escapes (`\u{10}`,
/// `\0`, `\t`, ...), which the parser does not read back, so the canonical text of a
/// query whose string holds a control character does not parse.
#[test]
fn canonical_text_of_control_characters_parses_back() {
    for text in ["e in(\"\u{10}\")", "region = \"a\tb\"", "region = \"\0\""] {
        fuzz_checks::check_query_parse(text.as_bytes());
    }
}

/// `query_parse`: a WITHIN duration whose last character is multi-byte panicked the
/// parser (it split the word one byte before its end) instead of returning an error.
#[test]
fn within_duration_ending_in_a_multibyte_character_is_an_error() {
    for text in ["x within é", "x within 1Ί", "last_order WITHIN 9日"] {
        assert!(crmdb::Query::parse(text).is_err(), "{text:?}");
    }
}

/// `query_parse`: `segment:""` parsed to a segment with an empty name, whose canonical
/// text `segment:` does not parse back. Names that no saved segment can have, and empty
/// values, are refused by the parser with the offset of the term.
#[test]
fn empty_and_unnameable_segment_names_are_refused() {
    for (text, offset) in [
        ("segment:\"\"", 8),
        ("tag:vip OR segment:\"a b\"", 11),
        ("segment:Vips", 0),
        ("tag:\"\"", 4),
        ("region in (\"x\", \"\")", 16),
    ] {
        fuzz_checks::check_query_parse(text.as_bytes());
        match crmdb::Query::parse(text) {
            Err(e) => assert_eq!(e.offset, offset, "{text:?}: {e}"),
            Ok(q) => panic!("{text:?} parsed to {q:?}"),
        }
    }
    let ok = crmdb::Query::parse("segment:\"vips_2026\"").expect("a valid name parses");
    assert_eq!(ok.to_string(), "segment:vips_2026");
}
