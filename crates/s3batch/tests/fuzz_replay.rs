//! The fuzz corpora and crash inputs under `fuzz/`, replayed through the same harness functions the cargo-fuzz
//! targets call (no libFuzzer needed): every input that once crashed a parser, and every input of the minimised
//! corpora, must pass again. One test per target.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of `fuzz/corpus/<target>` and `fuzz/artifacts/<target>`, through `harness`. The corpus must not be
/// empty (a replay of nothing proves nothing).
fn replay(target: &str, harness: fn(&[u8])) {
    let mut corpus = 0;
    for (dir, must_exist) in [("corpus", true), ("artifacts", false)] {
        let dir = fuzz_dir().join(dir).join(target);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) if !must_exist => continue,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a directory entry").path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{target}: {} makes the harness panic", f.display());
            corpus += 1;
        }
    }
    assert!(corpus > 0, "{target}: no corpus to replay");
}

#[test]
fn s3control_xml() {
    replay("s3control_xml", s3batch_api::fuzzing::s3control_xml);
}

#[test]
fn cos_xml() {
    replay("cos_xml", s3batch_api::fuzzing::cos_xml);
}

#[test]
fn sigv4() {
    replay("sigv4", s3batch_api::fuzzing::sigv4);
}

#[test]
fn qsign() {
    replay("qsign", s3batch_api::fuzzing::qsign);
}

#[test]
fn csv_manifest() {
    replay("csv_manifest", s3batch_engine::fuzzing::csv_manifest);
}

#[test]
fn inventory_csv_gz() {
    replay("inventory_csv_gz", s3batch_inventory::fuzzing::csv_gz);
}

#[test]
fn inventory_parquet() {
    replay("inventory_parquet", s3batch_inventory::fuzzing::parquet);
}

#[test]
fn inventory_orc() {
    replay("inventory_orc", s3batch_inventory::fuzzing::orc);
}

#[test]
fn inventory_manifest_json() {
    replay("inventory_manifest_json", s3batch_inventory::fuzzing::manifest_json);
}

#[test]
fn config() {
    replay("config", s3batch::fuzzing::config);
}
