//! The scheduler: parallel steps, shared nodes built once, failures.

use std::fs;

use crate::common::*;

#[test]
fn independent_steps_run_at_the_same_time() {
    // Each stage announces itself in a shared cache and waits for the other
    // three: run one after another, the first would wait forever (and time out).
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        let out = base;
        for i in 1..=4 {
            let stage = base.run(`touch /meet/${i}; n=0; while [ $(ls /meet | wc -l) -lt 4 ]; do sleep 0.05; n=$((n+1)); done; echo ${i} > /out`,
                                 #{ cache: [#{ target: "/meet", id: "rendezvous", sharing: "shared" }], timeout: 30 });
            out = out.copy(stage.path("/out"), `/out${i}`);
        }
        image("w4", out);
        "#,
    );
    let r = p.run(&["build", "--jobs", "4", "--progress", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // All four stages started before any of them finished.
    let events: Vec<serde_json::Value> = r.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let is_run = |e: &serde_json::Value| e["description"].as_str().is_some_and(|d| d.starts_with("run("));
    let runs: std::collections::HashSet<u64> = events
        .iter()
        .filter(|e| e["event"] == "started" && is_run(e))
        .map(|e| e["node"].as_u64().unwrap())
        .collect();
    assert_eq!(runs.len(), 4, "{}", r.stderr);
    let first_done = events
        .iter()
        .position(|e| e["event"] == "done" && runs.contains(&e["node"].as_u64().unwrap()))
        .unwrap();
    let last_start = events
        .iter()
        .rposition(|e| e["event"] == "started" && is_run(e))
        .unwrap();
    assert!(
        last_start < first_done,
        "a stage finished before all had started:\n{}",
        r.stderr
    );
}

#[test]
fn equal_steps_of_different_targets_run_once() {
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        image("a", base.run("date +%s%N > /stamp").label("t", "a"));
        image("b", base.run("date +%s%N > /stamp").label("t", "b"));
        "#,
    );
    let r = p.ok(&["build"]);
    assert_eq!(r.stderr.matches("RUN     run(").count(), 1, "{}", r.stderr);
    let a: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "a"]).stdout).unwrap();
    let b: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "b"]).stdout).unwrap();
    assert_eq!(a["config"]["rootfs"], b["config"]["rootfs"]);
}

#[test]
fn a_failure_stops_the_build_and_keep_going_builds_the_rest() {
    let p = busybox_project(
        "let base = from(\"rootfs:busybox.tar\");\nimage(\"bad\", base.run(\"exit 7\"));\nimage(\"good\", base.run(\"echo ok > /ok\"));\n",
    );
    let r = p.run(&["build", "--jobs", "1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("strata.rhai:2:19") && r.stderr.contains("exit code 7"),
        "{}",
        r.stderr
    );
    assert!(
        !p.ok(&["images"]).stdout.contains("good"),
        "nothing is exported from a failed build"
    );

    let r = p.run(&["build", "--keep-going"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("good\tgood\tsha256:"), "{}", r.stdout);
    assert!(r.stderr.contains("skipped bad"), "{}", r.stderr);
}

#[test]
fn two_processes_sharing_a_node_build_it_once() {
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar").run("echo built >> /log/runs; sleep 1", #{ cache: [#{ target: "/log", id: "runs", sharing: "shared" }] }));"#,
    );
    p.ok(&["graph"]);
    let runs = p.ok_concurrently(2, &["build"]);
    assert_eq!(digest_of(&runs[0].stdout, "s"), digest_of(&runs[1].stdout, "s"));
    let cache = fs::read_dir(p.store.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.is_dir())
        .unwrap();
    assert_eq!(fs::read_to_string(cache.join("runs")).unwrap(), "built\n");
}

/// Every file of the store but locks and scratch, with its size and mtime.
fn store_files(root: &std::path::Path) -> std::collections::BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with("locks") || rel.starts_with("tmp") {
                continue;
            }
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                // Records are touched when used (gc counts age from last use).
                let mtime = if rel.starts_with("records/") {
                    std::time::UNIX_EPOCH
                } else {
                    meta.modified().unwrap()
                };
                out.insert(rel, (meta.len(), mtime));
            }
        }
    }
    out
}

#[test]
fn a_fully_cached_build_writes_nothing_and_no_cache_rebuilds_everything() {
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        image("a", base.copy(ctx("f.txt"), "/f.txt").run("cat /f.txt > /g.txt"));
        image("b", base.run("echo b > /b"));
        "#,
    );
    p.write("f.txt", "f");
    p.ok(&["build", "-o", &format!("oci:{}", p.path("oci").display())]);
    p.ok(&["build"]); // settles the stat cache (files younger than 2 s are re-hashed)
    std::thread::sleep(std::time::Duration::from_millis(2100));
    p.ok(&["build"]);
    let before = store_files(p.store.path());
    let again = p.ok(&["build"]);
    assert!(again.stderr.contains("0 built, 4 cached"), "{}", again.stderr);
    assert_eq!(store_files(p.store.path()), before);

    let all = p.ok(&["build", "--no-cache"]);
    assert!(
        all.stderr.contains("3 built, 1 cached"),
        "every step but the imported base: {}",
        all.stderr
    );
}

/// A generated recipe of 100,000 chained steps: states are handed down the
/// chain, not copied, so planning and building stay linear (a copy per
/// step once made 1,000 steps cost 118 MB and 6,000 steps 3.6 GB).
#[test]
fn a_hundred_thousand_step_chain_builds() {
    let p = Project::new();
    p.recipe(
        r#"let s = scratch();
for i in 0..100000 { s = s.env(`K${i % 7}`, `${i}`); }
image("long", s);"#,
    );
    let r = p.ok(&["build", "--progress", "plain"]);
    assert!(r.stderr.contains("finished in"), "{}", r.stderr);
    let config = p.ok(&["inspect", "long"]);
    let v: serde_json::Value = serde_json::from_str(&config.stdout).unwrap();
    let env = v["config"]["config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "K4=99999"), "{env:?}");
    assert_eq!(v["config"]["history"].as_array().unwrap().len(), 100000);
}
