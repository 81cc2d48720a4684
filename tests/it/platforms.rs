//! Multi-platform builds: one build for linux/amd64 and linux/arm64 (the
//! latter under QEMU emulation), image indexes in OCI layouts and
//! registries, recipes that see the platform, and bases that must match it.

use std::fs;

use crate::common::*;

/// A project with the amd64 and the arm64 busybox beside its recipe.
fn two_busyboxes(recipe: &str) -> Project {
    let p = busybox_project(recipe);
    fs::copy(arm64_busybox_tar(), p.path("busybox-arm64.tar")).unwrap();
    p
}

const UNAME: &str = r#"
let p = target_platform();
let bb = if p.arch == "arm64" { "rootfs:busybox-arm64.tar" } else { "rootfs:busybox.tar" };
// Made once, on the build platform, and copied into both images.
let notes = scratch(#{ platform: "build" }).copy(text("built on " + build_platform().platform + "\n"), "/notes.txt");
image("uname", from(bb)
    .copy(notes.path("/notes.txt"), "/notes.txt")
    .run("uname -m > /arch && echo " + p.platform + " > /platform"),
    #{ tags: ["multi/uname:1"] });
"#;

/// The file `path` of the image for `arch` in the OCI layout `layout`.
fn file_for(layout: &std::path::Path, arch: &str, path: &str) -> String {
    let single = tempfile::tempdir().unwrap();
    tool(
        "skopeo",
        &[
            "copy",
            "--override-arch",
            arch,
            &format!("oci:{}:multi/uname:1", layout.display()),
            &format!("oci:{}:one", single.path().display()),
        ],
    );
    let bundle = umoci_unpack(single.path(), "one");
    fs::read_to_string(bundle.path().join("b/rootfs").join(path.trim_start_matches('/'))).unwrap()
}

#[test]
fn one_build_makes_an_index_of_an_amd64_and_an_emulated_arm64_image() {
    let p = two_busyboxes(UNAME);
    let layout = p.path("layout");
    let built = p.ok(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("oci:{}", layout.display()),
        "--progress",
        "plain",
    ]);
    // One line per target: the index.
    let digest = digest_of(&built.stdout, "uname");
    assert!(
        built.stderr.contains("[linux/arm64, emulated]"),
        "emulated steps are marked: {}",
        built.stderr
    );
    // The build-platform stage ran once, not once per platform.
    assert_eq!(
        built.stderr.matches("DONE    copy(text(").count(),
        1,
        "{}",
        built.stderr
    );
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:multi/uname:1", layout.display())],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(file_for(&layout, "amd64", "/arch"), "x86_64\n");
    assert_eq!(file_for(&layout, "arm64", "/arch"), "aarch64\n");
    assert_eq!(file_for(&layout, "arm64", "/platform"), "linux/arm64\n");
    let host = if cfg!(target_arch = "x86_64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    assert_eq!(file_for(&layout, "arm64", "/notes.txt"), format!("built on {host}\n"));

    // Cached: the same index, nothing runs.
    let again = p.ok(&["build", "--platform", "linux/amd64,linux/arm64", "--progress", "plain"]);
    assert_eq!(digest_of(&again.stdout, "uname"), digest);
    assert!(!again.stderr.contains("RUN "), "{}", again.stderr);

    // A docker-archive holds one platform.
    let refused = p.run(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        "docker-archive:x.tar",
    ]);
    assert!(
        refused
            .stderr
            .contains("--output docker-archive holds one platform's image, and --platform names 2"),
        "{}",
        refused.stderr
    );
    // One foreign platform: a plain image for it.
    let arm = p.ok(&["build", "--platform", "linux/arm64"]);
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "multi/uname:1"]).stdout).unwrap();
    assert_eq!(inspect["config"]["architecture"], "arm64", "{}", arm.stdout);
}

#[test]
fn an_index_is_pushed_and_read_back_by_skopeo() {
    let registry = Registry::start();
    let p = two_busyboxes(UNAME);
    let reference = format!("{}/team/uname:1", registry.addr);
    p.ok(&["build", "--platform", "linux/amd64,linux/arm64", "--push", &reference]);
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    ))
    .unwrap();
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let layout = tempfile::tempdir().unwrap();
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            &format!("docker://{reference}"),
            &format!("oci:{}:multi/uname:1", layout.path().display()),
        ],
    );
    assert_eq!(file_for(layout.path(), "arm64", "/arch"), "aarch64\n");
    // A registry base for arm64 is the index's arm64 entry.
    let q = Project::new();
    q.recipe(&format!(
        r#"image("on", from("{reference}").run("cat /arch > /seen"));"#
    ));
    q.ok(&["build", "--platform", "linux/arm64"]);
    assert_eq!(q.ok(&["run", "on", "--", "cat", "/seen"]).stdout, "aarch64\n");
}

#[test]
fn a_dockerfile_builds_for_each_platform_with_a_native_builder_stage() {
    let p = two_busyboxes("");
    fs::remove_file(p.path("strata.rhai")).unwrap();
    p.write(
        "Dockerfile",
        "ARG TARGETARCH\n\
         FROM --platform=$BUILDPLATFORM rootfs:busybox.tar AS build\n\
         ARG TARGETARCH\n\
         RUN uname -m > /built-on && echo $TARGETARCH > /built-for\n\
         FROM rootfs:busybox-${TARGETARCH}.tar\n\
         COPY --from=build /built-on /built-for /\n\
         RUN uname -m > /runs-on\n",
    );
    // busybox-amd64.tar for the amd64 stage.
    fs::copy(p.path("busybox.tar"), p.path("busybox-amd64.tar")).unwrap();
    let layout = p.path("layout");
    let built = p.ok(&[
        "build",
        "-f",
        "Dockerfile",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("oci:{}", layout.display()),
        "--progress",
        "plain",
    ]);
    // The builder stage runs natively, once per target platform (its
    // TARGETARCH differs); the final stage's RUN under emulation for arm64.
    let builder: Vec<&str> = built
        .stderr
        .lines()
        .filter(|l| l.starts_with("RUN     run(\"uname -m > /built-on"))
        .collect();
    assert_eq!(builder.len(), 2, "{}", built.stderr);
    assert!(builder.iter().all(|l| !l.contains("emulated")), "{}", built.stderr);
    fs::rename(p.path("layout/index.json"), p.path("layout/index.json.tmp")).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(p.path("layout/index.json.tmp")).unwrap()).unwrap();
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "multi/uname:1".into();
    fs::write(p.path("layout/index.json"), index.to_string()).unwrap();
    let host = if cfg!(target_arch = "x86_64") {
        "x86_64\n"
    } else {
        "aarch64\n"
    };
    assert_eq!(file_for(&layout, "arm64", "/built-on"), host);
    assert_eq!(file_for(&layout, "arm64", "/built-for"), "arm64\n");
    assert_eq!(file_for(&layout, "arm64", "/runs-on"), "aarch64\n");
    assert_eq!(file_for(&layout, "amd64", "/built-for"), "amd64\n");
}

#[test]
fn a_base_for_another_platform_is_an_error_never_a_relabel() {
    let p = two_busyboxes(r#"image("amd", from("rootfs:busybox.tar"));"#);
    let layout = p.path("amd64-layout");
    p.ok(&["build", "-o", &format!("oci:{}", layout.display())]);
    p.recipe(r#"image("on", from("oci:amd64-layout:amd").run("true"));"#);
    let failed = p.run(&["build", "--platform", "linux/arm64"]);
    assert!(
        failed
            .stderr
            .contains("it is an image for linux/amd64, and this build is for linux/arm64"),
        "{}",
        failed.stderr
    );
    // A root filesystem says nothing: it is the platform the recipe names.
    p.recipe(r#"image("arm", from("rootfs:busybox-arm64.tar", #{ platform: "linux/arm64" }).run("uname -m > /m"));"#);
    p.ok(&["build"]);
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "arm"]).stdout).unwrap();
    assert_eq!(inspect["config"]["architecture"], "arm64");
    // A platform strata cannot emulate.
    p.recipe(r#"image("x", scratch().run("true"));"#);
    let refused = p.run(&["build", "--platform", "linux/sparc64"]);
    assert!(
        refused
            .stderr
            .contains("steps for linux/sparc64 cannot run here: strata knows no QEMU emulator for it"),
        "{}",
        refused.stderr
    );
}

#[test]
fn the_multiarch_example_cross_compiles_on_the_build_platform() {
    let mirror = DebianMirror::start();
    let p = Project::example("multiarch");
    let layout = p.path("out");
    let built = p.ok(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--arg",
        &mirror_arg(&mirror),
        "-o",
        &format!("oci:{}", layout.display()),
        "--progress",
        "plain",
    ]);
    // The toolchain is one native stage; nothing runs under emulation.
    assert_eq!(built.stderr.matches("DONE    debian(").count(), 1, "{}", built.stderr);
    assert!(!built.stderr.contains("emulated"), "{}", built.stderr);
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:example/multiarch:latest", layout.display()),
        ],
    ))
    .unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    // Each platform's image runs its own binary: arm64's under QEMU.
    arm64_busybox_tar();
    p.ok(&["build", "--platform", "linux/arm64", "--arg", &mirror_arg(&mirror)]);
    assert_eq!(
        p.ok(&["run", "example/multiarch:latest"]).stdout,
        "hello from aarch64\n"
    );
    p.ok(&["build", "--arg", &mirror_arg(&mirror)]);
    let native = if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else {
        "aarch64"
    };
    assert_eq!(
        p.ok(&["run", "example/multiarch:latest"]).stdout,
        format!("hello from {native}\n")
    );
}

#[test]
fn an_arm64_debian_base_is_pinned_and_configured_under_emulation() {
    arm64_busybox_tar();
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.recipe(&format!(
        r#"image("deb", debian("bookworm", [], #{{ mirror: "{}", arch: "arm64" }}).run("uname -m > /m && dpkg --print-architecture >> /m"));"#,
        mirror.url
    ));
    // `arch` names the state's platform: no --platform needed.
    let built = p.ok(&["build", "--progress", "plain"]);
    assert!(
        built
            .stderr
            .contains("debian(\"bookworm\", []) [linux/arm64, emulated]"),
        "{}",
        built.stderr
    );
    assert_eq!(p.ok(&["run", "deb", "--", "cat", "/m"]).stdout, "aarch64\narm64\n");
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "deb"]).stdout).unwrap();
    assert_eq!(inspect["config"]["architecture"], "arm64");
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    let set = lock["debian"].as_object().unwrap().values().next().unwrap();
    assert_eq!(set["arch"], "arm64");
    let packages = set["packages"].as_array().unwrap();
    assert!(
        packages
            .iter()
            .any(|pkg| pkg["name"] == "dpkg" && pkg["arch"] == "arm64"),
        "{set}"
    );
    assert!(
        packages
            .iter()
            .all(|pkg| pkg["arch"] == "arm64" || pkg["arch"] == "all"),
        "{set}"
    );
}

#[test]
fn a_registry_cache_restores_both_platforms_on_another_machine() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let p = two_busyboxes(UNAME);
    let both = "linux/amd64,linux/arm64";
    let first = p.ok(&["build", "--platform", both, "--cache-to", &cache]);
    // Another machine: every node of both platforms hits (their keys name
    // the platform), nothing runs, the same index.
    let q = Project::new();
    copy_tree(p.dir.path(), q.dir.path());
    let second = q.ok(&[
        "build",
        "--platform",
        both,
        "--cache-from",
        &cache,
        "--progress",
        "json",
    ]);
    assert!(!second.stderr.contains(r#""event":"started""#), "{}", second.stderr);
    assert_eq!(digest_of(&second.stdout, "uname"), digest_of(&first.stdout, "uname"));
}

/// Re-enables a binfmt_misc handler when dropped.
struct Reenable(&'static str);

impl Drop for Reenable {
    fn drop(&mut self) {
        let _ = fs::write(format!("/proc/sys/fs/binfmt_misc/{}", self.0), "1");
    }
}

#[test]
fn a_build_that_needs_a_disabled_emulator_stops_before_it_starts_and_says_how() {
    arm64_busybox_tar();
    // s390x: no other test builds for it.
    let handler = "/proc/sys/fs/binfmt_misc/qemu-s390x";
    assert!(
        std::path::Path::new(handler).exists(),
        "strata binfmt --install registers qemu-s390x"
    );
    let _restore = Reenable("qemu-s390x");
    fs::write(handler, "0").unwrap();
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar", #{ platform: "linux/s390x" }).run("true"));"#);
    let failed = p.run(&["build", "--progress", "plain"]);
    assert!(
        failed
            .stderr
            .contains("steps for linux/s390x: the `qemu-s390x` handler is disabled"),
        "{}",
        failed.stderr
    );
    // Nothing ran: not even the base was imported.
    assert!(!failed.stderr.contains("RUN "), "{}", failed.stderr);
    let listed = p.ok(&["binfmt"]).stdout;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("qemu-s390x\t") && l.ends_with("disabled")),
        "{listed}"
    );
}

#[test]
fn rootless_builds_the_same_index_under_emulation() {
    let user = rootless_user();
    let root = two_busyboxes(UNAME);
    let both = "linux/amd64,linux/arm64";
    let digest = digest_of(&root.ok(&["build", "--platform", both]).stdout, "uname");
    let p = two_busyboxes(UNAME).rootless(&user);
    let built = p.ok(&["build", "--platform", both, "--progress", "plain"]);
    assert!(built.stderr.contains("[linux/arm64, emulated]"), "{}", built.stderr);
    assert_eq!(digest_of(&built.stdout, "uname"), digest);
}
