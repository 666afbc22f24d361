//! `bench federation` and `bench storm` at small sizes: the commands run to
//! the end, every tier converges, and no server reads a document from
//! storage that did not change (the figures' own claim, checked on what they
//! print).

use std::process::Command;

/// Runs `lianxin bench <args>` and returns its stdout lines.
fn bench(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_lianxin"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("lianxin runs");
    assert!(
        out.status.success(),
        "lianxin bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of `key` in a `key=value` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn number(line: &str, key: &str) -> u64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {line}"))
}

fn line<'a>(lines: &'a [String], parts: &[&str]) -> &'a str {
    lines
        .iter()
        .find(|l| parts.iter().all(|p| l.split_whitespace().any(|w| w == *p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in {lines:#?}"))
}

#[test]
fn a_station_reconnects_loading_only_changed_documents() {
    let lines = bench(&[
        "federation",
        "--profiles",
        "loopback",
        "--docs",
        "60",
        "--station-changes",
        "20",
        "--station-docs",
        "5",
        "--county-changes",
        "12",
        "--county-docs",
        "4",
        "--new-docs",
        "2",
        "--stock-timeout",
        "120",
    ]);
    let scenario = line(&lines, &["scenario=station-day"]);
    let changed = number(scenario, "docs_changed_station") + number(scenario, "docs_changed_county");
    assert_eq!(changed, 5 + 2 + 4 + 2);
    let batched = line(&lines, &["profile=loopback", "mode=batched", "converged=true"]);
    for side in ["docs_loaded_station", "docs_loaded_county"] {
        assert!(
            number(batched, side) <= changed,
            "{side}: more documents read than changed: {batched}"
        );
    }
    assert!(number(batched, "bytes") > 0 && number(scenario, "floor_bytes") > 0);
    // The uplink's exchange is one connection after its requests over HTTP.
    let sockets: Vec<&String> = lines
        .iter()
        .filter(|l| field(l, "request") == Some("GET:/batch"))
        .collect();
    assert_eq!(sockets.len(), 1, "{lines:#?}");
    let stock = line(&lines, &["profile=loopback", "mode=stock", "converged=true"]);
    // Stock automerge-repo offers every document, so the station reads every
    // one it does not have in its cache (the ones the day changed).
    assert!(number(stock, "docs_loaded_station") >= 60 - changed, "{stock}");
}

#[test]
fn a_storm_of_idle_phones_loads_no_document() {
    let lines = bench(&[
        "storm",
        "--phones",
        "60",
        "--phones-per-unit",
        "20",
        "--docs-per-phone",
        "5",
        "--changed-percent",
        "10",
    ]);
    for run in ["run=1", "run=2"] {
        let idle = line(&lines, &["storm=idle", run, "phones=60"]);
        assert_eq!(number(idle, "completed"), 60, "{idle}");
        assert_eq!(number(idle, "docs_loaded"), 0, "{idle}");
    }
    let changes = line(&lines, &["storm=changes", "phones=60"]);
    assert_eq!(number(changes, "completed"), 60, "{changes}");
    assert_eq!(number(changes, "docs_changed"), 6, "{changes}");
    assert!(number(changes, "docs_loaded") <= 6, "{changes}");
    assert_eq!(field(changes, "changes_stored"), Some("true"), "{changes}");
}
