//! Wrong results found by using strata (issue #36), one test each, asserting
//! the result a user checks: the file the step reads, the bytes shipped,
//! the error's text.

use std::fs;

use crate::common::*;

#[test]
fn equal_layers_in_a_row_or_apart_still_mount() {
    // Two no-op steps make one (empty) layer twice; three equal layers
    // separated by others; then a step that reads every layer's file.
    let p = busybox_project(
        r#"let b = from("rootfs:busybox.tar");
image("twice", b.run("true").run("true").run("echo hi > /hi"));
image("apart", b.run("true").run("echo a > /a").run("true").run("echo b > /b").run("true").run("cat /a /b > /both"));"#,
    );
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let twice = umoci_unpack(&oci, "twice");
    assert_eq!(fs::read_to_string(twice.path().join("b/rootfs/hi")).unwrap(), "hi\n");
    let apart = umoci_unpack(&oci, "apart");
    assert_eq!(
        fs::read_to_string(apart.path().join("b/rootfs/both")).unwrap(),
        "a\nb\n"
    );

    // A Dockerfile does the same all the time.
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nRUN test -f /bin/sh\nRUN test -f /bin/sh\nRUN mkdir /d\nWORKDIR /d\nRUN test -f /bin/sh\nRUN echo ok > /d/ok\n",
    );
    p.ok(&["build", "-f", "Dockerfile", "-t", "df:1"]);
    let out = p.ok(&["run", "df:1", "--", "cat", "/d/ok"]);
    assert_eq!(out.stdout, "ok\n");
}

#[test]
fn a_fetched_file_is_keyed_by_its_checksum() {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("tool.txt");
    fs::write(&file, "tool v1\n").unwrap();
    let server = DebianMirror::serve(files.path());
    let url = format!("{}/tool.txt", server.url);
    let sha = |text: &str| strata_engine::digest::Digest::of(text.as_bytes()).hex().to_string();
    let p = busybox_project("");
    let recipe = |sum: &str| {
        format!(r#"image("f", from("rootfs:busybox.tar").copy(fetch("{url}", #{{ sha256: "{sum}" }}), "/tool.txt"));"#)
    };
    p.recipe(&recipe(&sha("tool v1\n")));
    p.ok(&["build"]);
    // The server's file changes, and the recipe names the new checksum.
    fs::write(&file, "tool v2\n").unwrap();
    p.recipe(&recipe(&sha("tool v2\n")));
    let r = p.ok(&["build", "--progress", "plain"]);
    assert!(
        r.stderr.contains("DONE    copy(fetch("),
        "the copy ran again: {}",
        r.stderr
    );
    assert_eq!(p.ok(&["run", "f", "--", "cat", "/tool.txt"]).stdout, "tool v2\n");
    // A wrong checksum fails on this warm store too.
    p.recipe(&recipe(&"0".repeat(64)));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "the download hashes to sha256:{}, the recipe says sha256:{}",
            sha("tool v2\n"),
            "0".repeat(64)
        )),
        "{}",
        r.stderr
    );

    // Unpinned: `strata lock --update` pins the new checksum, and the build ships the new bytes.
    let q = busybox_project(&format!(
        r#"image("f", from("rootfs:busybox.tar").copy(fetch("{url}"), "/tool.txt"));"#
    ));
    q.ok(&["build"]);
    fs::write(&file, "tool v3\n").unwrap();
    q.ok(&["lock", "--update"]);
    assert_eq!(lock_of(&q)["urls"][&url], format!("sha256:{}", sha("tool v3\n")));
    q.ok(&["build"]);
    assert_eq!(q.ok(&["run", "f", "--", "cat", "/tool.txt"]).stdout, "tool v3\n");
}

#[test]
fn two_files_at_one_destination_are_an_error_and_parents_keep_their_paths() {
    let p = busybox_project(
        r#"let src = from("rootfs:busybox.tar").run("mkdir -p /src/a /src/b && echo a > /src/a/x.json && echo b > /src/b/x.json");
image("flat", scratch().copy(src.path("/src/*/x.json"), "/dst/"));"#,
    );
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "copy puts `/src/a/x.json` and `/src/b/x.json` at one place, `/dst/x.json`: give each its own destination"
        ),
        "{}",
        r.stderr
    );
    // With `parents`, each keeps its path (as BuildKit's COPY --parents).
    p.recipe(
        r#"let src = from("rootfs:busybox.tar").run("mkdir -p /src/a /src/b && echo a > /src/a/x.json && echo b > /src/b/x.json");
image("kept", scratch().copy(src.path("/src/*/x.json"), "/dst/", #{ parents: true }));"#,
    );
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let kept = umoci_unpack(&oci, "kept");
    let root = kept.path().join("b/rootfs");
    assert_eq!(fs::read_to_string(root.join("dst/src/a/x.json")).unwrap(), "a\n");
    assert_eq!(fs::read_to_string(root.join("dst/src/b/x.json")).unwrap(), "b\n");

    // A Dockerfile's COPY --from --parents, the same.
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar AS build\nRUN mkdir -p /src/a /src/b && echo a > /src/a/x.json && echo b > /src/b/x.json\nFROM scratch\nCOPY --from=build --parents /src/*/x.json /dst/\n",
    );
    let oci2 = p.path("oci2");
    p.ok(&[
        "build",
        "-f",
        "Dockerfile",
        "-t",
        "kept:df",
        "-o",
        &format!("oci:{}", oci2.display()),
    ]);
    let df = umoci_unpack(&oci2, "kept:df");
    assert_eq!(
        fs::read_to_string(df.path().join("b/rootfs/dst/src/b/x.json")).unwrap(),
        "b\n"
    );

    // Two context files of one name into one directory.
    p.write("a/x.json", "a");
    p.write("b/x.json", "b");
    p.recipe(r#"image("ctx", scratch().copy(ctx(["a/x.json", "b/x.json"]), "/dst/"));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("copy puts `a/x.json` and `b/x.json` at one place, `/dst/x.json`"),
        "{}",
        r.stderr
    );
    // Two directories whose trees meet merge, file by file.
    p.write("c/sub/one.txt", "1");
    p.write("d/sub/two.txt", "2");
    p.recipe(
        r#"let s = from("rootfs:busybox.tar").run("mkdir -p /c/sub /d/sub && echo 1 > /c/sub/one && echo 2 > /d/sub/two");
image("merged", scratch().copy(s.path("/[cd]"), "/m/"));"#,
    );
    let oci3 = p.path("oci3");
    p.ok(&["build", "-o", &format!("oci:{}", oci3.display())]);
    let merged = umoci_unpack(&oci3, "merged");
    let m = merged.path().join("b/rootfs/m/sub");
    assert_eq!(fs::read_to_string(m.join("one")).unwrap(), "1\n");
    assert_eq!(fs::read_to_string(m.join("two")).unwrap(), "2\n");
}

#[test]
fn a_hundred_thousand_distinct_env_steps_fold_in_linear_time() {
    let p = Project::new();
    p.recipe(
        r#"let s = scratch();
for i in 0..100000 { s = s.env(`K${i}`, `v${i}`); }
s = s.env("K7", "again");
image("e", s);"#,
    );
    let started = std::time::Instant::now();
    p.ok(&["build"]);
    let inspected: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "e"]).stdout).unwrap();
    let env = inspected["config"]["config"]["Env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(env.len(), 100_000);
    // A variable set again keeps its place, as BuildKit's ENV.
    assert_eq!(env[7], "K7=again");
    assert_eq!(env[99_999], "K99999=v99999");
    eprintln!("100,000 ENV steps built in {:?}", started.elapsed());
}

#[test]
fn platforms_are_checked_by_name_and_by_the_bases_binaries() {
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar"));"#);
    let r = p.run(&["build", "--platform", "linux/amd46"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`linux/amd46`: unknown architecture `amd46`; known: 386, amd64, amd64p32, arm, armbe, arm64,"),
        "{}",
        r.stderr
    );
    // An x86 busybox is not relabelled as an ARM image.
    let r = p.run(&["build", "--platform", "linux/arm"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "invalid image `rootfs:{}`: its `/bin/busybox` is a program for linux/{}, and this build is for linux/arm/v7",
            p.path("busybox.tar").display(),
            strata_engine::platform::host_arch()
        )),
        "{}",
        r.stderr
    );
    // A base with no program takes the platform it is given.
    p.write("empty/etc/motd", "hi");
    tool(
        "tar",
        &[
            "-C",
            p.path("empty").to_str().unwrap(),
            "-cf",
            p.path("data.tar").to_str().unwrap(),
            ".",
        ],
    );
    p.recipe(r#"image("d", from("rootfs:data.tar"));"#);
    let oci = p.path("oci");
    p.ok(&[
        "build",
        "--platform",
        "linux/arm64/v8",
        "-o",
        &format!("oci:{}", oci.display()),
    ]);
    let index: serde_json::Value = serde_json::from_str(&fs::read_to_string(oci.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(oci.join("blobs/sha256").join(digest)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(oci.join("blobs/sha256").join(config_digest)).unwrap()).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert!(
        config.get("variant").is_none(),
        "arm64/v8 is arm64, as containerd normalizes it: {config}"
    );
}
