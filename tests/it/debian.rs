//! Native Debian bases, from a partial mirror served on 127.0.0.1 (made by
//! scripts/debian-mirror.sh from the real, signed archive).

use std::fs;

use crate::common::*;

#[test]
fn the_nginx_example_is_pinned_configured_and_reproducible() {
    let mirror = DebianMirror::start();
    let arg = format!("mirror={}", mirror.url);
    let p = Project::example("nginx");
    // nginx -t, dpkg --audit and apt-get check run inside the image.
    let first = p.ok(&["build", "nginx", "nginx-check", "--arg", &arg, "--progress", "plain"]);
    let digest = digest_of(&first.stdout, "nginx");
    // The download says how far it is (plain output: a line a quarter).
    let downloads: Vec<&str> = first.stderr.lines().filter(|l| l.contains(" downloading ")).collect();
    assert!(downloads.len() >= 2 && downloads.len() <= 6, "{}", first.stderr);
    assert!(
        downloads[0].starts_with("        downloading ")
            && downloads[0].contains("for debian(\"bookworm\", [\"nginx\"]"),
        "{}",
        first.stderr
    );
    assert!(
        downloads.last().unwrap().contains(" (100%) for debian("),
        "{}",
        first.stderr
    );

    let lock = lock_of(&p);
    let set = &lock["debian"]["bookworm/amd64 required: nginx"];
    let packages = set["packages"].as_array().unwrap();
    assert!(packages.len() > 80, "{}", packages.len());
    let nginx = packages.iter().find(|p| p["name"] == "nginx").unwrap();
    assert_eq!(nginx["sha256"].as_str().unwrap().len(), 64);
    // From the suite, or from its security overlay (which says so).
    let filename = nginx["filename"].as_str().unwrap();
    assert!(
        filename.starts_with("pool/main/n/nginx/")
            || (filename.starts_with("pool/updates/main/n/nginx/") && nginx["suite"] == "bookworm-security"),
        "{nginx}"
    );
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "example/nginx:latest"]).stdout).unwrap();
    assert_eq!(
        inspect["config"]["config"]["Cmd"],
        serde_json::json!(["nginx", "-g", "daemon off;"])
    );
    assert!(inspect["config"]["config"]["ExposedPorts"]["80/tcp"].is_object());
    // The seed image serves: nginx started in it answers HTTP 200 on the
    // sandbox's own loopback (bash's /dev/tcp; the image has no curl).
    let served = p.ok(&[
        "run",
        "example/nginx:latest",
        "--",
        "bash",
        "-c",
        "nginx && exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3",
    ]);
    assert!(
        served.stdout.starts_with("HTTP/1.1 200 OK"),
        "{}{}",
        served.stdout,
        served.stderr
    );
    // apt keeps its package cache in memory: the files it would write hold
    // a byte of a heap address, and no step that ran apt would repeat.
    let cache = p.ok(&[
        "run",
        "example/nginx:latest",
        "--",
        "sh",
        "-c",
        "apt-get check >/dev/null && ls /var/cache/apt",
    ]);
    assert_eq!(cache.stdout, "archives\n", "{}", cache.stderr);
    let bundle = umoci_unpack(p.store.path(), "example/nginx:latest");
    let root = bundle.path().join("b/rootfs");
    assert!(root.join("usr/sbin/nginx").exists());
    assert!(!root.join("usr/sbin/policy-rc.d").exists());
    assert!(!root.join("var/log/dpkg.log").exists());
    // Slim, as debian:bookworm-slim: no manuals or docs but the copyright
    // files, dpkg's excludes kept for later installs; merged /usr asserted
    // by usr-is-merged, not usrmerge (and its perl).
    assert!(!root.join("usr/share/man/man8/nginx.8.gz").exists());
    assert!(root.join("usr/share/doc/nginx/copyright").exists());
    assert!(!root.join("usr/share/doc/nginx/changelog.Debian.gz").exists());
    assert!(fs::read_to_string(root.join("etc/dpkg/dpkg.cfg.d/excludes"))
        .unwrap()
        .contains("path-exclude /usr/share/man/*"));
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: usr-is-merged\n"), "usr-is-merged");
    assert!(!status.contains("Package: usrmerge\n") && !status.contains("Package: perl\n"));
    assert_eq!(
        fs::read_link(root.join("bin")).unwrap(),
        std::path::Path::new("usr/bin")
    );
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert_eq!(
        status.matches("Status: install ok installed").count(),
        packages.len(),
        "every package is installed and configured"
    );

    // Two layers: the suite's base set, shared by every debian() of the
    // suite, and the requested packages on top.
    let diff_ids = |p: &Project, image: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", image]).stdout).unwrap();
        v["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    let nginx_layers = diff_ids(&p, "example/nginx:latest");
    assert_eq!(nginx_layers.len(), 2);
    let other = Project::new();
    other.recipe(&format!(
        r#"image("certs", debian("bookworm", ["ca-certificates"], #{{ mirror: "{}" }}));"#,
        mirror.url
    ));
    let run = other
        .cmd(&["build", "--progress", "plain"])
        .env("STRATA_HOME", p.store.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&p.cmd(&["inspect", "certs"]).output().unwrap().stdout).unwrap();
    let certs_layers: Vec<&str> = v["config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(certs_layers[0], nginx_layers[0], "the base set layer is shared");
    assert_ne!(certs_layers[1], nginx_layers[1]);

    // Another machine with the lock: no index is fetched, the same bytes come out.
    let before = mirror.requests().len();
    let q = Project::new();
    copy_tree(p.dir.path(), q.dir.path());
    let again = q.ok(&["build", "nginx", "--arg", &arg, "--locked"]);
    assert_eq!(digest_of(&again.stdout, "nginx"), digest);
    let asked: Vec<String> = mirror.requests()[before..].to_vec();
    assert!(asked.iter().all(|r| r.starts_with("/pool/")), "{asked:?}");
    assert_eq!(asked.len(), packages.len());

    // Another recipe in that store: the .debs it needs are all there already.
    let before = mirror.requests().len();
    q.recipe(&format!(
        r#"image("tiny", debian("bookworm", [], #{{ mirror: "{}", variant: "essential", docs: true }}).run("dpkg --audit && test -x /usr/bin/dpkg && test -e /usr/share/man/man1/dpkg.1.gz && test ! -e /etc/dpkg/dpkg.cfg.d/excludes"));"#,
        mirror.url
    ));
    q.ok(&["build"]);
    let asked: Vec<String> = mirror.requests()[before..].to_vec();
    assert!(!asked.iter().any(|r| r.starts_with("/pool/")), "{asked:?}");
    let essential = lock_of(&q)["debian"]["bookworm/amd64 essential"]["packages"]
        .as_array()
        .unwrap()
        .len();
    assert!(essential < packages.len(), "{essential}");

    // The package cache shows in `du`, and `gc --caches` empties it.
    let du = q.ok(&["du"]).stdout;
    assert!(du.contains("Debian packages"), "{du}");
    q.ok(&["gc", "--caches"]);
    assert!(!q.store.path().join("debian/debs").exists());

    // `strata lock --update` asks the mirror again.
    let before = mirror.requests().len();
    let summary = q.ok(&["lock", "--update"]).stdout;
    assert!(mirror.requests()[before..].iter().any(|r| r.ends_with("/InRelease")));
    // A line per set, not a line per package; -v prints the lockfile.
    assert_eq!(
        summary,
        format!(
            "debian  bookworm/amd64 essential: bookworm amd64 (essential), {essential} packages from {}\n(written to strata.lock; -v prints all of it)\n",
            mirror.url
        )
    );
    let whole: serde_json::Value = serde_json::from_str(&q.ok(&["lock", "-v"]).stdout).unwrap();
    assert_eq!(whole, lock_of(&q));
}

#[test]
fn bad_requests_and_bad_mirrors_are_clear_errors() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.recipe(&format!(
        "let b = debian(\"bookworm\", [\"no-such-package\"], #{{ mirror: \"{}\" }});\nimage(\"x\", b);",
        mirror.url
    ));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("strata.rhai:1:9"), "{}", r.stderr);
    assert!(
        r.stderr.contains("no package `no-such-package` in the index"),
        "{}",
        r.stderr
    );
    assert!(!p.path("strata.lock").exists());

    let r = p.run(&["build", "--locked"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not pinned"), "{}", r.stderr);

    // Without gpgv the index is used, and the user is told it was not checked.
    p.recipe(&format!(
        r#"image("x", debian("bookworm", ["nginx"], #{{ mirror: "{}" }}));"#,
        mirror.url
    ));
    let out = p.cmd(&["lock"]).env("PATH", "/nonexistent").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is NOT signature-checked: gpgv is not installed"), "{err}");
    fs::remove_file(p.path("strata.lock")).unwrap();

    // A mirror whose InRelease was altered, and one whose index does not
    // match the signed Release.
    let real = std::path::PathBuf::from(std::env::var("STRATA_TEST_DEBIAN_MIRROR").unwrap());
    let forged = tempfile::tempdir().unwrap();
    copy_tree(&real.join("dists"), &forged.path().join("dists"));
    let inrelease = forged.path().join("dists/bookworm/InRelease");
    let text = fs::read_to_string(&inrelease).unwrap();
    fs::write(&inrelease, text.replacen("Suite: ", "Suite:  ", 1)).unwrap();
    let bad = DebianMirror::serve(forged.path());
    p.recipe(&format!(
        r#"image("x", debian("bookworm", ["nginx"], #{{ mirror: "{}" }}));"#,
        bad.url
    ));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);

    // (A fresh store: indexes already verified are kept by their hash.)
    fs::write(&inrelease, text).unwrap();
    let index = forged.path().join("dists/bookworm/main/binary-amd64/Packages.xz");
    fs::write(&index, b"not the index").unwrap();
    let fresh = Project::new();
    fresh.recipe(&fs::read_to_string(p.path("strata.rhai")).unwrap());
    let r = fresh.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("but the signed Release says"), "{}", r.stderr);
    drop(bad);

    // A .deb that is not what the lock says.
    p.recipe(&format!(
        r#"image("x", debian("bookworm", ["nginx"], #{{ mirror: "{}" }}));"#,
        mirror.url
    ));
    p.ok(&["lock"]);
    let mut lock = lock_of(&p);
    let first = &mut lock["debian"]["bookworm/amd64 required: nginx"]["packages"][0];
    first["sha256"] = "0".repeat(64).into();
    fs::write(p.path("strata.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("but the index says"), "{}", r.stderr);

    // A lock whose SHA256 climbs out of the store to a file of the host:
    // refused as the lock is read, before the store looks for that file
    // (or a remote build would send it to the CAS).
    let outside = p.path("outside.deb");
    fs::write(&outside, "a file of the host").unwrap();
    let climb = format!(
        "{}{}",
        "../".repeat(24),
        outside.with_extension("").to_str().unwrap().trim_start_matches('/')
    );
    let name = lock["debian"]["bookworm/amd64 required: nginx"]["packages"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    lock["debian"]["bookworm/amd64 required: nginx"]["packages"][0]["sha256"] = climb.clone().into();
    fs::write(p.path("strata.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
    for args in [&["build"][..], &["graph"][..]] {
        let r = p.run(args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let expected = format!(
            "strata.rhai:1:12: `strata.lock`, package set `bookworm/amd64 required: nginx`: \
             the SHA256 of `{name}` is {climb:?}, not 64 lowercase hexadecimal digits"
        );
        assert!(r.stderr.contains(&expected), "{}", r.stderr);
    }
}

#[test]
fn security_and_updates_overlay_the_suite_and_a_snapshot_reads_the_archive_of_an_instant() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    p.recipe(&format!(
        r#"image("x", debian("bookworm", [], #{{ mirror: "{}", variant: "essential" }}));"#,
        mirror.url
    ));
    p.ok(&["lock"]);
    // All three suites read, each InRelease verified; the newest version
    // of each package wins, and the lock says where it came from.
    for suite in ["bookworm", "bookworm-updates", "bookworm-security"] {
        assert!(
            mirror.requests().contains(&format!("/dists/{suite}/InRelease")),
            "{suite}: {:?}",
            mirror.requests()
        );
    }
    let set = &lock_of(&p)["debian"]["bookworm/amd64 essential"];
    assert_eq!(set["overlays"]["bookworm-security"], mirror.url.as_str());
    let from_security: Vec<&serde_json::Value> = set["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["suite"] == "bookworm-security")
        .collect();
    assert!(!from_security.is_empty(), "{set}");
    assert!(from_security
        .iter()
        .all(|p| p["filename"].as_str().unwrap().starts_with("pool/updates/")));
    // Turned off, the suite alone.
    let q = Project::new();
    q.recipe(&format!(
        r#"image("x", debian("bookworm", [], #{{ mirror: "{}", variant: "essential", updates: false, security: false }}));"#,
        mirror.url
    ));
    q.ok(&["lock"]);
    let alone = &lock_of(&q)["debian"]["bookworm/amd64 essential -updates -security"];
    assert!(alone["overlays"].is_null(), "{alone}");
    assert!(alone["packages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["suite"].is_null()));

    // A snapshot archive for an instant (laid out as Debian's snapshot archive:
    // archive/{archive}/{instant}/dists/…), the URL pattern given.
    let archive = tempfile::tempdir().unwrap();
    let real = std::env::var("STRATA_TEST_DEBIAN_MIRROR").unwrap();
    for name in ["debian", "debian-security"] {
        let dir = archive.path().join("archive").join(name);
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&real, dir.join("20261101T000000Z")).unwrap();
    }
    let snapshots = DebianMirror::serve(archive.path());
    let s = Project::new();
    s.recipe(&format!(
        r#"image("x", debian("bookworm", [], #{{ variant: "essential", locales: ["de"], snapshot: "20261101T000000Z", snapshot_url: "{}/archive/{{archive}}/{{snapshot}}" }}).run("dpkg --audit && test -e /usr/share/locale/de/LC_MESSAGES/dpkg.mo && test ! -e /usr/share/locale/fr && grep -qF 'path-include /usr/share/locale/de/' /etc/dpkg/dpkg.cfg.d/excludes"));"#,
        snapshots.url
    ));
    s.ok(&["build"]);
    let requests = snapshots.requests();
    for wanted in [
        "/archive/debian/20261101T000000Z/dists/bookworm/InRelease",
        "/archive/debian/20261101T000000Z/dists/bookworm-updates/InRelease",
        "/archive/debian-security/20261101T000000Z/dists/bookworm-security/InRelease",
    ] {
        assert!(requests.iter().any(|r| r == wanted), "{wanted}: {requests:?}");
    }
    // The same instant gives the same packages as the mirror it was taken from.
    let snap = &lock_of(&s)["debian"]["bookworm/amd64 essential @20261101T000000Z"];
    assert_eq!(snap["packages"], set["packages"]);
    let bad = Project::new();
    bad.recipe(r#"image("x", debian("bookworm", [], #{ snapshot: "yesterday" }));"#);
    let r = bad.run(&["lock"]);
    assert!(
        r.stderr
            .contains("debian snapshot `yesterday` is not an instant like \"20261101T000000Z\""),
        "{}",
        r.stderr
    );
}
