//! Building images from files: copies, metadata, exports, artifacts, reproducibility.

use std::fs;

use crate::common::*;

#[test]
fn hello_example_exports_valid_oci_and_docker_archive_images() {
    let p = Project::example("hello");
    fs::write(p.path("site/index.html.swp"), "editor noise").unwrap();
    let oci = p.path("hello-oci");
    let archive = p.path("hello.tar");
    p.ok(&[
        "build",
        "--output",
        &format!("oci:{}", oci.display()),
        "--output",
        &format!("docker-archive:{}", archive.display()),
    ]);

    // skopeo reads and copies both outputs.
    let inspected = tool(
        "skopeo",
        &["inspect", &format!("oci:{}:example/hello:latest", oci.display())],
    );
    let json: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(json["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(json["Env"][0], "GREETING=hello");
    tool("skopeo", &["inspect", &format!("docker-archive:{}", archive.display())]);
    let copied = p.path("copied");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:copy", copied.display()),
        ],
    );
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:example/hello:1.0", oci.display()),
            &format!("dir:{}", p.path("dir").display()),
        ],
    );

    // umoci sees exactly the expected files with the expected modes and owners.
    let bundle = umoci_unpack(&oci, "example/hello:latest");
    let rootfs = bundle.path().join("b/rootfs");
    let mut files: Vec<String> = walk(&rootfs);
    files.sort();
    assert_eq!(
        files,
        vec![
            "bin",
            "bin/sh",
            "srv",
            "srv/hello.txt",
            "srv/www",
            "srv/www/css",
            "srv/www/css/site.css",
            "srv/www/index.html",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/greet"
        ]
    );
    assert_eq!(owner_mode(&rootfs.join("usr/local/bin/greet")), (0o755, 1000, 1000));
    assert_eq!(owner_mode(&rootfs.join("srv/hello.txt")), (0o644, 0, 0));
    assert_eq!(owner_mode(&rootfs.join("srv/www")), (0o755, 0, 0));
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/hello.txt")).unwrap(),
        "Hello from strata.\n"
    );

    // The image from the docker-archive unpacks to the same files.
    let bundle2 = umoci_unpack(&copied, "copy");
    let mut files2 = walk(&bundle2.path().join("b/rootfs"));
    files2.sort();
    assert_eq!(files2, files);

    // It runs: in podman (docker's run of it is in the conformance suite).
    let podman = Podman::new();
    podman.ok(&["load", "--quiet", "--input", archive.to_str().unwrap()]);
    assert_eq!(podman.run("example/hello:latest", &[]), "hello, world\n");
    assert_eq!(podman.run("example/hello:latest", &["podman"]), "hello, podman\n");

    // The artifact target went to ./out/www.
    let mut art = walk(&p.path("out/www"));
    art.sort();
    assert_eq!(art, vec!["css", "css/site.css", "index.html"]);
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                go(root, &e.path(), out);
            }
        }
    }
    go(root, root, &mut out);
    out
}

#[test]
fn same_recipe_and_context_give_the_same_digest_in_fresh_stores_and_other_checkouts() {
    let a = Project::example("hello");
    let b = Project::example("hello");
    // Different mtimes, another path, another store.
    fs::write(b.path("hello.txt"), fs::read(a.path("hello.txt")).unwrap()).unwrap();
    let da = a.build_digest(&["hello"], "hello");
    let db = b.build_digest(&["hello"], "hello");
    assert_ne!(a.dir.path(), b.dir.path());
    assert_eq!(da, db);
    // The store's image keeps its layers uncompressed: --compression is
    // for outputs, whose digests are as reproducible, and differ by it.
    assert_eq!(a.build_digest(&["hello", "--compression", "zstd"], "hello"), da);
    let layout = |p: &Project, compression: &str| {
        let dir = format!("oci-{compression}");
        p.ok(&[
            "build",
            "hello",
            "--compression",
            compression,
            "-o",
            &format!("oci:{dir}"),
        ]);
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(p.path(&format!("{dir}/index.json"))).unwrap()).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap().to_string()
    };
    let (ga, gb) = (layout(&a, "gzip"), layout(&b, "gzip"));
    let (za, zb) = (layout(&a, "zstd"), layout(&b, "zstd"));
    let (fa, fb) = (layout(&a, "zstd-fast"), layout(&b, "zstd-fast"));
    assert_eq!((&ga, &za, &fa), (&gb, &zb, &fb));
    assert_ne!(ga, za);
    assert_ne!(za, fa);
    assert_ne!(ga, da);
}

#[test]
fn changing_a_copied_file_changes_the_digest_and_changing_another_does_not() {
    let p = Project::example("hello");
    let d0 = p.build_digest(&["hello"], "hello");
    p.write("unrelated.txt", "x");
    assert_eq!(p.build_digest(&["hello"], "hello"), d0);
    p.write("hello.txt", "Changed.\n");
    assert_ne!(p.build_digest(&["hello"], "hello"), d0);
}

#[test]
fn zstd_layers_carry_the_zstd_media_type_and_read_back() {
    let p = Project::example("hello");
    let oci = p.path("oci");
    p.ok(&[
        "build",
        "hello",
        "--compression",
        "zstd",
        "-o",
        &format!("oci:{}", oci.display()),
    ]);
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:example/hello:latest", oci.display()),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    // skopeo verifies every blob while copying.
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:example/hello:latest", oci.display()),
            &format!("dir:{}", p.path("dir").display()),
        ],
    );
    // Debian's umoci predates zstd: read the layers back through a strata
    // base in a fresh store, exported with gzip, and unpack that.
    let q = Project::new();
    q.recipe(&format!(
        r#"image("s", from("oci:{}:example/hello:latest").label("k", "v"));"#,
        oci.display()
    ));
    let out = q.path("out");
    q.ok(&["build", "-o", &format!("oci:{}", out.display())]);
    let bundle = umoci_unpack(&out, "s");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/srv/hello.txt")).unwrap(),
        "Hello from strata.\n"
    );
}

#[test]
fn source_date_epoch_sets_created_and_clamps_mtimes() {
    let p = Project::example("hello");
    let out = p
        .cmd(&["build", "hello"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(out.status.success());
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "example/hello:latest"]).stdout).unwrap();
    assert_eq!(inspect["config"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(inspect["config"]["history"][0]["created"], "2023-11-14T22:13:20Z");

    let bad = p
        .cmd(&["build", "hello"])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn copy_follows_docker_habits_for_directories_and_destinations() {
    let p = Project::new();
    p.write("dir/a.txt", "a")
        .write("dir/sub/b.txt", "b")
        .write("one.txt", "1")
        .write("two.txt", "2");
    p.recipe(
        r#"
        let s = scratch()
            .copy(ctx("dir"), "/contents")          // a directory copies its contents
            .copy(ctx("one.txt"), "/renamed.txt")   // a file to a file name
            .copy(ctx("one.txt"), "/into/")         // a trailing slash means a directory
            .copy(ctx(["one.txt", "two.txt"]), "/many")  // several sources go into a directory
            .workdir("/work")
            .copy(ctx("two.txt"), "rel.txt");       // relative to the workdir
        image("s", s);
        "#,
    );
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "s");
    let r = bundle.path().join("b/rootfs");
    for (path, content) in [
        ("contents/a.txt", "a"),
        ("contents/sub/b.txt", "b"),
        ("renamed.txt", "1"),
        ("into/one.txt", "1"),
        ("many/one.txt", "1"),
        ("many/two.txt", "2"),
        ("work/rel.txt", "2"),
    ] {
        assert_eq!(
            fs::read_to_string(r.join(path)).unwrap_or_else(|e| panic!("{path}: {e}")),
            content
        );
    }
    assert!(!r.join("contents/dir").exists());
}

#[test]
fn files_pass_between_states_and_chown_resolves_names_in_the_image() {
    let p = Project::new();
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.write("app.txt", "app");
    p.recipe(
        r#"
        let base = from("rootfs:busybox.tar")
            .copy(ctx("app.txt"), "/opt/app/app.txt", #{ chown: "nobody:nogroup", chmod: "0600" });
        let slim = scratch()
            .copy(base.path("/opt/app"), "/app")
            .copy(base.path("/bin/sh"), "/bin/");   // a symlink in the source is followed
        image("slim", slim);
        artifact("bin", base.path("/bin/busybox"));
        "#,
    );
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "slim");
    let r = bundle.path().join("b/rootfs");
    // Files from another state keep their owners unless chown is given, as
    // BuildKit's COPY --from; the directory the copy makes is root's.
    assert_eq!(owner_mode(&r.join("app/app.txt")), (0o600, 65534, 65534));
    assert_eq!(owner_mode(&r.join("app")), (0o755, 0, 0));
    assert!(r.join("bin/sh").is_file());
    assert!(p.path("out/bin/busybox").is_file());

    let base_owner = p.write(
        "strata.rhai",
        r#"
        let base = from("rootfs:busybox.tar")
            .copy(ctx("app.txt"), "/opt/app/app.txt", #{ chown: "nobody:nogroup" });
        image("base", base);
        "#,
    );
    let oci2 = p.path("oci2");
    base_owner.ok(&["build", "-o", &format!("oci:{}", oci2.display())]);
    let bundle = umoci_unpack(&oci2, "base");
    assert_eq!(owner_mode(&bundle.path().join("b/rootfs/opt/app/app.txt")).1, 65534);
}

#[test]
fn pooled_files_never_change_a_layer() {
    // Identical files, in one layer and across layers, built in a store whose
    // file pool already holds them and in a fresh one: same bytes, no hardlinks.
    let recipe = r#"
        let s = scratch()
            .copy(ctx(["a.txt", "b.txt"]), "/one/")
            .copy(ctx("a.txt"), "/two/a.txt", #{ chmod: "0600" })
            .copy(ctx("dir"), "/three");
        image("s", s);
    "#;
    let warm = Project::new();
    warm.write("a.txt", "same")
        .write("b.txt", "same")
        .write("dir/c.txt", "same")
        .recipe(recipe);
    warm.ok(&["build"]);
    warm.write("dir/d.txt", "new");
    let warm_digest = warm.build_digest(&[], "s");

    let fresh = Project::new();
    copy_tree(warm.dir.path(), fresh.dir.path());
    assert_eq!(fresh.build_digest(&[], "s"), warm_digest);

    let inspect: serde_json::Value = serde_json::from_str(&warm.ok(&["inspect", "s"]).stdout).unwrap();
    for layer in inspect["manifest"]["layers"].as_array().unwrap() {
        let blob = warm
            .store
            .path()
            .join("blobs/sha256")
            .join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let listing = tool("tar", &["tvf", blob.to_str().unwrap()]);
        assert!(!listing.lines().any(|l| l.starts_with('h')), "{listing}");
    }
    let oci = warm.path("oci");
    warm.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "s");
    let r = bundle.path().join("b/rootfs");
    assert_eq!(owner_mode(&r.join("two/a.txt")).0, 0o600);
    assert_eq!(
        owner_mode(&r.join("one/a.txt")).0 & 0o777,
        owner_mode(&warm.path("a.txt")).0 & 0o777
    );
    assert_eq!(fs::read_to_string(r.join("three/d.txt")).unwrap(), "new");
}

#[test]
fn only_the_files_a_stage_takes_from_another_count_in_its_key() {
    let recipe = |noise: &str| {
        format!(
            r#"let base = from("rootfs:busybox.tar");
let builder = base.run("echo result > /out.txt && echo {noise} > /noise");
let app = base.copy(builder.path("/out.txt"), "/app/out.txt").run("cat /app/out.txt > /app/seen");
let tool = base.run("cat /mnt/out.txt > /tool", #{{ mounts: [#{{ source: builder.path("/out.txt"), target: "/mnt/out.txt" }}] }});
image("app", app);
image("tool", tool);"#
        )
    };
    let p = busybox_project(&recipe("one"));
    let first = p.ok(&["build"]);
    // The builder changes, the file the others take from it does not: only the builder runs.
    p.recipe(&recipe("two"));
    let second = p.ok(&["build", "--progress", "json"]);
    let started: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.contains(r#""event":"started""#))
        .collect();
    assert_eq!(started.len(), 1, "{}", second.stderr);
    assert!(started[0].contains("noise"), "{}", started[0]);
    for name in ["app", "tool"] {
        assert_eq!(digest_of(&second.stdout, name), digest_of(&first.stdout, name));
    }
    // `strata graph` shows the consumers cached under their new planned keys.
    let graph: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    assert!(
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["cache"] != "missing"),
        "{graph}"
    );
    // A change to the file itself reaches them.
    p.recipe(&recipe("two").replace("echo result", "echo other"));
    let third = p.ok(&["build", "--progress", "json"]);
    assert_eq!(
        third.stderr.matches(r#""event":"started""#).count(),
        4,
        "{}",
        third.stderr
    );
}

#[test]
fn globs_pick_files_from_another_state_for_copies_and_artifacts() {
    let recipe = |extra: &str| {
        format!(
            r#"let base = from("rootfs:busybox.tar");
let b = base.run("mkdir -p /out/sub && echo a > /out/a.so && echo b > /out/b.so && echo {extra} > /out/t.txt && echo s > /out/sub/s.so");
image("app", scratch().copy(b.path("/out/*.so"), "/lib/"));
artifact("libs", b.path("/out/*.so"));"#
        )
    };
    let p = busybox_project(&recipe("t"));
    let first = p.ok(&["build"]);
    let layout = p.path("oci");
    p.ok(&["build", "app", "-o", &format!("oci:{}", layout.display())]);
    let bundle = umoci_unpack(&layout, "app");
    let mut names: Vec<String> = fs::read_dir(bundle.path().join("b/rootfs/lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.so", "b.so"]);
    let mut out: Vec<String> = fs::read_dir(p.path("out/libs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    assert_eq!(out, ["a.so", "b.so"]);
    assert_eq!(fs::read_to_string(p.path("out/libs/a.so")).unwrap(), "a\n");

    // Only the matched files count: a change to t.txt rebuilds the builder alone.
    p.recipe(&recipe("changed"));
    let second = p.ok(&["build", "app", "--progress", "json"]);
    assert_eq!(
        second.stderr.matches(r#""event":"started""#).count(),
        1,
        "{}",
        second.stderr
    );
    assert_eq!(digest_of(&second.stdout, "app"), digest_of(&first.stdout, "app"));

    for (copy, message) in [
        (r#"b.path("/out/*.none"), "/lib/""#, "matches nothing"),
        (
            r#"b.path("/out/*.so"), "/lib/one""#,
            "the destination must be a directory",
        ),
    ] {
        p.recipe(&format!(
            r#"let b = from("rootfs:busybox.tar").run("mkdir -p /out && touch /out/a.so /out/b.so");
image("bad", scratch().copy({copy}));"#
        ));
        let r = p.run(&["build"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(message), "{}", r.stderr);
    }
}
