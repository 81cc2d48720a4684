//! The standard library (`import "strata/…"`) and the examples built on it,
//! each built for real against the loopback Debian mirror.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;

use crate::common::*;

#[test]
fn rust_app_is_compiled_in_a_builder_and_ships_on_distroless_without_a_compiler() {
    let mirror = DebianMirror::start();
    let p = Project::example("rust-app");
    p.ok(&["build", "--arg", &mirror_arg(&mirror)]);
    let bundle = umoci_unpack(p.store.path(), "example/rust-app:latest");
    let root = bundle.path().join("b/rootfs");
    assert!(root.join("usr/local/bin/hello-server").exists());
    for absent in [
        "usr/bin/cargo",
        "usr/bin/rustc",
        "bin/sh",
        "usr/bin/dpkg",
        "usr/bin/gcc",
    ] {
        assert!(!root.join(absent).exists(), "{absent} reached the runtime image");
    }
    assert!(fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .contains("nonroot:x:65532:65532"));
    assert!(
        fs::metadata(root.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .len()
            > 100_000
    );
    assert!(root.join("usr/share/zoneinfo/UTC").exists());
    let inspect: serde_json::Value =
        serde_json::from_str(&p.ok(&["inspect", "example/rust-app:latest"]).stdout).unwrap();
    assert_eq!(inspect["config"]["config"]["User"], "nonroot");

    // The service answers, run by `strata run` on the host's network.
    let port = free_port();
    let env = format!("PORT={port}");
    let mut server = p
        .cmd(&["run", "--network", "host", "-e", &env, "example/rust-app:latest"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut answer = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").unwrap();
            s.read_to_string(&mut answer).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    unsafe { libc::kill(-(server.id() as i32), libc::SIGINT) };
    server.wait().unwrap();
    assert!(answer.contains("hello from strata's rust-app: /ping"), "{answer}");

    // An edit of the recipe alone changes nothing that is built.
    let recipe = fs::read_to_string(p.path("strata.rhai")).unwrap();
    p.recipe(&format!("// edited\n{recipe}"));
    let again = p.ok(&["build", "--arg", &mirror_arg(&mirror), "--progress", "json"]);
    assert!(again.stderr.contains(r#""built":0"#), "{}", again.stderr);
    // With --sbom, the SBOM knows the binary's crates from the Cargo.lock
    // shipped beside it.
    p.ok(&["build", "--sbom", "--arg", &mirror_arg(&mirror)]);
    let sbom: serde_json::Value = serde_json::from_str(&p.ok(&["sbom", "example/rust-app:latest"]).stdout).unwrap();
    assert!(
        sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["externalRefs"][0]["referenceLocator"] == "pkg:cargo/hello-server@0.1.0"),
        "{sbom}"
    );
    // The runtime's CA certificates and zoneinfo come from Debian packages:
    // recorded as distroless records them (status.d), so the SBOM names
    // them with the version and SHA256 strata.lock pinned.
    let lock = lock_of(&p);
    let pinned: Vec<&serde_json::Value> = lock["debian"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|set| set["packages"].as_array().unwrap())
        .collect();
    for name in ["ca-certificates", "tzdata"] {
        let locked = pinned
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} pinned"));
        let package = sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is in the SBOM: {sbom}"));
        assert_eq!(package["versionInfo"], locked["version"], "{package}");
        assert_eq!(package["checksums"][0]["checksumValue"], locked["sha256"], "{package}");
    }
    let status = bundle.path().join("b/rootfs/var/lib/dpkg/status.d/tzdata");
    assert!(fs::read_to_string(&status).unwrap().contains("Package: tzdata"));
}

#[test]
fn python_app_installs_vendored_wheels_into_a_venv() {
    let mirror = DebianMirror::start();
    let p = Project::example("python-app");
    p.ok(&["build", "--arg", &mirror_arg(&mirror)]);
    let out = p.ok(&["run", "example/python-app:latest", "--", "tester"]).stdout;
    assert_eq!(out, "hello from a vendored wheel, tester\n");
    // The wheel came from ./wheels into the virtualenv, not from an index.
    let bundle = umoci_unpack(p.store.path(), "example/python-app:latest");
    let site = bundle.path().join("b/rootfs/venv/lib/python3.11/site-packages");
    assert!(site.join("greeting/__init__.py").exists());
    assert!(!bundle.path().join("b/rootfs/tmp/strata-wheels").exists());
}

#[test]
fn strata_debian_installs_with_apt_and_keeps_package_lists_out_of_the_layer() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.recipe(&format!(
        r#"import "strata/debian" as apt;
let base = debian("bookworm", [], #{{ mirror: "{}" }});
let web = apt::install(base, ["nginx"]);
image("web", web.run("nginx -v && dpkg --audit && test -z \"$(ls /var/lib/apt/lists | grep Packages)\""));
"#,
        mirror.url
    ));
    p.ok(&["build"]);
    let bundle = umoci_unpack(p.store.path(), "web");
    let root = bundle.path().join("b/rootfs");
    assert!(root.join("usr/sbin/nginx").exists());
    let lists: Vec<_> = fs::read_dir(root.join("var/lib/apt/lists"))
        .expect("apt's lists directory is in the image")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        lists.iter().all(|n| !n.to_string_lossy().contains("Packages")),
        "{lists:?}"
    );
    // The lists and the downloaded .debs stay in the cache mounts, for the next build.
    let cached: Vec<String> = fs::read_dir(p.store.path().join("cache"))
        .unwrap()
        .flatten()
        .flat_map(|dir| fs::read_dir(dir.path()).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cached.iter().any(|n| n.ends_with("_Packages")), "{cached:?}");
    assert!(cached.iter().any(|n| n == "archives"), "{cached:?}");
}

#[test]
fn strata_node_runs_npm_ci_with_its_cache_mounted() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.write(
        "package.json",
        r#"{ "name": "strata-node-check", "version": "1.0.0", "private": true }"#,
    );
    p.write(
        "package-lock.json",
        r#"{"name": "strata-node-check", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {"": {"name": "strata-node-check", "version": "1.0.0"}}}"#,
    );
    p.write(
        "src/index.js",
        "console.log(`hello from ${require('/app/package.json').name}`);\n",
    );
    p.recipe(&format!(
        r#"import "strata/node" as node;
let nodejs = debian("bookworm", ["nodejs", "npm"], #{{ mirror: "{}" }});
let app = node::ci(nodejs, ctx(["package.json", "package-lock.json"])).copy(ctx("src"), "/app/src/");
image("app", app.cmd(["node", "/app/src/index.js"]));
"#,
        mirror.url
    ));
    p.ok(&["build"]);
    assert_eq!(p.ok(&["run", "app"]).stdout, "hello from strata-node-check\n");
}
