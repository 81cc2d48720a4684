//! Integrity: strata writes only inside its store and outputs. Hostile
//! contexts try to make a copy write onto the host or read from outside
//! the context; each attempt must fail with a message naming the link, and
//! leave the host as it was.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use crate::common::*;

#[test]
fn a_copy_never_writes_through_a_symlink_an_earlier_source_put_in_the_layer() {
    // d1/sub points at a host directory; d2/sub/pwned would land in it.
    let host = tempfile::tempdir().unwrap();
    fs::set_permissions(host.path(), fs::Permissions::from_mode(0o750)).unwrap();
    let p = Project::new();
    fs::create_dir_all(p.path("d1")).unwrap();
    symlink(host.path(), p.path("d1/sub")).unwrap();
    p.write("d2/sub/pwned", "owned\n");
    p.recipe(r#"image("x", scratch().copy(ctx(["d1", "d2"]), "/app/"));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "copy would put the directory `/app/sub` onto the symlink `/app/sub` that an earlier source put in this layer"
        ),
        "{}",
        r.stderr
    );
    assert!(!host.path().join("pwned").exists(), "the copy wrote onto the host");
    assert_eq!(owner_mode(host.path()).0, 0o750, "the host directory's mode changed");

    // A file alone under the link (no directory entry of its own) is refused too.
    let q = Project::new();
    fs::create_dir_all(q.path("d1")).unwrap();
    symlink(host.path(), q.path("d1/sub")).unwrap();
    q.write("d2/sub/pwned", "owned\n");
    q.recipe(
        r#"image("x", scratch().copy(ctx(["d1", "d2/sub/pwned"]), "/app/").copy(ctx("d2/sub/pwned"), "/app/sub/"));"#,
    );
    let r = q.run(&["build"]);
    assert!(
        !host.path().join("pwned").exists(),
        "the copy wrote onto the host: {}",
        r.stderr
    );
}

#[test]
fn ctx_does_not_follow_a_symlink_out_of_the_context() {
    let p = Project::new();
    symlink("/etc", p.path("ctxdir")).unwrap();
    p.recipe(r#"image("x", scratch().copy(ctx("ctxdir/hostname"), "/stolen"));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`ctxdir/hostname` goes through the symlink `ctxdir`, which leaves the build context"),
        "{}",
        r.stderr
    );
    assert!(p.ok(&["images"]).stdout.lines().count() <= 1, "an image was stored");
}

#[test]
fn ctx_follows_a_symlink_that_stays_inside_the_context() {
    let p = Project::new();
    p.write("real/f.txt", "inside\n");
    symlink("real", p.path("alias")).unwrap();
    p.recipe(r#"image("x", scratch().copy(ctx("alias/f.txt"), "/f.txt"));"#);
    p.ok(&["build"]);
    let bundle = umoci_unpack(p.store.path(), "x");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/f.txt")).unwrap(),
        "inside\n"
    );
}

#[test]
fn a_new_store_is_private_to_its_owner() {
    let p = Project::new();
    p.write("f.txt", "x\n");
    p.recipe(r#"image("x", scratch().copy(ctx("f.txt"), "/f.txt"));"#);
    let store = p.store.path().join("new-store");
    p.ok(&["build", "--store", store.to_str().unwrap()]);
    assert_eq!(
        owner_mode(&store).0,
        0o700,
        "layers with setuid files must not be reachable by other users"
    );
}

#[test]
fn secrets_are_masked_line_by_line_and_mounted_for_the_steps_user_alone() {
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar").user("65534").run("cat /run/secrets/token; stat -c '%a %u' /run/secrets/token > /tmp/mode; cat /tmp/mode",
            #{ secrets: [#{ id: "token", file: "token.txt" }] }));"#,
    );
    p.write("token.txt", "first-line-9f3\r\nxyz\n");
    let r = p.run(&["build", "--progress", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let outputs: Vec<String> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "output")
        .map(|e| e["line"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !r.stderr.contains("first-line-9f3") && !r.stderr.contains("xyz"),
        "{}",
        r.stderr
    );
    assert_eq!(outputs, ["****", "****", "400 65534"], "{}", r.stderr);

    // `mode`, `uid` and `gid` say otherwise, as BuildKit's do.
    p.recipe(
        r#"image("s", from("rootfs:busybox.tar").user("65534").run("stat -c '%a %u %g' /run/secrets/token",
            #{ secrets: [#{ id: "token", file: "token.txt", mode: "0440", uid: 0, gid: 65534 }] }));"#,
    );
    let r = p.run(&["build", "--progress", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains(r#""line":"440 0 65534""#), "{}", r.stderr);
    p.recipe(
        r#"image("s", from("rootfs:busybox.tar").run("true", #{ secrets: [#{ id: "t", file: "token.txt", uid: "root" }] }));"#,
    );
    let r = p.run(&["build"]);
    assert!(
        r.stderr.contains("secret `uid` must be a number, not `root`"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_import_cycle_is_an_error_naming_its_files() {
    let p = Project::new();
    p.write("lib/a.rhai", "import \"./lib/b\" as b;\nfn base() { scratch() }\n");
    p.write("lib/b.rhai", "import \"./lib/a\" as a;\nfn base() { scratch() }\n");
    p.recipe("import \"./lib/a\" as a;\nimage(\"x\", a::base());\n");
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("import cycle: lib/a.rhai → lib/b.rhai → lib/a.rhai"),
        "{}",
        r.stderr
    );
    // The recipe importing itself is a cycle too.
    p.recipe("import \"./strata\" as me;\nimage(\"x\", scratch());\n");
    let r = p.run(&["build"]);
    assert!(
        r.stderr.contains("import cycle: strata.rhai → strata.rhai"),
        "{}",
        r.stderr
    );
    // A module imported twice (not a cycle) is evaluated once and shared.
    p.write("lib/c.rhai", "fn base() { scratch().env(\"C\", \"1\") }\n");
    p.write("lib/d.rhai", "import \"./lib/c\" as c;\nfn base() { c::base() }\n");
    p.recipe(
        "import \"./lib/c\" as c;\nimport \"./lib/d\" as d;\nimage(\"x\", d::base());\nimage(\"y\", c::base());\n",
    );
    p.ok(&["build"]);
}

#[test]
fn imports_from_outside_the_project_need_the_flag() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("evil.rhai"), "fn base() { scratch() }\n").unwrap();
    let p = Project::new();
    let module = outside.path().join("evil");
    p.recipe(&format!(
        "import \"{}\" as e;\nimage(\"x\", e::base());\n",
        module.display()
    ));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "reads `{}`, outside the recipe's directory",
            outside.path().join("evil.rhai").canonicalize().unwrap().display()
        )) && r.stderr.contains("build with --allow-import-outside"),
        "{}",
        r.stderr
    );
    // A symlink that leads out, likewise.
    fs::create_dir_all(p.path("lib")).unwrap();
    symlink(outside.path().join("evil.rhai"), p.path("lib/linked.rhai")).unwrap();
    p.recipe("import \"./lib/linked\" as e;\nimage(\"x\", e::base());\n");
    let r = p.run(&["build"]);
    assert!(r.stderr.contains("outside the recipe's directory"), "{}", r.stderr);
    p.ok(&["build", "--allow-import-outside"]);
}

#[test]
fn an_arg_the_recipe_never_reads_is_a_warning() {
    let p = Project::new();
    p.recipe("let v = arg(\"version\", \"1\");\nlet c = arg(\"channel\", \"stable\");\nimage(\"x\", scratch().env(\"V\", v).env(\"C\", c));\n");
    let r = p.ok(&["build", "--arg", "verison=2", "--arg", "channel=beta"]);
    assert!(
        r.stderr
            .contains("warning: --arg `verison` is not read by strata.rhai (it reads `channel`, `version`)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("`channel` is not read"), "{}", r.stderr);
}

#[test]
fn a_relative_store_path_works() {
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar").run("echo hi > /hi"));"#);
    let out = p
        .cmd(&["--store", "rel-store", "build"])
        .env_remove("STRATA_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(p.path("rel-store/blobs/sha256").is_dir());
    let out = p.cmd(&["build"]).env("STRATA_HOME", "rel-home").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(p.path("rel-home/blobs/sha256").is_dir());
}

/// A docker-archive whose manifest names its layers through symlinks in the
/// archive: one to `/dev/zero` (it would be read until the disk is full),
/// one through a link to `/` (it would import a host file as a layer).
fn hostile_archive(p: &Project, layer: &str, links: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
    fs::write(dir.path().join("config.json"), config).unwrap();
    fs::write(
        dir.path().join("manifest.json"),
        format!(r#"[{{"Config":"config.json","RepoTags":["x:1"],"Layers":["{layer}"]}}]"#),
    )
    .unwrap();
    for (name, target) in links {
        symlink(target, dir.path().join(name)).unwrap();
    }
    let archive = p.path("hostile.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    archive
}

#[test]
fn a_hostile_docker_archive_reads_nothing_outside_itself() {
    let p = Project::new();
    p.recipe(r#"image("x", from("docker-archive:hostile.tar"));"#);
    hostile_archive(&p, "lz", &[("lz", "/dev/zero")]);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("hostile.tar`: member `lz`: failed to open")
            && r.stderr.contains("No such file or directory"),
        "{}",
        r.stderr
    );
    hostile_archive(&p, "r/etc/hostname", &[("r", "/")]);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("member `r/etc/hostname`: failed to open"),
        "{}",
        r.stderr
    );
    // Nothing of the host landed in the store.
    let blobs: Vec<_> = fs::read_dir(p.store.path().join("blobs/sha256")).unwrap().collect();
    assert!(blobs.is_empty(), "{blobs:?}");
}

#[test]
fn a_hostile_oci_layout_reads_nothing_outside_itself() {
    let p = busybox_project(r#"image("b", from("rootfs:busybox.tar"));"#);
    p.ok(&["build", "-o", "oci:layout"]);
    // Every blob of the layout becomes a link to /dev/zero.
    let blobs = p.path("layout/blobs/sha256");
    for e in fs::read_dir(&blobs).unwrap() {
        let path = e.unwrap().path();
        fs::remove_file(&path).unwrap();
        symlink("/dev/zero", &path).unwrap();
    }
    let q = Project::new();
    copy_tree(&p.path("layout"), &q.path("layout"));
    q.recipe(r#"image("x", from("oci:layout"));"#);
    let r = q.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("failed to open") && r.stderr.contains("layout/blobs/sha256/"),
        "{}",
        r.stderr
    );
}

#[test]
fn unpack_errors_keep_their_cause() {
    let p = Project::new();
    let tar = fs::read(busybox_tar()).unwrap();
    fs::write(p.path("cut.tar"), &tar[..tar.len() / 3 + 100]).unwrap();
    p.recipe(r#"image("x", from("rootfs:cut.tar"));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not a readable root filesystem tar: failed to read tar entry")
            && r.stderr.contains("unexpected EOF"),
        "{}",
        r.stderr
    );
    p.recipe(r#"image("x", from("rootfs:/dev/zero"));"#);
    let r = p.run(&["build"]);
    assert!(
        r.stderr.contains("/dev/zero") && r.stderr.contains("not a regular file"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_copy_resolves_its_destination_through_the_images_symlinks() {
    // A merged-/usr base: /bin is a link to usr/bin.
    let p = busybox_project(
        r#"let merged = from("rootfs:busybox.tar").run("mkdir -p /usr/bin && mv /bin/* /usr/bin/ && rmdir /bin && ln -s usr/bin /bin");
image("m", merged.copy(ctx("tool"), "/bin/tool").copy(ctx("tree"), "/").copy(ctx("tool"), "/bin/", #{ chmod: "0755" })
    .run("test -L /bin && /bin/sh -c 'ls /bin/tool /bin/tool2 /bin/sh' > /seen"));"#,
    );
    p.write("tool", "#!/bin/sh\necho tool\n");
    p.write("tree/bin/tool2", "#!/bin/sh\necho tool2\n");
    p.ok(&["build"]);
    let b = umoci_unpack(p.store.path(), "m");
    let rootfs = b.path().join("b/rootfs");
    assert!(
        fs::symlink_metadata(rootfs.join("bin"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "/bin was replaced"
    );
    assert_eq!(
        fs::read_link(rootfs.join("bin")).unwrap(),
        std::path::Path::new("usr/bin")
    );
    for f in ["usr/bin/tool", "usr/bin/tool2", "usr/bin/sh"] {
        assert!(rootfs.join(f).exists(), "{f} is missing");
    }
    assert_eq!(
        fs::read_to_string(rootfs.join("seen")).unwrap(),
        "/bin/sh\n/bin/tool\n/bin/tool2\n"
    );
}
