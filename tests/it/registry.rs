//! Registry bases: pulled over the distribution protocol from a real docker-registry.

use std::fs;

use crate::common::*;

#[test]
fn a_registry_image_is_a_base_by_tag_and_by_digest() {
    let registry = Registry::start();
    // An image pushed by another tool.
    let producer = Project::example("hello");
    let layout = producer.path("layout");
    producer.ok(&["build", "hello", "-o", &format!("oci:{}", layout.display())]);
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:example/hello:latest", layout.display()),
            &format!("docker://{}/team/hello:1.0", registry.addr),
        ],
    );
    let inspect = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/team/hello:1.0", registry.addr),
        ],
    );
    let digest = serde_json::from_str::<serde_json::Value>(&inspect).unwrap()["Digest"]
        .as_str()
        .unwrap()
        .to_string();

    for base in [
        format!("{}/team/hello:1.0", registry.addr),
        format!("{}/team/hello@{digest}", registry.addr),
    ] {
        let p = build_on_hello_base(&base);
        let graph: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
        assert_eq!(graph["nodes"][0]["cache"], "cached", "{base}");
    }
}

#[test]
fn registry_errors_name_the_registry_the_repository_and_the_answer() {
    let registry = Registry::start();
    let p = Project::new();
    p.recipe(&format!(r#"image("s", from("{}/team/missing:1"));"#, registry.addr));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("strata.rhai:1:12"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("registry `{}` answered 404 for `team/missing`", registry.addr)),
        "{}",
        r.stderr
    );
    drop(registry);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot reach registry"), "{}", r.stderr);
}

#[test]
fn strata_lock_pins_tags_to_digests_until_updated() {
    let registry = Registry::start();
    let push = |example: &str, tag: &str| {
        let producer = Project::example(example);
        if example == "busybox" {
            fs::copy(busybox_tar(), producer.path("busybox.tar")).unwrap();
        }
        let layout = producer.path("layout");
        producer.ok(&["build", "-o", &format!("oci:{}", layout.display())]);
        let src = if example == "busybox" {
            "example/tiny:latest"
        } else {
            "example/hello:latest"
        };
        tool(
            "skopeo",
            &[
                "copy",
                "--dest-tls-verify=false",
                &format!("oci:{}:{src}", layout.display()),
                &format!("docker://{}/team/base:{tag}", registry.addr),
            ],
        );
    };
    push("hello", "v1");
    let p = Project::new();
    p.recipe(&format!(
        r#"image("s", from("{}/team/base:v1").label("k", "v"));"#,
        registry.addr
    ));
    let first = p.build_digest(&[], "s");
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    let pinned = lock["images"][format!("{}/team/base:v1", registry.addr)]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pinned.starts_with("sha256:"));

    // The tag moves; the lock keeps the build on the pinned bytes.
    push("busybox", "v1");
    assert_eq!(p.build_digest(&["--locked"], "s"), first);
    let updated = p.ok(&["lock", "--update"]).stdout;
    assert!(!updated.contains(&pinned), "{updated}");
    assert_ne!(p.build_digest(&["--locked"], "s"), first);

    // --locked refuses a missing or a stale lock.
    p.recipe(&format!(r#"image("s", from("{}/team/base:other"));"#, registry.addr));
    let r = p.run(&["build", "--locked"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not pinned"), "{}", r.stderr);
    push("hello", "other");
    p.ok(&["lock"]);
    p.recipe(&format!(r#"image("s", from("{}/team/base:other"));"#, registry.addr));
    let r = p.run(&["build", "--locked"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("stale"), "{}", r.stderr);
    p.ok(&["lock", "--update"]);
    p.ok(&["build", "--locked"]);
}

#[test]
fn strata_pull_stores_and_tags_a_registry_image() {
    let registry = Registry::start();
    let producer = Project::example("hello");
    let layout = producer.path("layout");
    producer.ok(&["build", "hello", "-o", &format!("oci:{}", layout.display())]);
    let reference = format!("{}/team/hello:1.0", registry.addr);
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:example/hello:latest", layout.display()),
            &format!("docker://{reference}"),
        ],
    );
    let p = Project::new();
    let out = p.ok(&["pull", &reference]).stdout;
    assert!(out.starts_with(&format!("{reference}\tsha256:")), "{out}");
    assert!(p.ok(&["images"]).stdout.contains(&reference));
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", &reference]).stdout).unwrap();
    assert_eq!(inspect["config"]["config"]["Entrypoint"][0], "/usr/local/bin/greet");
    let bundle = umoci_unpack(p.store.path(), &reference);
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/srv/hello.txt")).unwrap(),
        "Hello from strata.\n"
    );
    assert_eq!(p.run(&["pull", "Not A Reference"]).code, 2);
}
