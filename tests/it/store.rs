//! The store under concurrency and interruption.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

fn big_context(p: &Project, files: usize) {
    for i in 0..files {
        p.write(&format!("data/f{i:04}.txt"), &format!("{i}\n").repeat(2000));
    }
}

#[test]
fn two_builds_on_one_store_at_the_same_time_both_succeed() {
    let p = Project::new();
    big_context(&p, 300);
    p.recipe(r#"image("a", scratch().copy(ctx("data"), "/data").env("A", "1")); image("b", scratch().copy(ctx("data"), "/data"));"#);
    let results = p.ok_concurrently(3, &["build"]);
    let digests: Vec<String> = results.iter().map(|r| digest_of(&r.stdout, "a")).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    // Afterwards the store is consistent: a rebuild is fully cached.
    let again = p.ok(&["build"]);
    assert!(again.stderr.contains("0 built"), "{}", again.stderr);
}

#[test]
fn a_build_killed_at_any_moment_leaves_a_store_the_next_build_uses() {
    let p = Project::new();
    big_context(&p, 200);
    p.write("big.bin", &"x".repeat(30 << 20));
    p.recipe(r#"image("a", scratch().copy(ctx("data"), "/data").copy(ctx("big.bin"), "/big.bin"));"#);
    for delay_ms in [20, 80, 200] {
        let mut child = p
            .cmd(&["build"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Killed once the first step is recorded: the next build reuses it.
    let mut child = p
        .cmd(&["build", "--no-cache"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(&p, record_count(&p));
    let _ = child.kill();
    let _ = child.wait();
    let r = p.ok(&["build"]);
    assert!(r.stdout.contains("a\ta\tsha256:"), "{}", r.stdout);
    assert!(r.stderr.contains("CACHED  copy(ctx([\"data\"])"), "{}", r.stderr);
    // No scratch space of the killed processes survives the next start.
    let leftovers: Vec<_> = std::fs::read_dir(p.store.path().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And a fresh store gives the same image.
    let fresh = Project::new();
    std::fs::remove_dir(fresh.dir.path()).unwrap();
    copy_tree(p.dir.path(), fresh.dir.path());
    assert_eq!(fresh.build_digest(&[], "a"), digest_of(&r.stdout, "a"));
}

#[test]
fn ctrl_c_stops_a_build_with_status_130_and_the_next_build_works() {
    // The interrupt lands while a step is certainly running: the test waits
    // for the step's `started` event before it sends SIGINT.
    let p = busybox_project(r#"image("a", from("rootfs:busybox.tar").run("sleep 30 && echo done > /x"));"#);
    let mut child = p
        .cmd(&["build", "--progress", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut events, &mut line).unwrap();
        assert!(n > 0, "the build ended before its run step started: {seen}");
        seen.push_str(&line);
        if line.contains(r#""event":"started""#) && line.contains("sleep 30") {
            break;
        }
    }
    let started = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut events, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the sleeping step was stopped, not waited for"
    );
    let again = p.ok(&["build", "--progress", "plain"]);
    assert!(again.stderr.contains("1 built"), "{}", again.stderr);
}

#[test]
fn gc_keeps_tagged_images_and_removes_what_nothing_needs() {
    let p = Project::new();
    std::fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.write("x.txt", &"x".repeat(100_000)).write("y.txt", "y");
    p.recipe(r#"image("a", from("rootfs:busybox.tar").copy(ctx("x.txt"), "/x.txt"));"#);
    p.ok(&["build"]);
    let layers_before = std::fs::read_dir(p.store.path().join("layers")).unwrap().count();
    p.recipe(r#"image("a", from("rootfs:busybox.tar").copy(ctx("y.txt"), "/y.txt"));"#);
    let digest = p.build_digest(&[], "a");

    // Recent records keep their layers.
    let kept = p.ok(&["gc"]).stdout;
    assert!(kept.contains("removed 0 records, 0 layers"), "{kept}");
    let du = p.ok(&["du"]).stdout;
    assert!(
        du.contains("images (1 tagged)") && du.contains("unpacked layers"),
        "{du}"
    );

    // With no grace period the x layer goes; the tagged image stays whole.
    let out = p.ok(&["gc", "--keep-days", "0"]).stdout;
    assert!(out.contains("removed 1 records, 1 layers"), "{out}");
    assert_eq!(
        std::fs::read_dir(p.store.path().join("layers")).unwrap().count(),
        layers_before
    );
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "a"]).stdout).unwrap();
    assert_eq!(inspect["digest"], digest);
    tool("skopeo", &["inspect", &format!("oci:{}:a", p.store.path().display())]);
    let again = p.ok(&["build"]);
    assert!(
        again.stderr.contains("0 built"),
        "records of the tagged image were kept: {}",
        again.stderr
    );
}

#[test]
fn gc_waits_for_a_running_build_and_never_removes_its_work() {
    let p = Project::new();
    std::fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.recipe(r#"image("slow", from("rootfs:busybox.tar").run("sleep 2; echo done > /done"));"#);
    let build = p
        .cmd(&["build"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the build time to take its share of the store.
    wait_for_records(&p, 0);
    let gc = p.run(&["gc", "--keep-days", "0"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stderr.contains("waiting for running builds"), "{}", gc.stderr);
    let built = Run::from(build.wait_with_output().unwrap());
    assert_eq!(built.code, 0, "{}", built.stderr);
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "slow");
    assert_eq!(
        std::fs::read_to_string(bundle.path().join("b/rootfs/done")).unwrap(),
        "done\n"
    );
}

fn record_count(p: &Project) -> usize {
    std::fs::read_dir(p.store.path().join("records"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (up to 30 s) until the store holds more than `than` records.
fn wait_for_records(p: &Project, than: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while record_count(p) <= than {
        assert!(
            std::time::Instant::now() < deadline,
            "no new record appeared within 30 s (still {than})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
