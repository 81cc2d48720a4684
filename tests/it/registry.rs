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

    // The download shows as progress: bytes of the total, per step.
    let p = Project::new();
    p.recipe(&format!(r#"image("s", from("{}/team/hello:1.0"));"#, registry.addr));
    let r = p.ok(&["build", "--progress", "json"]);
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .filter(|l| l.contains(r#""event":"downloading""#))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = events.first().map(|v| v["total"].as_u64().unwrap()).unwrap_or(0);
    assert!(total > 0, "{}", r.stderr);
    let most = events.iter().map(|v| v["bytes"].as_u64().unwrap()).max().unwrap();
    assert_eq!(most, total, "{}", r.stderr);
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
    let moved = lock_of(&p)["images"][format!("{}/team/base:v1", registry.addr)]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        updated,
        format!(
            "image   {}/team/base:v1  {moved}\n(written to strata.lock; -v prints all of it)\n",
            registry.addr
        )
    );
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

/// The busybox example's project, whose images are `busybox-hello` and `tiny`.
fn busybox_example() -> Project {
    let p = Project::example("busybox");
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p
}

/// A fresh store for the same project files: "another machine".
fn on_empty_store(p: &Project) -> Project {
    let q = Project::new();
    copy_tree(p.dir.path(), q.dir.path());
    q
}

fn layer_dirs(p: &Project) -> usize {
    fs::read_dir(p.store.path().join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count()
}

#[test]
fn a_registry_cache_restores_every_node_on_an_empty_store() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let p = busybox_example();
    let first = p.ok(&["build", "--cache-to", &cache]);
    assert!(first.stderr.contains("cache: uploaded"), "{}", first.stderr);

    // Another machine: every node hits, no RUN executes, same digests.
    let q = on_empty_store(&p);
    let second = q.ok(&["build", "--cache-from", &cache, "--progress", "json"]);
    assert!(!second.stderr.contains(r#""event":"started""#), "{}", second.stderr);
    assert!(second.stderr.contains(r#""built":0"#), "{}", second.stderr);
    for name in ["busybox-hello", "tiny"] {
        assert_eq!(
            digest_of(&second.stdout, name),
            digest_of(&first.stdout, name),
            "{name}"
        );
    }
    // The restore is complete: a plain build afterwards (no --cache-from)
    // runs nothing and gives the same digests.
    let plain = q.ok(&["build", "--progress", "json"]);
    assert!(!plain.stderr.contains(r#""event":"started""#), "{}", plain.stderr);
    for name in ["busybox-hello", "tiny"] {
        assert_eq!(digest_of(&plain.stdout, name), digest_of(&first.stdout, name), "{name}");
    }
    // The restored images are whole: skopeo reads them, and umoci unpacks them.
    let bundle = umoci_unpack(q.store.path(), "example/busybox-hello:latest");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/var/www/index.html")).unwrap(),
        "built by a run step\n"
    );

    // Only what the requested output needs is downloaded: `tiny` holds two
    // copied layers and none of the busybox base's.
    let r = on_empty_store(&p);
    let tiny = r.ok(&["build", "tiny", "--cache-from", &cache]);
    assert_eq!(digest_of(&tiny.stdout, "tiny"), digest_of(&first.stdout, "tiny"));
    assert_eq!(layer_dirs(&r), 2);

    // A changed step misses; the steps below it come from the cache and
    // only the changed RUN executes.
    let s = on_empty_store(&p);
    let recipe = fs::read_to_string(s.path("strata.rhai")).unwrap();
    s.recipe(&recipe.replace("built by a run step", "built again"));
    let third = s.ok(&["build", "busybox-hello", "--cache-from", &cache, "--progress", "json"]);
    assert_eq!(
        third.stderr.matches(r#""event":"started""#).count(),
        1,
        "{}",
        third.stderr
    );
}

#[test]
fn a_second_target_after_a_restore_downloads_only_the_layers_it_lacks() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let p = Project::new();
    p.write("a", "shared by both images\n")
        .write("b", "only in one\n")
        .write("c", "only in two\n");
    p.recipe(
        r#"
        let common = scratch().copy(ctx("a"), "/a");
        image("one", common.copy(ctx("b"), "/b"));
        image("two", common.copy(ctx("c"), "/c"));
        "#,
    );
    let first = p.ok(&["build", "--cache-to", &cache]);

    let q = on_empty_store(&p);
    let before = registry.blob_downloads().len();
    let one = q.ok(&["build", "one", "--cache-from", &cache]);
    assert_eq!(digest_of(&one.stdout, "one"), digest_of(&first.stdout, "one"));
    let for_one = registry.blob_downloads().split_off(before);
    assert_eq!(layer_dirs(&q), 2, "{for_one:?}");
    assert_eq!(
        layers_in(&registry, &for_one),
        [vec!["a".to_string()], vec!["b".to_string()]],
        "{for_one:?}"
    );

    // `two` shares the layer of /a with `one`: only the layer of /c comes
    // over the wire, and nothing runs.
    let before = registry.blob_downloads().len();
    let two = q.ok(&["build", "two", "--cache-from", &cache, "--progress", "json"]);
    assert_eq!(digest_of(&two.stdout, "two"), digest_of(&first.stdout, "two"));
    assert!(!two.stderr.contains(r#""event":"started""#), "{}", two.stderr);
    let for_two = registry.blob_downloads().split_off(before);
    assert_eq!(layers_in(&registry, &for_two), [vec!["c".to_string()]], "{for_two:?}");
    assert_eq!(layer_dirs(&q), 3);
}

/// The file lists of the layer blobs (gzip tars) among `digests`, sorted;
/// other blobs (configs) are left out.
fn layers_in(registry: &Registry, digests: &[String]) -> Vec<Vec<String>> {
    let mut layers: Vec<Vec<String>> = digests
        .iter()
        .filter_map(|digest| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            let blob = registry
                .storage()
                .join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
            let bytes = fs::read(&blob).unwrap();
            bytes.starts_with(&[0x1f, 0x8b]).then(|| {
                let listing = tool("tar", &["-tzf", blob.to_str().unwrap()]);
                listing.lines().map(str::to_string).collect()
            })
        })
        .collect();
    layers.sort();
    layers
}

#[test]
fn an_unreachable_cache_is_a_warning_and_the_build_goes_on() {
    let p = busybox_example();
    let r = p.ok(&["build", "tiny", "--cache-from", "127.0.0.1:1/cache"]);
    assert!(r.stderr.contains("WARNING cache 127.0.0.1:1/cache"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach registry"), "{}", r.stderr);
}

#[test]
fn pushed_images_are_what_skopeo_pulls_and_layers_in_the_cache_are_mounted() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let p = busybox_example();
    let layout = p.path("layout");
    let built = p.ok(&[
        "build",
        "--cache-to",
        &cache,
        "-o",
        &format!("oci:{}", layout.display()),
    ]);
    // The push compresses as the OCI layout did: the same manifest.
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "example/busybox-hello:latest")
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .unwrap();
    assert_ne!(
        digest,
        digest_of(&built.stdout, "busybox-hello"),
        "the store's image is uncompressed"
    );

    // Every layer is in the cache repository already: mounted, not uploaded.
    let app = format!("{}/team/app:1", registry.addr);
    let pushed = p.ok(&["push", "example/busybox-hello:latest", &app]).stdout;
    assert!(pushed.starts_with(&format!("pushed {app}@{digest} (")), "{pushed}");
    assert!(pushed.contains("mounted 4"), "{pushed}");
    // Again: everything is there.
    let again = p.ok(&["push", "example/busybox-hello:latest", &app]).stdout;
    assert!(again.contains("uploaded 0 blobs"), "{again}");

    // build --push from a fresh store, to a repository of its own.
    let q = on_empty_store(&p);
    let other = format!("{}/team/other:2", registry.addr);
    let out = q.ok(&["build", "busybox-hello", "--push", &other]).stdout;
    assert!(out.contains(&format!("pushed {other}@{digest}")), "{out}");

    // skopeo pulls it; it unpacks to the same files as the local export.
    let inspect = tool("skopeo", &["inspect", "--tls-verify=false", &format!("docker://{app}")]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    let copied = p.path("copied");
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{app}"),
            &format!("oci:{}:app", copied.display()),
        ],
    );
    let theirs = umoci_unpack(&copied, "app");
    let ours = umoci_unpack(&layout, "example/busybox-hello:latest");
    assert_eq!(
        tree(&theirs.path().join("b/rootfs")),
        tree(&ours.path().join("b/rootfs"))
    );
}

/// Every path under `root` with its type, mode and content hash.
fn tree(root: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let what = if m.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else {
                format!(
                    "{:x}",
                    fs::read(&path)
                        .unwrap()
                        .iter()
                        .fold(0u64, |h, b| h.wrapping_mul(31) ^ *b as u64)
                )
            };
            out.push(format!(
                "{} {:o} {}:{} {what}",
                path.strip_prefix(root).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid()
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn authenticated_registries_take_login_and_credential_helpers() {
    let registry = Registry::with_auth("alice", "s3cret");
    let p = busybox_example();
    p.ok(&["build", "tiny"]);
    let target = format!("{}/team/tiny:1", registry.addr);

    let r = p.run(&["push", "example/tiny:latest", &target]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("registry `{}` answered 401 for `team/tiny`", registry.addr)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("strata login"), "{}", r.stderr);

    let login = |password: &str| {
        let mut c = p.cmd(&["login", &registry.addr, "-u", "alice", "--password-stdin"]);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        Run::from(child.wait_with_output().unwrap())
    };
    let wrong = login("nope\n");
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("answered 401"), "{}", wrong.stderr);
    assert!(!p.docker_config().join("config.json").exists());
    let right = login("s3cret\n");
    assert_eq!(right.code, 0, "{}", right.stderr);
    p.ok(&["push", "example/tiny:latest", &target]);

    // A fresh machine whose docker config names a credential helper.
    let q = Project::new();
    let bin = q.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-strata-test");
    fs::write(
        &helper,
        "#!/bin/sh\nread host\necho \"{\\\"ServerURL\\\":\\\"$host\\\",\\\"Username\\\":\\\"alice\\\",\\\"Secret\\\":\\\"s3cret\\\"}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(q.docker_config()).unwrap();
    fs::write(
        q.docker_config().join("config.json"),
        format!(r#"{{"credHelpers": {{"{}": "strata-test"}}}}"#, registry.addr),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = q.cmd(&["pull", &target]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Logged out, the registry refuses again.
    p.ok(&["logout", &registry.addr]);
    assert_eq!(p.run(&["push", "example/tiny:latest", &target]).code, 1);
}

#[test]
fn platform_picks_an_entry_of_a_multi_platform_index() {
    let registry = Registry::start();
    let producer = Project::example("hello");
    let layout = producer.path("layout");
    producer.ok(&["build", "hello", "-o", &format!("oci:{}", layout.display())]);
    // A second manifest whose config says arm64, and an index over both.
    let blobs = layout.join("blobs/sha256");
    let put = |bytes: &[u8]| -> (String, usize) {
        let tmp = producer.path("blob.tmp");
        fs::write(&tmp, bytes).unwrap();
        let hex = tool("sha256sum", &[tmp.to_str().unwrap()])[..64].to_string();
        fs::rename(&tmp, blobs.join(&hex)).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let amd = index["manifests"][0].clone();
    let read = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(blobs.join(d.trim_start_matches("sha256:"))).unwrap()).unwrap()
    };
    let mut manifest = read(amd["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    config["architecture"] = "arm64".into();
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    let (arm_digest, arm_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let entry = |digest: &serde_json::Value, size: &serde_json::Value, arch: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
            "size": size, "platform": {"architecture": arch, "os": "linux"}})
    };
    let multi = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd["digest"], &amd["size"], "amd64"), entry(&arm_digest.clone().into(), &arm_size.into(), "arm64")]});
    let (multi_digest, multi_size) = put(&serde_json::to_vec(&multi).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": multi_digest, "size": multi_size, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let reference = format!("{}/team/multi:1", registry.addr);
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", layout.display()),
            &format!("docker://{reference}"),
        ],
    );

    let p = Project::new();
    let arch = |p: &Project| {
        let v: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", &reference]).stdout).unwrap();
        v["config"]["architecture"].as_str().unwrap().to_string()
    };
    p.ok(&["pull", &reference, "--platform", "linux/arm64"]);
    assert_eq!(arch(&p), "arm64");
    if std::env::consts::ARCH == "x86_64" {
        p.ok(&["pull", &reference]);
        assert_eq!(arch(&p), "amd64");
    }
    let r = p.run(&["pull", &reference, "--platform", "linux/s390x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no image for linux/s390x"), "{}", r.stderr);
    assert!(r.stderr.contains("linux/arm64"), "{}", r.stderr);
    assert_eq!(p.run(&["pull", &reference, "--platform", "arm64"]).code, 2);
}

#[test]
fn an_exported_cache_mount_travels_through_the_registry_keyed_by_its_lockfile() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    // "Downloads" into the cache mount what the lockfile names, unless the
    // mount has it already; the step has no network either way.
    let p = busybox_project(
        r#"let rev = arg("rev", "1");
image("app", from("rootfs:busybox.tar").copy(ctx("deps.lock"), "/src/deps.lock").run(
    `if [ -f /cache/deps/$(cat /src/deps.lock) ]; then echo "found $(cat /src/deps.lock) in the cache"; else echo "downloading $(cat /src/deps.lock)"; mkdir -p /cache/deps && echo payload > /cache/deps/$(cat /src/deps.lock); fi; echo ${rev} > /rev`,
    #{ cache: [#{ target: "/cache", id: "deps", "export": ctx("deps.lock") }] }));"#,
    );
    p.write("deps.lock", "serde-1.0.200");
    let first = p.ok(&["build", "-v", "--progress", "plain", "--cache-to", &cache]);
    assert!(
        first.stderr.contains("        downloading serde-1.0.200"),
        "{}",
        first.stderr
    );

    // Another machine; the step itself misses (another rev), its mount is
    // restored from the registry before it runs.
    let q = on_empty_store(&p);
    let second = q.ok(&[
        "build",
        "-v",
        "--progress",
        "plain",
        "--cache-from",
        &cache,
        "--arg",
        "rev=2",
    ]);
    assert!(
        second.stderr.contains(&format!(
            "        restored cache mount `deps` from {}/team/cache",
            registry.addr
        )),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("        found serde-1.0.200 in the cache"),
        "{}",
        second.stderr
    );

    // The lockfile changes: another key, nothing to restore, a download.
    let r = on_empty_store(&p);
    r.write("deps.lock", "serde-1.0.201");
    let third = r.ok(&[
        "build",
        "-v",
        "--progress",
        "plain",
        "--cache-from",
        &cache,
        "--arg",
        "rev=3",
    ]);
    assert!(!third.stderr.contains("restored cache mount"), "{}", third.stderr);
    assert!(
        third.stderr.contains("        downloading serde-1.0.201"),
        "{}",
        third.stderr
    );

    // A mount pushed is a deterministic blob: pushed again from the third
    // machine's content for the same key, nothing new is uploaded.
    let tags = tool(
        "skopeo",
        &["list-tags", "--tls-verify=false", &format!("docker://{cache}")],
    );
    let mounts = tags.matches("strata-mount-").count();
    assert_eq!(mounts, 1, "{tags}");
}

/// One plain HTTP/1.1 exchange with `addr`: (status, headers, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, answer[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The key of the `run` node of a project's graph.
fn run_key(p: &Project) -> String {
    let graph: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["op"] == "run")
        .map(|n| n["key"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn a_cache_entry_that_names_another_recipes_key_poisons_nothing() {
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let attacker = busybox_project(r#"image("r", from("rootfs:busybox.tar").run("echo attacker > /x"));"#);
    let victim_recipe = r#"image("q", from("rootfs:busybox.tar").run("echo mine > /x"));"#;
    let victim = busybox_project(victim_recipe);
    let (r_key, q_key) = (run_key(&attacker), run_key(&victim));
    attacker.ok(&["build", "--cache-to", &cache]);
    // Whoever can push to the cache rewrites R's entry to claim Q's key.
    let tag = format!("/v2/team/cache/manifests/strata-{r_key}");
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    let (status, _, manifest) = http(&registry.addr, "GET", &tag, &accept, b"");
    assert_eq!(status, 200);
    let mut manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let (_, _, config) = http(
        &registry.addr,
        "GET",
        &format!("/v2/team/cache/blobs/{config_digest}"),
        &[],
        b"",
    );
    let mut entry: serde_json::Value = serde_json::from_slice(&config).unwrap();
    entry["key"] = q_key.clone().into();
    let forged = serde_json::to_vec(&entry).unwrap();
    let forged_digest = format!("sha256:{}", strata_engine::digest::Digest::of(&forged).hex());
    let (status, head, _) = http(&registry.addr, "POST", "/v2/team/cache/blobs/uploads/", &[], b"");
    assert_eq!(status, 202);
    let location = header(&head, "Location").unwrap().to_string();
    let location = location
        .trim_start_matches(&format!("http://{}", registry.addr))
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _, _) = http(
        &registry.addr,
        "PUT",
        &format!("{location}{sep}digest={forged_digest}"),
        &[("Content-Type", "application/octet-stream")],
        &forged,
    );
    assert_eq!(status, 201);
    manifest["config"]["digest"] = forged_digest.into();
    manifest["config"]["size"] = forged.len().into();
    let media = manifest["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let (status, _, _) = http(
        &registry.addr,
        "PUT",
        &tag,
        &[("Content-Type", &media)],
        &serde_json::to_vec(&manifest).unwrap(),
    );
    assert_eq!(status, 201);

    // A store restores R from the cache, then builds Q without it.
    let shared = Project::new();
    copy_tree(attacker.dir.path(), shared.dir.path());
    shared.ok(&["build", "--cache-from", &cache]);
    shared.recipe(victim_recipe);
    let built = shared.ok(&["build", "--progress", "plain"]);
    assert!(
        built.stderr.contains("DONE    run(\"echo mine > /x\")"),
        "Q's own step ran: {}",
        built.stderr
    );
    assert_eq!(shared.ok(&["run", "q", "--", "cat", "/x"]).stdout, "mine\n");
    assert_eq!(
        digest_of(&built.stdout, "q"),
        victim.build_digest(&[], "q"),
        "the digest a clean store gives"
    );
}
