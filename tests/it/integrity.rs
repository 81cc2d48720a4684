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
}
