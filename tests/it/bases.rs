//! Bases from files: rootfs tarballs, OCI layouts and docker-archives.

use std::fs;

use crate::common::*;

#[test]
fn busybox_example_builds_on_a_rootfs_base_and_runs() {
    let p = Project::example("busybox");
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "example/busybox-hello:latest");
    let rootfs = bundle.path().join("b/rootfs");
    let out = tool("chroot", &[rootfs.to_str().unwrap(), "/usr/local/bin/hello"]);
    assert!(out.contains("Welcome to a strata-built busybox image."), "{out}");
    let tiny = umoci_unpack(&oci, "example/tiny:latest");
    let mut names: Vec<String> = fs::read_dir(tiny.path().join("b/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["bin", "etc"]);
}

#[test]
fn images_from_oci_layouts_and_docker_archives_are_usable_bases() {
    let producer = Project::example("hello");
    let layout = producer.path("layout");
    let archive = producer.path("image.tar");
    producer.ok(&[
        "build",
        "hello",
        "-o",
        &format!("oci:{}", layout.display()),
        "-o",
        &format!("docker-archive:{}", archive.display()),
    ]);
    // A layout written by another tool: skopeo's copy of ours.
    let foreign = producer.path("foreign");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:example/hello:latest", layout.display()),
            &format!("oci:{}:v1", foreign.display()),
        ],
    );

    for base in [
        format!("oci:{}:example/hello:latest", layout.display()),
        format!("oci:{}", foreign.display()),
        format!("docker-archive:{}", archive.display()),
    ] {
        let p = build_on_hello_base(&base);
        // The base's config carries over.
        let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "s"]).stdout).unwrap();
        assert_eq!(
            inspect["config"]["config"]["Entrypoint"][0], "/usr/local/bin/greet",
            "{base}"
        );
        assert_eq!(inspect["config"]["rootfs"]["diff_ids"].as_array().unwrap().len(), 5);
    }
}

#[test]
fn a_base_whose_blob_is_corrupt_is_refused() {
    let producer = Project::example("hello");
    let layout = producer.path("layout");
    producer.ok(&["build", "hello", "-o", &format!("oci:{}", layout.display())]);
    // Flip a byte in the largest blob (a layer).
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort_by_key(|b| fs::metadata(b).unwrap().len());
    let victim = blobs.last().unwrap();
    let mut bytes = fs::read(victim).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0xff;
    fs::remove_file(victim).unwrap();
    fs::write(victim, bytes).unwrap();

    let p = Project::new();
    p.recipe(&format!(
        r#"image("s", from("oci:{}:example/hello:latest"));"#,
        layout.display()
    ));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("hashes to"), "{}", r.stderr);
}
