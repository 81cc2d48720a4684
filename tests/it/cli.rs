//! `strata graph`, `images`, `inspect`, `history`.

use crate::common::*;

#[test]
fn graph_shows_keys_and_cache_state_in_three_formats() {
    let p = Project::example("hello");
    let before: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    let nodes = before["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["op"] == "copy" && n["cache"] == "missing"));
    assert!(nodes.iter().all(|n| n["key"].as_str().unwrap().len() == 64));
    p.ok(&["build"]);
    let after: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    assert!(after["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["op"] == "copy")
        .all(|n| n["cache"] == "cached"));
    assert_eq!(before["nodes"][1]["key"], after["nodes"][1]["key"]);

    let dot = p.ok(&["graph", "--format", "dot"]).stdout;
    assert!(dot.starts_with("digraph strata {") && dot.contains(" -> n"), "{dot}");
    let text = p.ok(&["graph"]).stdout;
    assert!(text.contains("cached") && text.contains("image hello = #"), "{text}");
}

#[test]
fn images_inspect_and_history_read_the_store() {
    let p = Project::example("hello");
    let digest = p.build_digest(&["hello"], "hello");
    let images = p.ok(&["images"]).stdout;
    assert!(
        images.contains("example/hello:latest") && images.contains("example/hello:1.0"),
        "{images}"
    );
    assert!(images.contains(&digest[..19]));

    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "example/hello:latest"]).stdout).unwrap();
    assert_eq!(inspect["digest"], digest);
    assert_eq!(inspect["manifest"]["schemaVersion"], 2);
    assert_eq!(inspect["config"]["config"]["Cmd"][0], "world");
    assert_eq!(
        inspect["config"]["config"]["ExposedPorts"]["8080/tcp"],
        serde_json::json!({})
    );

    let history = p.ok(&["history", "example/hello:latest"]).stdout;
    let rows: Vec<&str> = history.lines().collect();
    assert_eq!(rows.len(), 1 + 10, "{history}");
    assert!(
        rows[1].ends_with("expose(\"8080/tcp\") (strata.rhai:18:6)"),
        "{history}"
    );
    assert!(
        rows.last()
            .unwrap()
            .ends_with("copy(<state>.path(\"/bin/busybox\"), \"/bin/sh\") (strata.rhai:9:6)"),
        "{history}"
    );
    assert!(!history.contains("<missing>"));

    let missing = p.run(&["inspect", "nope"]);
    assert_eq!(missing.code, 2);
}

#[test]
fn the_store_is_an_oci_layout_that_skopeo_reads() {
    let p = Project::example("hello");
    let digest = p.build_digest(&["hello"], "hello");
    let out = tool(
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:example/hello:latest", p.store.path().display()),
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["Digest"], digest);
}

#[test]
fn progress_is_plain_json_or_live_and_verbose_streams_run_output() {
    let p = Project::new();
    std::fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.recipe(r#"image("s", from("rootfs:busybox.tar").run("echo hello-from-run; sleep 0.3"));"#);

    let quiet = p.ok(&["build", "--progress", "plain"]);
    assert!(
        quiet.stderr.contains("RUN     run(") && !quiet.stderr.contains("        hello-from-run"),
        "{}",
        quiet.stderr
    );

    let verbose = p.ok(&["build", "--no-cache", "--progress", "plain", "--verbose"]);
    assert!(verbose.stderr.contains("        hello-from-run"), "{}", verbose.stderr);

    let json = p.ok(&["build", "--no-cache", "--progress", "json"]);
    let events: Vec<serde_json::Value> = json.stderr.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in ["planned", "started", "output", "done", "finished"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let started = events
        .iter()
        .find(|e| e["event"] == "started" && e["description"].as_str().unwrap().starts_with("run("))
        .unwrap();
    assert_eq!(started["origin"], "strata.rhai:1:39");
    assert_eq!(started["key"].as_str().unwrap().len(), 64);

    // On a terminal: a live block of running steps, redrawn in place.
    let log = p.path("tty.log");
    let cmd = format!(
        "STRATA_HOME={} {} build --no-cache",
        p.store.path().display(),
        env!("CARGO_BIN_EXE_strata")
    );
    let status = std::process::Command::new("script")
        .args(["-qec", &cmd, log.to_str().unwrap()])
        .current_dir(p.dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let screen = std::fs::read_to_string(&log).unwrap();
    assert!(
        screen.contains("\r\u{1b}[2K") && screen.contains("s run(\"echo hello-from-run"),
        "{screen}"
    );
    assert!(screen.contains("finished in"), "{screen}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    // `strata graph | head -1`: the reader goes away after one line.
    let p = Project::example("hello");
    let mut child = p
        .cmd(&["graph", "--format", "dot"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before strata writes
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn flags_with_fixed_values_list_them() {
    let p = Project::example("hello");
    let bad = p.run(&["build", "--compression", "brotli"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("invalid value 'brotli' for '--compression <COMPRESSION>'")
            && bad.stderr.contains("[possible values: gzip, zstd, zstd-fast]"),
        "{}",
        bad.stderr
    );
    let bad = p.run(&["graph", "--format", "svg"]);
    assert!(
        bad.stderr.contains("[possible values: text, dot, json]"),
        "{}",
        bad.stderr
    );
    let bad = p.run(&["build", "--progress", "fancy"]);
    assert!(
        bad.stderr.contains("[possible values: auto, tty, plain, json]"),
        "{}",
        bad.stderr
    );
}
