//! Outputs: strata writes where the user points and nowhere else. An
//! archive goes to standard output or through a FIFO, device or symlink the
//! user named (never replacing it); an artifact directory keeps the files
//! strata did not write; a symlink planted in an output directory cannot
//! lead a write out of it; a damaged blob never leaves the store.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::process::Stdio;

use crate::common::*;

const RECIPE: &str = r#"image("x", scratch().copy(ctx("a.txt"), "/a.txt"), #{ tags: ["x:1"] });"#;

fn project() -> Project {
    let p = Project::new();
    p.write("a.txt", "hello\n");
    p.recipe(RECIPE);
    p
}

/// The archive `-o docker-archive:FILE` writes (the reference bytes).
fn archive_bytes(p: &Project) -> Vec<u8> {
    let file = p.path("ref.tar");
    p.ok(&["build", "-o", &format!("docker-archive:{}", file.display())]);
    fs::read(file).unwrap()
}

#[test]
fn an_archive_streams_to_standard_output_and_the_results_go_to_stderr() {
    let p = project();
    let reference = archive_bytes(&p);
    let out = p
        .cmd(&["build", "-o", "docker-archive:-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), reference.len());
    assert!(out.stdout == reference, "the streamed archive differs from the file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("x\tx:1\tsha256:"), "{stderr}");
}

#[test]
fn a_fifo_is_written_through() {
    let p = project();
    let reference = archive_bytes(&p);
    let fifo = p.path("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            fs::File::open(fifo).unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    p.ok(&["build", "-o", &format!("docker-archive:{}", fifo.display())]);
    let got = reader.join().unwrap();
    assert!(
        got == reference,
        "the reader got {} bytes, expected {}",
        got.len(),
        reference.len()
    );
    assert!(
        fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
}

#[test]
fn a_symlink_is_written_through_and_a_device_is_never_replaced() {
    let p = project();
    let reference = archive_bytes(&p);
    let target = p.path("real.tar");
    fs::write(&target, "old").unwrap();
    symlink(&target, p.path("link.tar")).unwrap();
    p.ok(&["build", "-o", "docker-archive:link.tar"]);
    assert!(fs::symlink_metadata(p.path("link.tar"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read(&target).unwrap() == reference);

    let r = p.run(&["build", "-o", "docker-archive:/dev/full"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("/dev/full") && r.stderr.contains("No space left on device"),
        "{}",
        r.stderr
    );
    assert!(
        fs::metadata("/dev/full").unwrap().file_type().is_char_device(),
        "/dev/full was replaced"
    );
}

#[test]
fn empty_output_paths_are_usage_errors() {
    let p = project();
    for (args, message) in [
        (
            vec!["build", "-o", "oci:"],
            "--output `oci:`: `oci:` needs a directory (use `.` for the current directory)",
        ),
        (
            vec!["build", "-o", "docker-archive:"],
            "`docker-archive:` needs a file, or `-` for standard output",
        ),
        (
            vec!["build", "--out-dir", ""],
            "a value is required for '--out-dir <DIR>'",
        ),
    ] {
        let r = p.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
    }
    assert!(!p.path("index.json").exists() && !p.path("oci-layout").exists());
}

#[test]
fn an_artifact_directory_keeps_what_strata_did_not_write() {
    let p = Project::new();
    p.write("site/a.html", "a\n").write("site/sub/b.html", "b\n");
    p.recipe(r#"artifact("precious", scratch().copy(ctx("site"), "/www").path("/www"));"#);
    p.write("precious/keep.txt", "mine\n");
    p.write("precious/a.html", "old a\n");
    p.ok(&["build", "--out-dir", "."]);
    assert_eq!(fs::read_to_string(p.path("precious/keep.txt")).unwrap(), "mine\n");
    assert_eq!(
        fs::read_to_string(p.path("precious/a.html")).unwrap(),
        "a\n",
        "overwritten"
    );
    assert_eq!(fs::read_to_string(p.path("precious/sub/b.html")).unwrap(), "b\n");
    // The next export no longer has sub/b.html: strata removes what it wrote, only that.
    fs::remove_dir_all(p.path("site/sub")).unwrap();
    p.write("precious/mine-too.txt", "mine\n");
    p.ok(&["build", "--out-dir", "."]);
    assert!(!p.path("precious/sub").exists(), "strata's own directory stays behind");
    assert_eq!(fs::read_to_string(p.path("precious/keep.txt")).unwrap(), "mine\n");
    assert_eq!(fs::read_to_string(p.path("precious/mine-too.txt")).unwrap(), "mine\n");
    assert_eq!(fs::read_to_string(p.path("precious/a.html")).unwrap(), "a\n");
}

#[test]
fn a_symlink_planted_in_an_output_directory_leads_nowhere() {
    let host = tempfile::tempdir().unwrap();
    let p = Project::new();
    p.write("site/sub/b.html", "b\n");
    p.recipe(r#"artifact("out", scratch().copy(ctx("site"), "/www").path("/www"));"#);
    fs::create_dir_all(p.path("dist/out")).unwrap();
    symlink(host.path(), p.path("dist/out/sub")).unwrap();
    let r = p.run(&["build", "--out-dir", "dist"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("dist/out/sub")
            && r.stderr
                .contains("the file (or symlink) in the way was not written by strata: not replacing it"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "a write went through the link"
    );

    // An OCI layout whose blobs directory is a link to the host: the link
    // resolves inside the layout, where nothing is; no blob lands anywhere.
    let q = project();
    fs::create_dir_all(q.path("layout")).unwrap();
    symlink(host.path(), q.path("layout/blobs")).unwrap();
    let r = q.run(&["build", "-o", "oci:layout"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("failed to create `layout/blobs/sha256`") && r.stderr.contains("Not a directory"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "a blob went through the link"
    );
    // A relative link that climbs out is held inside too.
    let q2 = project();
    fs::create_dir_all(q2.path("layout2")).unwrap();
    symlink("../../../../../../../..", q2.path("layout2/blobs")).unwrap();
    q2.ok(&["build", "-o", "oci:layout2"]);
    assert!(
        q2.path("layout2/sha256").is_dir(),
        "the link did not resolve within the layout"
    );
    assert!(!std::path::Path::new("/sha256").exists(), "a blob went to the host's /");
}

#[test]
fn a_damaged_blob_never_leaves_the_store() {
    let p = project();
    p.ok(&["build"]);
    // Truncate every layer blob of the store (the one layer here, kept as
    // an uncompressed tar: `-o oci:` compresses it, a docker-archive copies it).
    let blobs = p.store.path().join("blobs/sha256");
    let mut damaged = 0;
    for entry in fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
            fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    for output in ["oci:layout", "docker-archive:x.tar"] {
        let r = p.run(&["build", "-o", output]);
        assert_eq!(r.code, 1, "{output}: {}", r.stderr);
        assert!(
            r.stderr.contains("hashes to `sha256:") && r.stderr.contains(", expected `sha256:"),
            "{output}: {}",
            r.stderr
        );
    }
    assert!(!p.path("x.tar").exists(), "a damaged archive was left behind");
}

#[test]
fn tags_from_the_command_line_join_the_recipes_and_the_metadata_file_names_them() {
    let p = project();
    let meta = p.path("meta.json");
    let iid = p.path("iid");
    let run = p.ok(&[
        "build",
        "-t",
        "team/x:dev",
        "--tag",
        "team/x:abc123",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    let digest = digest_of(&run.stdout, "x");
    assert!(
        run.stdout.contains("x\tx:1,team/x:dev,team/x:abc123\t"),
        "{}",
        run.stdout
    );
    let images = p.ok(&["images"]).stdout;
    for tag in ["x:1", "team/x:dev", "team/x:abc123"] {
        assert!(
            images
                .lines()
                .any(|l| l.split_whitespace().next() == Some(tag) && l.contains(&digest[7..19])),
            "{tag}:\n{images}"
        );
    }
    assert_eq!(fs::read_to_string(&iid).unwrap(), digest);
    let meta: serde_json::Value = serde_json::from_str(&fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(meta["image.name"], "x:1,team/x:dev,team/x:abc123");
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "x:1"]).stdout).unwrap();
    assert_eq!(
        meta["containerimage.config.digest"],
        inspect["manifest"]["config"]["digest"]
    );
}

#[test]
fn a_tag_needs_one_image_target_and_a_valid_name() {
    let p = project();
    p.recipe(&format!(
        "{RECIPE}\nimage(\"y\", scratch().copy(ctx(\"a.txt\"), \"/b\"));"
    ));
    let two = p.run(&["build", "-t", "team/x:dev"]);
    assert_eq!(two.code, 2);
    assert!(
        two.stderr.contains("--tag names one image, and the build has 2 image targets (x, y); name the target to tag (strata build TARGET -t NAME)"),
        "{}",
        two.stderr
    );
    let bad = p.run(&["build", "x", "-t", "Team/X"]);
    assert!(
        bad.stderr
            .contains("--tag `Team/X` is not a valid image name (lowercase `repo/name:tag`)"),
        "{}",
        bad.stderr
    );
    let iid = p.run(&["build", "--iidfile", "iid"]);
    assert!(
        iid.stderr
            .contains("--iidfile holds one image's id, and the build has 2 image targets (x, y); name one target"),
        "{}",
        iid.stderr
    );
    // Several images: the metadata file is keyed by target, as bake's.
    p.ok(&["build", "--metadata-file", "meta.json"]);
    let meta: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["x"]["image.name"], "x:1");
    assert_eq!(meta["y"]["image.name"], "y");
}

#[test]
fn load_puts_the_image_into_podman_through_its_api_socket_or_its_command() {
    let podman = Podman::new();
    let service = podman.service();
    let p = busybox_project(
        r#"image("app", from("rootfs:busybox.tar").run("echo loaded > /hi"), #{ tags: ["team/app:1"] });"#,
    );
    let iid = p.path("iid");
    let run = p
        .cmd(&[
            "build",
            "--load",
            "-t",
            "team/app:2",
            "--iidfile",
            iid.to_str().unwrap(),
        ])
        .env("DOCKER_HOST", format!("unix://{}", service.socket.display()))
        .output()
        .unwrap();
    let run = Run::from(run);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // podman names an image without a registry `localhost/…`. With -t, as
    // `docker build -t X --load`, only X is loaded: not the recipe's tags.
    assert!(
        run.stderr.contains("Loaded image: localhost/team/app:2"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("team/app:1"), "{}", run.stderr);
    assert!(
        !podman
            .command()
            .args(["image", "exists", "team/app:1"])
            .status()
            .unwrap()
            .success(),
        "the recipe's own tag did not reach podman"
    );
    assert_eq!(podman.run("team/app:2", &["cat", "/hi"]), "loaded\n");
    // The iidfile has the image ID podman shows: the config's digest.
    let id = podman.ok(&["image", "inspect", "--format", "{{.Id}}", "team/app:2"]);
    assert_eq!(fs::read_to_string(&iid).unwrap(), format!("sha256:{}", id.trim()));
    drop(service);

    // No socket: `podman load` of the podman on PATH.
    p.recipe(r#"image("app", from("rootfs:busybox.tar").run("echo again > /hi"), #{ tags: ["team/app:3"] });"#);
    let path = format!("{}:{}", podman.wrapper_dir().display(), std::env::var("PATH").unwrap());
    let run = Run::from(
        p.cmd(&["build", "--load"])
            .env_remove("DOCKER_HOST")
            .env("XDG_RUNTIME_DIR", p.path("no-runtime"))
            .env("PATH", &path)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    if !std::path::Path::new("/var/run/docker.sock").exists()
        && !std::path::Path::new("/run/podman/podman.sock").exists()
    {
        assert_eq!(podman.run("team/app:3", &["cat", "/hi"]), "again\n");
    }
}

#[test]
fn load_without_docker_or_podman_says_what_to_start_before_building() {
    let p = project();
    let gone = p
        .cmd(&["build", "--load"])
        .env("DOCKER_HOST", format!("unix://{}", p.path("docker.sock").display()))
        .output()
        .unwrap();
    let gone = Run::from(gone);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains(&format!(
            "--load: DOCKER_HOST names `{}`, and no socket is there: is the docker daemon (or `podman system service`) running?",
            p.path("docker.sock").display()
        )),
        "{}",
        gone.stderr
    );
    let tcp = Run::from(
        p.cmd(&["build", "--load"])
            .env("DOCKER_HOST", "tcp://10.0.0.1:2375")
            .output()
            .unwrap(),
    );
    assert!(
        tcp.stderr.contains(
            "--load: DOCKER_HOST is `tcp://10.0.0.1:2375`; strata loads images through a local unix socket only"
        ),
        "{}",
        tcp.stderr
    );
    // Nothing was built: the check comes first.
    assert!(!p.ok(&["images"]).stdout.contains("x:1"));
}
