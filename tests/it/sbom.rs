//! Attestations: `strata build --sbom` and `--provenance` attach an SPDX 2.3
//! document and SLSA v1 provenance to each image as BuildKit does (an
//! attestation manifest in the image's index); `strata sbom` and `strata
//! provenance` print them. SBOMs are checked with pyspdxtools, provenance
//! against a JSON schema of the SLSA v1 specification.

use std::fs;

use crate::common::*;

/// The virtualenv with pyspdxtools and jsonschema (scripts/test.sh makes
/// it and sets STRATA_TEST_ATTEST_TOOLS).
fn attest_tools() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("STRATA_TEST_ATTEST_TOOLS").expect(
        "STRATA_TEST_ATTEST_TOOLS is unset: run the tests through scripts/test.sh, which installs spdx-tools and jsonschema",
    ))
}

/// Validates an SPDX JSON document with pyspdxtools.
fn assert_valid_spdx(doc: &str) {
    let file = tempfile::Builder::new().suffix(".spdx.json").tempfile().unwrap();
    fs::write(file.path(), doc).unwrap();
    let out = std::process::Command::new(attest_tools().join("pyspdxtools"))
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
    let pushed = p.ok(&["build", "--sbom", "--push", &app]);
    let index = pushed
        .stdout
        .lines()
        .chain(pushed.stderr.lines())
        .find_map(|l| l.strip_prefix(&format!("pushed {app}@"))?.split(' ').next())
        .unwrap_or_else(|| panic!("no pushed digest in {pushed:?}"))
        .to_string();
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
    // And an OCI 1.1 referrer of the image: this registry has no referrers
    // API, so the tag schema's index `sha256-<image digest>` lists it.
    let image = raw["manifests"][0]["digest"].as_str().unwrap();
    let attestation = raw["manifests"][1]["digest"].as_str().unwrap();
    let referrers: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/team/app:{}", registry.addr, image.replace(':', "-")),
        ],
    ))
    .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], attestation);
    assert_eq!(
        referrers["manifests"][0]["artifactType"],
        "application/vnd.in-toto+json"
    );
    let manifest: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/team/app@{attestation}", registry.addr),
        ],
    ))
    .unwrap();
    assert_eq!(manifest["subject"]["digest"], image);
    // The image alone still pulls and runs in podman (docker's pull of an
    // attested image is in the conformance suite).
    let podman = Podman::new();
    podman.ok(&["pull", "--quiet", "--tls-verify=false", &app]);
    assert_eq!(
        podman.ok(&["image", "inspect", "--format", "{{.Digest}} {{.Architecture}}", &app]),
        format!("{index} amd64\n")
    );
    assert_eq!(podman.run(&app, &["cat", "/hi"]), "hi\n");
    // Read back from the registry by another machine: the same document.
    let elsewhere = Project::new();
    assert_eq!(elsewhere.ok(&["sbom", &app]).stdout, sbom);
    let missing = elsewhere.run(&["provenance", &app]);
    assert!(
        missing
            .stderr
            .contains("has no provenance attached: build it with `strata build --provenance`"),
        "{}",
        missing.stderr
    );

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

/// Validates a provenance statement against the SLSA v1 schema of
/// tests/fixtures.
fn assert_valid_provenance(statement: &serde_json::Value) {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    fs::write(file.path(), statement.to_string()).unwrap();
    let schema = repo().join("tests/fixtures/slsa-provenance-v1.schema.json");
    let out = std::process::Command::new(attest_tools().join("python3"))
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(file.path())
        .arg(schema)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn provenance_lists_every_input_by_digest_and_secrets_by_id_only() {
    let registry = Registry::start();
    let producer = busybox_project(r#"image("base", from("rootfs:busybox.tar"));"#);
    let base = format!("{}/team/base:1", registry.addr);
    producer.ok(&["build", "--push", &base]);
    let p = Project::new();
    p.write("app.txt", "the app\n");
    p.write("token.txt", "s3cr3t-value\n");
    p.write("common.rhai", "fn at() { \"/app.txt\" }\n");
    p.recipe(&format!(
        r#"import "./common" as common;
import "strata/debian" as debian;
image("app", from("{base}").copy(ctx("app.txt"), common::at()).run("cat /run/secrets/token > /dev/null", #{{ secrets: [#{{ id: "token" }}] }}));"#
    ));
    // The context is a git checkout.
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    fs::create_dir_all(p.path(".git/refs/heads")).unwrap();
    p.write(".git/HEAD", "ref: refs/heads/main\n");
    p.write(".git/refs/heads/main", &format!("{commit}\n"));
    p.write(
        ".git/config",
        "[remote \"origin\"]\n\turl = https://git.test/team/app.git\n",
    );
    let secret = format!("id=token,src={}", p.path("token.txt").display());
    let build = [
        "build",
        "--provenance",
        "--arg",
        "mode=release",
        "--secret",
        secret.as_str(),
    ];
    p.ok(&build);
    let printed = p.ok(&["provenance", "app"]).stdout;
    assert!(
        !printed.contains("s3cr3t-value"),
        "a secret's value in the provenance: {printed}"
    );
    let predicate: serde_json::Value = serde_json::from_str(&printed).unwrap();
    // The whole statement, as attached, against the SLSA v1 schema.
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "00"}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": predicate,
    });
    assert_valid_provenance(&statement);
    let params = &predicate["buildDefinition"]["externalParameters"];
    assert_eq!(params["recipe"], "strata.rhai");
    assert_eq!(params["target"], "app");
    assert_eq!(params["args"], serde_json::json!({"mode": "release"}));
    assert_eq!(params["secrets"], serde_json::json!(["token"]));
    let deps = predicate["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    let recipe_sha = tool("sha256sum", &[p.path("strata.rhai").to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let expect = |dep: serde_json::Value| assert!(deps.contains(&dep), "{dep} not in {deps:?}");
    expect(serde_json::json!({"uri": "file:strata.rhai", "digest": {"sha256": recipe_sha}}));
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    let pinned = lock["images"][&base]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    expect(serde_json::json!({"uri": format!("oci://{base}"), "digest": {"sha256": pinned}}));
    expect(serde_json::json!({"uri": "git+https://git.test/team/app.git", "digest": {"gitCommit": commit}}));
    // The modules it imported, the stdlib's too.
    let module_sha = tool("sha256sum", &[p.path("common.rhai").to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    expect(serde_json::json!({"uri": "file:common.rhai", "digest": {"sha256": module_sha}}));
    assert!(deps.iter().any(|d| d["uri"] == "strata:strata/debian"), "{deps:?}");
    assert!(
        deps.iter()
            .any(|d| d["name"] == "context:app.txt" && d["digest"]["blake3"].as_str().is_some_and(|h| h.len() == 64)),
        "{deps:?}"
    );
    // Reproducible: the same build, the same provenance.
    p.ok(&build);
    assert_eq!(p.ok(&["provenance", "app"]).stdout, printed);
}

#[test]
fn verify_rebuilds_from_the_provenance_and_points_at_what_differs() {
    let p = busybox_project(
        r#"
image("ok", from("rootfs:busybox.tar").run("echo same > /same"));
image("stamp", from("rootfs:busybox.tar").run("echo same > /same").run("date > /stamp && head -c 16 /dev/urandom | od -An -tx1 >> /stamp && chmod 0600 /same"));
"#,
    );
    p.ok(&["build", "--provenance", "--arg", "unused=1"]);
    let ok = p.ok(&["verify", "ok"]);
    assert!(ok.stdout.starts_with("same digest: sha256:"), "{}", ok.stdout);
    assert!(ok.stdout.ends_with("rebuilds bit for bit\n"), "{}", ok.stdout);
    // Made not reproducible on purpose (the date, to the second, and random
    // bytes, so that a rebuild within the same second differs too): the
    // first differing layer, and in it the files.
    let differs = p.run(&["verify", "stamp"]);
    assert_eq!(differs.code, 1, "{}", differs.stderr);
    assert!(
        differs
            .stderr
            .contains("layer 3 of 3 differs (run(\"date > /stamp && head -c 16 /dev/urandom | od -An -tx1 >> /stamp && chmod 0600 /same\"))"),
        "{}",
        differs.stderr
    );
    assert!(differs.stderr.contains("/stamp: content"), "{}", differs.stderr);
    assert!(
        !differs.stderr.contains("/same:"),
        "only what differs: {}",
        differs.stderr
    );
    // Another recipe than the provenance names is refused.
    p.write("strata.rhai", "image(\"ok\", scratch());\n");
    let changed = p.run(&["verify", "ok"]);
    assert!(
        changed
            .stderr
            .contains("is not the recipe the image was built from: sha256"),
        "{}",
        changed.stderr
    );
    // An image without provenance says how to get one.
    p.ok(&["build"]);
    let none = p.run(&["verify", "ok"]);
    assert!(
        none.stderr
            .contains("`ok` has no provenance to verify against: build it with `strata build --provenance`"),
        "{}",
        none.stderr
    );
}

#[test]
fn verify_reads_the_provenance_of_a_pushed_image_from_its_registry() {
    let registry = Registry::start();
    let p = busybox_project(r#"image("ok", from("rootfs:busybox.tar").run("echo same > /same"));"#);
    let reference = format!("{}/team/ok:1", registry.addr);
    p.ok(&["build", "--provenance", "--sbom", "--push", &reference]);
    // Another machine with the same checkout and an empty store.
    let q = Project::new();
    copy_tree(p.dir.path(), q.dir.path());
    let same = q.ok(&["verify", &reference]);
    assert!(same.stdout.starts_with("same digest: sha256:"), "{}", same.stdout);
    // Again: the image the first verify pulled does not hide the registry's provenance.
    assert_eq!(q.ok(&["verify", &reference]).stdout, same.stdout);
    // Nor do `strata provenance` and `strata sbom` of the same store lose
    // what the registry attached (the verify tagged nothing).
    let provenance = q.ok(&["provenance", &reference]).stdout;
    assert!(provenance.contains("\"buildType\""), "{provenance}");
    let sbom = q.ok(&["sbom", &reference]).stdout;
    assert!(sbom.contains("\"spdxVersion\": \"SPDX-2.3\""), "{sbom}");
    // A checkout that changed since: the recipe is not the one built.
    q.write(
        "strata.rhai",
        r#"image("ok", from("rootfs:busybox.tar").run("echo other > /same"));"#,
    );
    let changed = q.run(&["verify", &reference]);
    assert!(
        changed.stderr.contains("is not the recipe the image was built from"),
        "{}",
        changed.stderr
    );
}
