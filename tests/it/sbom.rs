//! SBOMs: `strata build --sbom` attaches an SPDX 2.3 document to each image
//! as BuildKit does (an attestation manifest in the image's index), and
//! `strata sbom` prints it. Documents are checked with pyspdxtools.

use std::fs;

use crate::common::*;

/// Validates an SPDX JSON document with pyspdxtools (scripts/test.sh
/// installs it and sets STRATA_TEST_PYSPDXTOOLS).
fn assert_valid_spdx(doc: &str) {
    let tool = std::env::var("STRATA_TEST_PYSPDXTOOLS")
        .expect("STRATA_TEST_PYSPDXTOOLS is unset: run the tests through scripts/test.sh, which installs spdx-tools");
    let file = tempfile::Builder::new().suffix(".spdx.json").tempfile().unwrap();
    fs::write(file.path(), doc).unwrap();
    let out = std::process::Command::new(tool)
        .arg("-i")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_debian_image_lists_every_package_with_its_checksum_and_layer() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.recipe(&format!(
        r#"
let base = debian("bookworm", ["ca-certificates"], #{{ mirror: "{}" }});
let app = base.run("mkdir -p /opt/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info /app/node_modules/left-pad && printf 'Name: Flask\nVersion: 3.0.0\n' > /opt/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA && echo '{{\"name\": \"left-pad\", \"version\": \"1.3.0\"}}' > /app/node_modules/left-pad/package.json");
image("app", app);
"#,
        mirror.url
    ));
    let layout = p.path("out");
    let built = p.ok(&["build", "--sbom", "-o", &format!("oci:{}", layout.display())]);
    let digest = digest_of(&built.stdout, "app");
    let sbom = p.ok(&["sbom", "app"]).stdout;
    assert_valid_spdx(&sbom);
    let doc: serde_json::Value = serde_json::from_str(&sbom).unwrap();
    let packages = doc["packages"].as_array().unwrap();
    let by_name = |n: &str| {
        packages
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no {n}: {doc}"))
    };
    // Every .deb of the pinned set, with the SHA256 of strata.lock.
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    let pinned = lock["debian"].as_object().unwrap().values().next().unwrap()["packages"]
        .as_array()
        .unwrap()
        .clone();
    for deb in &pinned {
        let found = by_name(deb["name"].as_str().unwrap());
        assert_eq!(found["versionInfo"], deb["version"]);
        assert_eq!(found["checksums"][0]["checksumValue"], deb["sha256"], "{}", deb["name"]);
        let purl = found["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{}@", deb["name"].as_str().unwrap())),
            "{purl}"
        );
    }
    assert!(by_name("libc6")["sourceInfo"]
        .as_str()
        .unwrap()
        .ends_with("source package glibc"));
    // What the RUN step added, attributed to its layer (the image's last).
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "app"]).stdout).unwrap();
    let layers = inspect["config"]["rootfs"]["diff_ids"].as_array().unwrap();
    let last = layers.last().unwrap().as_str().unwrap();
    for (name, purl) in [
        ("Flask", "pkg:pypi/flask@3.0.0"),
        ("left-pad", "pkg:npm/left-pad@1.3.0"),
    ] {
        let found = by_name(name);
        assert_eq!(found["externalRefs"][0]["referenceLocator"], purl);
        assert_eq!(found["comment"], format!("from layer {last}"));
    }
    assert_eq!(
        by_name("ca-certificates")["comment"],
        format!("from layer {}", layers[1].as_str().unwrap())
    );

    // As BuildKit attaches it: the image and an attestation manifest about it.
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:app", layout.display())],
    ))
    .unwrap();
    let manifests = raw["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    let image = &manifests[0]["digest"];
    assert_eq!(manifests[1]["platform"]["architecture"], "unknown");
    assert_eq!(
        manifests[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(&manifests[1]["annotations"]["vnd.docker.reference.digest"], image);
    // The build prints the index's digest, the one the layout tags.
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    // The image alone still copies and unpacks.
    let single = tempfile::tempdir().unwrap();
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:app", layout.display()),
            &format!("oci:{}:one", single.path().display()),
        ],
    );
    let bundle = umoci_unpack(single.path(), "one");
    assert!(bundle
        .path()
        .join("b/rootfs/app/node_modules/left-pad/package.json")
        .exists());
    // A docker-archive takes the image without its attestations.
    p.ok(&["build", "--sbom", "-o", "docker-archive:app.tar"]);
    let listing = tool("tar", &["-xOf", p.path("app.tar").to_str().unwrap(), "manifest.json"]);
    let archive: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(archive.as_array().unwrap().len(), 1);
}

#[test]
fn registry_bases_are_named_by_digest_and_the_sbom_travels_with_a_push() {
    let registry = Registry::start();
    let producer = busybox_project(r#"image("base", from("rootfs:busybox.tar"));"#);
    let base = format!("{}/team/base:1", registry.addr);
    producer.ok(&["build", "--push", &base]);
    let p = Project::new();
    p.recipe(&format!(r#"image("app", from("{base}").run("echo hi > /hi"));"#));
    let app = format!("{}/team/app:1", registry.addr);
    p.ok(&["build", "--sbom", "--push", &app]);
    let sbom = p.ok(&["sbom", "app"]).stdout;
    assert_valid_spdx(&sbom);
    let doc: serde_json::Value = serde_json::from_str(&sbom).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    let pinned = lock["images"][&base].as_str().unwrap();
    let named = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == base.as_str())
        .unwrap();
    assert_eq!(named["versionInfo"], pinned);
    assert_eq!(
        named["checksums"][0]["checksumValue"],
        pinned.trim_start_matches("sha256:")
    );
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &format!("docker://{app}")],
    ))
    .unwrap();
    let types: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["vnd.docker.reference.type"]
                .as_str()
                .unwrap_or("image")
        })
        .collect();
    assert_eq!(types, ["image", "attestation-manifest"]);

    // Without --sbom there is none, and strata says how to get one.
    p.ok(&["build"]);
    let none = p.run(&["sbom", "app"]);
    assert!(
        none.stderr
            .contains("`app` has no SBOM attached: build it with `strata build --sbom`"),
        "{}",
        none.stderr
    );
}
