//! The store under concurrency and interruption.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// Runs strata with `args`, its output discarded, and SIGKILLs it once
/// `until` returns.
fn killed(p: &Project, args: &[&str], until: impl FnOnce()) {
    let mut child = p.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    until();
    let _ = child.kill();
    let _ = child.wait();
}

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
        killed(&p, &["build"], || std::thread::sleep(Duration::from_millis(delay_ms)));
    }
    // Killed once the first step is recorded (in a store of its own, so the
    // kills above, which may have let whole builds finish, do not count):
    // the next build reuses it.
    let p = {
        let q = Project::new();
        std::fs::remove_dir(q.dir.path()).unwrap();
        copy_tree(p.dir.path(), q.dir.path());
        q
    };
    killed(&p, &["build"], || wait_for_records(&p, 0));
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

    // Recent records keep their layers, but the x layer, which only the
    // cache needs now, loses its uncompressed tar (made again if needed).
    let x_layer = |p: &Project| -> String {
        let layers: Vec<String> = std::fs::read_dir(p.store.path().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|d| d.is_dir() && d.join("x.txt").exists())
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(layers.len(), 1, "{layers:?}");
        layers[0].clone()
    };
    let x_tar = p.store.path().join("blobs/sha256").join(x_layer(&p));
    assert!(x_tar.exists(), "{}", x_tar.display());
    let kept = p.ok(&["gc"]).stdout;
    // Three blobs: that tar, and the untagged image's manifest and config.
    assert!(kept.contains("removed 0 records, 0 layers, 3 blobs"), "{kept}");
    assert!(!x_tar.exists(), "{}", x_tar.display());
    assert!(p.store.path().join("layers").join(x_layer(&p)).join("x.txt").exists());
    // The cache still serves it: nothing is built, and an image in another
    // compression is made from what is left, checked against the diff id.
    p.recipe(r#"image("a", from("rootfs:busybox.tar").copy(ctx("x.txt"), "/x.txt"));"#);
    let x_again = p.ok(&["build", "--compression", "zstd", "--progress", "plain"]);
    assert!(x_again.stderr.contains("0 built"), "{}", x_again.stderr);
    tool("skopeo", &["inspect", &format!("oci:{}:a", p.store.path().display())]);
    p.recipe(r#"image("a", from("rootfs:busybox.tar").copy(ctx("y.txt"), "/y.txt"));"#);
    assert_eq!(p.build_digest(&[], "a"), digest);
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

/// The intermediate stage makes 3,000 files that only a recent record keeps:
/// `gc --keep-days 0` removes its layer, the next build makes it again.
const GC_RECIPE: &str = r#"
let big = from("rootfs:busybox.tar").run("mkdir /d && cd /d && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done");
image("counted", from("rootfs:busybox.tar").copy(big.path("/d"), "/e").run("ls /e | wc -l > /count"));
"#;

fn check(p: &Project) -> Run {
    p.run(&["check"])
}

#[test]
fn gc_killed_at_any_moment_leaves_every_layer_whole_or_gone() {
    let p = busybox_project(GC_RECIPE);
    let clean = busybox_project(GC_RECIPE).build_digest(&[], "counted");
    // A fixed spread of kill points over gc's run (about 240 ms here).
    let mut seed: u64 = 0x5eed;
    for round in 0..24 {
        p.ok(&["build"]);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % 250_000);
        killed(&p, &["gc", "--keep-days", "0"], || std::thread::sleep(delay));
        let c = check(&p);
        assert_eq!(
            c.code, 0,
            "round {round} (killed after {delay:?}): {}{}",
            c.stdout, c.stderr
        );
        assert!(c.stdout.contains("all intact"), "{}", c.stdout);
    }
    assert_eq!(p.build_digest(&[], "counted"), clean);
    let bundle = umoci_unpack(p.store.path(), "counted");
    assert_eq!(
        std::fs::read_to_string(bundle.path().join("b/rootfs/count"))
            .unwrap()
            .trim(),
        "3000"
    );
}

/// Truncates the last layer blob of the image tagged `tag`; returns its hex.
fn damage_image_layer(p: &Project, tag: &str) -> String {
    let store = p.store.path();
    let read = |hex: &str| std::fs::read(store.join("blobs/sha256").join(hex)).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&read(&manifest)).unwrap();
    let hex = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let bytes = read(&hex);
    std::fs::write(store.join("blobs/sha256").join(&hex), &bytes[..bytes.len() / 2]).unwrap();
    hex
}

#[test]
fn damage_is_found_by_check_and_by_the_next_command_and_repaired() {
    let p = busybox_project(GC_RECIPE);
    let digest = p.build_digest(&[], "counted");
    let c = check(&p);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("all intact"), "{}", c.stdout);

    // A truncated layer blob: check names it; an export refuses to hand it out.
    let hex = damage_image_layer(&p, "counted");
    let c = check(&p);
    assert_eq!(c.code, 1, "{}{}", c.stdout, c.stderr);
    assert!(
        c.stdout.contains(&format!("damaged blob sha256:{hex}: content of")),
        "{}",
        c.stdout
    );
    assert!(
        c.stderr.contains("1 damaged; `strata check --repair` removes them"),
        "{}",
        c.stderr
    );
    let r = p.run(&["build", "-o", "oci:out"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&hex) && r.stderr.contains("hashes to"),
        "{}",
        r.stderr
    );

    // An emptied layer directory: the next build does not use it, check names it.
    let layers = p.store.path().join("layers");
    let emptied = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.is_dir() && d.join("d").is_dir())
        .expect("the intermediate stage's layer");
    std::fs::remove_dir_all(emptied.join("d")).unwrap();
    let c = check(&p);
    let layer_hex = emptied.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        c.stdout.contains(&format!(
            "damaged layer sha256:{layer_hex}: its files differ from what was committed (0 entries, 3001 expected)"
        )),
        "{}",
        c.stdout
    );

    // A corrupt record and a corrupt index.json.
    let records = p.store.path().join("records");
    let record = std::fs::read_dir(&records).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&record, "{ not json").unwrap();
    std::fs::write(p.store.path().join("index.json"), "{ \"manifests\": [").unwrap();
    let r = p.run(&["images"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("the store's tag list")
            && r.stderr.contains("is damaged")
            && r.stderr.contains("`strata check --repair` removes what is damaged"),
        "{}",
        r.stderr
    );
    let c = check(&p);
    assert!(c.stdout.contains("damaged record "), "{}", c.stdout);
    assert!(c.stdout.contains("damaged index index.json: "), "{}", c.stdout);
    assert!(c.stderr.contains("4 damaged"), "{}", c.stderr);

    let r = p.ok(&["check", "--repair"]);
    assert!(r.stdout.contains("4 damaged, removed"), "{}", r.stdout);
    assert!(p.store.path().join("index.json.damaged").exists());
    // The tags come back from the store's copy of the index, less the one
    // whose image lost its blob: the next check finds nothing.
    assert!(
        r.stdout
            .contains("index.json rebuilt from the store's copy of it (1 tags)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("untagged counted: its blob sha256:{hex} is missing")),
        "{}",
        r.stdout
    );
    let c = check(&p);
    assert!(c.stdout.contains("all intact"), "{}{}", c.stdout, c.stderr);
    // The next build makes what was removed again: the same image.
    assert_eq!(p.build_digest(&[], "counted"), digest);
    p.ok(&["build", "-o", "oci:out"]);
    let c = check(&p);
    assert!(c.stdout.contains("all intact"), "{}{}", c.stdout, c.stderr);
}

#[test]
fn an_emptied_layer_is_never_used() {
    let p = busybox_project(GC_RECIPE);
    let digest = p.build_digest(&[], "counted");
    let layers = p.store.path().join("layers");
    for e in std::fs::read_dir(&layers).unwrap() {
        let d = e.unwrap().path();
        if d.is_dir() {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                if f.is_dir() && !f.is_symlink() {
                    std::fs::remove_dir_all(&f).unwrap();
                } else {
                    std::fs::remove_file(&f).unwrap();
                }
            }
        }
    }
    // Every layer is empty now: the build unpacks or rebuilds each one.
    let r = p.ok(&["build"]);
    assert_eq!(digest_of(&r.stdout, "counted"), digest);
    let bundle = umoci_unpack(p.store.path(), "counted");
    assert_eq!(
        std::fs::read_to_string(bundle.path().join("b/rootfs/count"))
            .unwrap()
            .trim(),
        "3000"
    );
}

#[test]
fn sixty_thousand_tags_are_one_update_of_the_index() {
    let p = Project::new();
    p.write("a.txt", "a\n");
    p.recipe(
        r#"let tags = []; for i in 0..60000 { tags.push(`t${i}:v1`); }
image("many", scratch().copy(ctx("a.txt"), "/a.txt"), #{ tags: tags });"#,
    );
    let r = p.ok(&["build"]);
    assert!(
        r.stdout.starts_with("many\tt0:v1,t1:v1,"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.store.path().join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 60000);
    let digests: std::collections::HashSet<&str> = manifests.iter().map(|m| m["digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 1, "every tag names the one image");
    let images = p.ok(&["images"]);
    assert_eq!(images.stdout.lines().count(), 60001, "a header and one line per tag");
}

fn blob_json(p: &Project, digest: &str) -> serde_json::Value {
    let path = p
        .store
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob_count(p: &Project) -> usize {
    std::fs::read_dir(p.store.path().join("blobs/sha256")).unwrap().count()
}

#[test]
fn images_keep_uncompressed_layers_and_outputs_compress_each_layer_once() {
    let p = Project::new();
    std::fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.write("app.txt", "app\n");
    p.recipe(
        r#"
let base = from("rootfs:busybox.tar");
let builder = base.run("echo built > /out.txt && echo scratch > /work.txt");
image("app", base.copy(ctx("app.txt"), "/app.txt").copy(builder.path("/out.txt"), "/out.txt"), #{ tags: ["t/app:1"] });
"#,
    );
    let built = p.ok(&["build", "--progress", "json"]);
    // Every step that ran says where its time went.
    let done: Vec<serde_json::Value> = built
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "done")
        .collect();
    assert_eq!(done.len(), 4, "{}", built.stderr);
    for e in &done {
        for phase in ["hash", "write", "run", "tar", "compress", "digest"] {
            assert!(e["phases_ms"][phase].is_number(), "{phase} missing in {e}");
        }
        assert_eq!(e["phases_ms"]["compress"], 0.0, "a build compresses nothing: {e}");
    }
    // The store's image: each layer's blob is its tar, named by its diff id.
    let manifest = blob_json(&p, &digest_of(&built.stdout, "app"));
    let config = blob_json(&p, manifest["config"]["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (layer, diff_id) in layers.iter().zip(config["rootfs"]["diff_ids"].as_array().unwrap()) {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(&layer["digest"], diff_id);
    }
    // The builder's RUN layer is in no image: its tar was hashed, not kept.
    let mut without_blob = 0;
    for entry in std::fs::read_dir(p.store.path().join("layers")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let blobs: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if blobs["blobs"].as_object().unwrap().is_empty() {
                without_blob += 1;
            }
        }
    }
    assert_eq!(without_blob, 1);
    // umoci reads the store as the OCI layout it is.
    let bundle = umoci_unpack(p.store.path(), "t/app:1");
    assert_eq!(
        std::fs::read_to_string(bundle.path().join("b/rootfs/out.txt")).unwrap(),
        "built\n"
    );
    // An OCI output gets gzip layers, made once: a second export adds no blob.
    p.ok(&["build", "-o", "oci:out1"]);
    let after_first = blob_count(&p);
    p.ok(&["build", "-o", "oci:out2"]);
    assert_eq!(blob_count(&p), after_first);
    let index = |dir: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.path(&format!("{dir}/index.json"))).unwrap()).unwrap()
    };
    let exported = index("out1")["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(index("out2")["manifests"][0]["digest"], exported.as_str());
    let out_manifest = blob_json(&p, &exported);
    for layer in out_manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    }
    assert_eq!(out_manifest["config"], manifest["config"]);
}

/// The attack of issue #34: a same-size edit of a file in an unpacked
/// layer passed `check` (the tree hash covered sizes, not contents), and a
/// RUN on top read the changed bytes into a new image while the image's
/// own blob still held the old ones. Now check names the layer, repair
/// removes it, the next check passes, and the next build reads the
/// original bytes.
#[test]
fn check_finds_a_same_size_edit_of_a_layer_and_the_next_build_reads_the_original() {
    let p = busybox_project(
        r#"let base = from("rootfs:busybox.tar").run("echo original > /f");
image("a", base);
image("b", base.run("cat /f > /g"));
"#,
    );
    let a = p.build_digest(&["a"], "a");
    let layers = p.store.path().join("layers");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.is_dir() && std::fs::read_to_string(d.join("f")).is_ok_and(|f| f == "original\n"))
        .expect("the layer of `echo original > /f`");
    std::fs::write(layer.join("f"), "tampered\n").unwrap();
    let hex = layer.file_name().unwrap().to_string_lossy().into_owned();

    let c = check(&p);
    assert_eq!(c.code, 1, "{}{}", c.stdout, c.stderr);
    assert!(
        c.stdout.contains(&format!(
            "damaged layer sha256:{hex}: its files differ from what was committed (the same 1 entries; a file's content, mode, owner, link or name changed)"
        )),
        "{}",
        c.stdout
    );
    assert!(
        c.stderr.contains("every blob and every layer's files are read"),
        "{}",
        c.stderr
    );
    let r = p.ok(&["check", "--repair"]);
    assert!(r.stdout.contains("1 damaged, removed"), "{}", r.stdout);
    let c = check(&p);
    assert!(c.stdout.contains("all intact"), "{}{}", c.stdout, c.stderr);

    // The layer is unpacked again from its blob (or made again): the RUN
    // on top reads what the image holds.
    p.ok(&["build", "b"]);
    let bundle = umoci_unpack(p.store.path(), "b");
    assert_eq!(
        std::fs::read_to_string(bundle.path().join("b/rootfs/g")).unwrap(),
        "original\n"
    );
    assert_eq!(std::fs::read_to_string(layer.join("f")).unwrap(), "original\n");
    assert_eq!(p.build_digest(&["a"], "a"), a);
}

/// A damaged `index.json` lost every tag on repair; it is rebuilt from the
/// copy the store keeps, with its tags.
#[test]
fn a_damaged_index_is_rebuilt_with_its_tags() {
    let p = busybox_project(
        r#"image("one", from("rootfs:busybox.tar").run("echo 1 > /n"));
image("two", from("rootfs:busybox.tar").run("echo 2 > /n"));
"#,
    );
    p.ok(&["build"]);
    let before = p.ok(&["images"]).stdout;
    std::fs::write(p.store.path().join("index.json"), "{ \"manifests\": [ {\"mediaType\":").unwrap();
    let r = p.ok(&["check", "--repair"]);
    assert!(
        r.stdout
            .contains("index.json rebuilt from the store's copy of it (2 tags)"),
        "{}",
        r.stdout
    );
    assert_eq!(p.ok(&["images"]).stdout, before);
    let c = check(&p);
    assert!(c.stdout.contains("all intact"), "{}{}", c.stdout, c.stderr);
    // umoci reads the store as the OCI layout it is, tags and all.
    let one = umoci_unpack(p.store.path(), "one");
    assert_eq!(std::fs::read_to_string(one.path().join("b/rootfs/n")).unwrap(), "1\n");
}
