//! Rootless mode: an ordinary user (with ranges in /etc/subuid and
//! /etc/subgid) builds, runs, pushes and pulls, and gets the images root
//! gets, digest for digest.

use std::fs;

use crate::common::*;

/// `(name, digest)` of every image a build printed.
fn digests(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3 && f[2].starts_with("sha256:")).then(|| (f[0].to_string(), f[2].to_string()))
        })
        .collect()
}

/// A copy of `examples/NAME` ready to build (the busybox base and the
/// monorepo's generated tree included).
fn example(name: &str) -> Project {
    let p = if name == "monorepo" {
        let p = Project::new();
        let status = std::process::Command::new("python3")
            .arg(repo().join("examples/monorepo/generate.py"))
            .arg(p.dir.path())
            .args(["--services", "3", "--files", "40", "--lib-files", "5"])
            .status()
            .unwrap();
        assert!(status.success());
        p
    } else {
        Project::example(name)
    };
    if name == "busybox" || name == "monorepo" {
        fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    }
    p
}

#[test]
fn the_examples_built_rootless_have_the_digests_root_gets() {
    let user = rootless_user();
    for name in ["hello", "busybox", "monorepo"] {
        let args: &[&str] = if name == "monorepo" {
            &["build", "--arg", "services=3"]
        } else {
            &["build"]
        };
        let as_root = example(name);
        let root_digests = digests(&as_root.ok(args).stdout);
        assert!(!root_digests.is_empty(), "{name}");
        let rootless = example(name).rootless(&user);
        let built = rootless.ok(args);
        assert_eq!(digests(&built.stdout), root_digests, "{name}: {}", built.stderr);
        // The store is the user's default one, and the user's own.
        let store = rootless.store_root();
        assert_eq!(owner_mode(&store).1, user.uid, "{name}");
        assert!(store.join("blobs").is_dir(), "{name}");
    }
}

#[test]
fn the_debian_examples_build_and_run_rootless() {
    let user = rootless_user();
    let mirror = DebianMirror::start();
    let arg = mirror_arg(&mirror);

    // nginx: 100-odd packages unpacked by dpkg in the sandbox, with their owners.
    let as_root = Project::example("nginx");
    let root_digest = digest_of(&as_root.ok(&["build", "nginx", "--arg", &arg]).stdout, "nginx");
    let p = Project::example("nginx").rootless(&user);
    let built = p.ok(&["build", "nginx", "nginx-check", "--arg", &arg]);
    assert_eq!(digest_of(&built.stdout, "nginx"), root_digest, "{}", built.stderr);
    let bundle = umoci_unpack(&p.store_root(), "example/nginx:latest");
    assert!(bundle.path().join("b/rootfs/usr/sbin/nginx").exists());

    let p = Project::example("python-app").rootless(&user);
    p.ok(&["build", "--arg", &arg]);
    let out = p.ok(&["run", "example/python-app:latest", "--", "tester"]).stdout;
    assert_eq!(out, "hello from a vendored wheel, tester\n");

    let p = Project::example("rust-app").rootless(&user);
    p.ok(&["build", "--arg", &arg]);
    let bundle = umoci_unpack(&p.store_root(), "example/rust-app:latest");
    let server = bundle.path().join("b/rootfs/usr/local/bin/hello-server");
    assert!(fs::metadata(&server).unwrap().len() > 100_000);
    let passwd = fs::read_to_string(bundle.path().join("b/rootfs/etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532"), "{passwd}");
}

#[test]
fn a_rootless_step_has_dockers_profile_and_its_files_keep_their_owners() {
    let user = rootless_user();
    let recipe = r#"
let base = from("rootfs:busybox.tar");
image("owned", base.run("mkdir /data && touch /data/f && chown 1234:5678 /data/f && mknod /data/fifo p"));
image("probe", base.run("(grep -E '^Cap(Eff|Bnd)' /proc/self/status; cat /proc/self/uid_map; grep Seccomp: /proc/self/status; mount -t tmpfs t /tmp; unshare -U true) > /probe.txt 2>&1; true"));
"#;
    let as_root = busybox_project(recipe);
    let root_digest = as_root.build_digest(&["owned"], "owned");
    let p = busybox_project(recipe).rootless(&user);
    assert_eq!(p.build_digest(&["owned"], "owned"), root_digest);
    let layout = p.path("out");
    p.ok(&["build", "owned", "-o", &format!("oci:{}", layout.display())]);
    let bundle = umoci_unpack(&layout, "owned");
    let f = bundle.path().join("b/rootfs/data/f");
    assert_eq!(owner_mode(&f), (0o644, 1234, 5678));

    p.ok(&["build", "probe"]);
    let out = p.ok(&["run", "probe", "--", "cat", "/probe.txt"]).stdout;
    // Docker's capabilities less CAP_MKNOD (as root), effective and bounding.
    assert!(out.contains("CapEff:\t00000000a00425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a00425fb"), "{out}");
    // Root in the step is the user; the rest is the subordinate range.
    assert!(out.contains(&format!("{:>10} {:>10} {:>10}", 0, user.uid, 1)), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("mount: permission denied (are you root?)"), "{out}");
    assert!(
        out.contains("unshare: unshare(0x10000000): Operation not permitted"),
        "{out}"
    );
}

#[test]
fn rootless_images_go_to_a_registry_and_the_remote_cache_serves_another_user_store() {
    let user = rootless_user();
    let registry = Registry::start();
    let p = busybox_project(
        r#"
let base = from("rootfs:busybox.tar");
image("app", base.copy(ctx("a.txt"), "/a.txt").run("cat /a.txt > /b.txt && chown 42:42 /b.txt"));
"#,
    )
    .rootless(&user);
    p.write("a.txt", "from the context\n");
    let cache = format!("{}/team/cache", registry.addr);
    let image = format!("{}/team/app:v1", registry.addr);
    let digest = p.build_digest(&["--cache-to", &cache], "app");
    p.ok(&["push", "app", &image]);

    // Another user store: pulled image, cache hits for every step.
    let q = Project::new().rootless(&user);
    q.ok(&["pull", &image]);
    let out = q
        .ok(&["run", &image, "--", "sh", "-c", "cat /b.txt; stat -c %u:%g /b.txt"])
        .stdout;
    assert_eq!(out, "from the context\n42:42\n");
    // A recipe on the pushed image, pinned by `strata lock`.
    q.recipe(&format!(
        r#"image("on-top", from("{image}").run("cat /b.txt > /c.txt"));"#
    ));
    q.ok(&["lock"]);
    let lock = fs::read_to_string(q.path("strata.lock")).unwrap();
    assert!(lock.contains(&format!("{}/team/app:v1", registry.addr)), "{lock}");
    q.ok(&["build", "on-top"]);
    let out = q.ok(&["run", "on-top", "--", "cat", "/c.txt"]).stdout;
    assert_eq!(out, "from the context\n");

    let r = busybox_project(&fs::read_to_string(p.path("strata.rhai")).unwrap()).rootless(&user);
    r.write("a.txt", "from the context\n");
    let again = r.ok(&["build", "--cache-from", &cache, "--progress", "json"]);
    assert_eq!(digest_of(&again.stdout, "app"), digest);
    assert!(again.stderr.contains(r#""built":0"#), "{}", again.stderr);
}

#[test]
fn rootless_limits_and_missing_ranges_are_explained() {
    // nobody has no subordinate ids: strata says which line to add.
    let p = Project::new();
    p.recipe(r#"image("x", scratch().copy(ctx("a.txt"), "/a.txt"));"#);
    let nobody = User {
        name: "nobody".into(),
        uid: 65534,
        gid: 65534,
    };
    let p = p.rootless(&nobody);
    for command in ["build", "gc"] {
        let r = p.run(&[command]);
        assert_eq!(r.code, 1, "{command}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "`strata {command}` as an ordinary user: rootless mode needs subordinate uids for user `{0}` (uid 65534), and /etc/subuid has none: add a line `{0}:100000:65536` to /etc/subuid",
                nobody.name
            )),
            "{command}: {}",
            r.stderr
        );
    }
    // Reading the store needs no namespace.
    assert_eq!(p.ok(&["images"]).stdout.lines().count(), 1);

    // An id beyond the user's range is named, not a bare EINVAL.
    let user = rootless_user();
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar").user("100000").run("true"));"#).rootless(&user);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("`run` could not start: switch to user 100000:100000: 100000:100000 is outside the ids of strata's rootless user namespace (uids 0 to 65536, gids 0 to 65536); a larger range in /etc/subuid and /etc/subgid gives it more"),
        "{}",
        r.stderr
    );

    // A step's own limit needs a cgroup, which this host does not give the user.
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar").run("true", #{ limits: #{ memory: "64m" } }));"#)
        .rootless(&user);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("limits: the `memory` cgroup controller is not available to strata on this host (not mounted, or not delegated to this user), so the step's `memory` limit cannot be applied"),
        "{}",
        r.stderr
    );
}
