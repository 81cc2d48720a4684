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
    assert_eq!(rows.len(), 1 + 9, "{history}");
    assert!(rows[1].contains("expose(\"8080/tcp\")"), "{history}");
    assert!(
        rows.last().unwrap().contains("copy(ctx([\"site/\"]), \"/srv/www/\")"),
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
