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
        let p = Project::new();
        p.write("extra.txt", "extra");
        p.recipe(&format!(
            r#"image("s", from("{base}").copy(ctx("extra.txt"), "/srv/extra.txt"));"#
        ));
        let oci = p.path("oci");
        p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
        let bundle = umoci_unpack(&oci, "s");
        let r = bundle.path().join("b/rootfs");
        assert_eq!(
            fs::read_to_string(r.join("srv/hello.txt")).unwrap(),
            "Hello from strata.\n",
            "{base}"
        );
        assert_eq!(fs::read_to_string(r.join("srv/extra.txt")).unwrap(), "extra");
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
