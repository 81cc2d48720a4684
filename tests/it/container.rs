//! `strata run IMAGE [-- CMD…]`: the image's command or another, `-e`, `-v`,
//! `--network`, exit statuses, a terminal when there is one, and `--commit`.

use std::fs;

use crate::common::*;

fn busybox_image() -> Project {
    let p = Project::example("busybox");
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.ok(&["build", "busybox-hello"]);
    p
}

const IMAGE: &str = "example/busybox-hello:latest";

#[test]
fn run_uses_the_images_command_user_and_environment_and_passes_the_exit_status() {
    let p = busybox_image();
    let r = p.ok(&["run", IMAGE]);
    assert!(
        r.stdout.contains("Welcome to a strata-built busybox image."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("running as 65534"), "{}", r.stdout);

    let r = p.run(&[
        "run",
        "-e",
        "WHO=tester",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo $WHO $(id -u); exit 7",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (7, "tester 65534"), "{}", r.stderr);
    assert_eq!(r.stderr, "", "the command's status is passed on without a message");

    let r = p.ok(&[
        "run",
        "-u",
        "0",
        "-w",
        "/var/www",
        IMAGE,
        "--",
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(r.stdout, "0\n/var/www\n");

    let mut c = p.cmd(&["run", IMAGE, "--", "cat"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    let r = p.run(&["run", IMAGE, "--", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(r.stderr.contains("command not found"), "{}", r.stderr);
    assert_eq!(p.run(&["run", "no/such:image"]).code, 2);
}

#[test]
fn volumes_network_and_a_terminal() {
    let p = busybox_image();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("in.txt"), "from the host").unwrap();
    let rw = format!("{}:/data", host.path().display());
    p.ok(&[
        "run",
        "-u",
        "0",
        "-v",
        &rw,
        IMAGE,
        "--",
        "sh",
        "-c",
        "cat /data/in.txt > /data/out.txt",
    ]);
    assert_eq!(
        fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "from the host"
    );
    let ro = format!("{}:/data:ro", host.path().display());
    let r = p.run(&["run", "-u", "0", "-v", &ro, IMAGE, "--", "touch", "/data/x"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!host.path().join("x").exists());
    let r = p.run(&["run", "-v", "relative", IMAGE]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("-v `relative`: expected HOST:PATH or HOST:PATH:ro"),
        "{}",
        r.stderr
    );

    // A server on the host's loopback: reachable only with --network host.
    let registry = Registry::start();
    let url = format!("http://{}/v2/", registry.addr);
    let fetch = ["sh", "-c", &format!("wget -q -O - {url}")];
    let mut args = vec!["run", "--network", "host", IMAGE, "--"];
    args.extend(fetch);
    assert_eq!(p.ok(&args).stdout.trim(), "{}");
    let mut args = vec!["run", IMAGE, "--"];
    args.extend(fetch);
    let r = p.run(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("can't connect"),
        "only the sandbox's own loopback: {}",
        r.stderr
    );

    // On a terminal (a pseudo-terminal from script(1)), the command has one.
    let inner = format!(
        "{} run {IMAGE} -- sh -c 'test -t 0 && test -t 1 && echo has-a-tty'",
        env!("CARGO_BIN_EXE_strata")
    );
    let script = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("STRATA_HOME", p.store.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&script.stdout).contains("has-a-tty"),
        "{}",
        String::from_utf8_lossy(&script.stdout)
    );
}

#[test]
fn the_read_write_layer_is_thrown_away_unless_committed() {
    let p = busybox_image();
    p.ok(&["run", "-u", "0", IMAGE, "--", "sh", "-c", "echo scratch > /etc/scratch"]);
    assert_eq!(p.run(&["run", IMAGE, "--", "test", "-e", "/etc/scratch"]).code, 1);

    let out = p
        .ok(&[
            "run",
            "--commit",
            "example/changed:1",
            "-u",
            "0",
            IMAGE,
            "--",
            "sh",
            "-c",
            "echo kept > /etc/kept && rm /etc/motd",
        ])
        .stdout;
    assert!(out.starts_with("example/changed:1\tsha256:"), "{out}");
    assert_eq!(
        p.ok(&["run", "example/changed:1", "--", "cat", "/etc/kept"]).stdout,
        "kept\n"
    );
    assert_eq!(
        p.run(&["run", "example/changed:1", "--", "test", "-e", "/etc/motd"])
            .code,
        1
    );
    // The history keeps the command as a shell would read it back.
    let history = p.ok(&["history", "example/changed:1"]).stdout;
    assert!(
        history.contains("strata run example/busybox-hello:latest -- sh -c 'echo kept > /etc/kept && rm /etc/motd'"),
        "{history}"
    );
    // The committed image is a valid OCI image to other tools, whiteout included.
    let bundle = umoci_unpack(p.store.path(), "example/changed:1");
    let root = bundle.path().join("b/rootfs");
    assert_eq!(fs::read_to_string(root.join("etc/kept")).unwrap(), "kept\n");
    assert!(!root.join("etc/motd").exists());
    assert!(!root.join("proc").exists() || fs::read_dir(root.join("proc")).unwrap().next().is_none());
}

#[test]
fn run_of_an_image_without_a_command_says_so_without_a_position() {
    let p = Project::new();
    p.write("f.txt", "x\n");
    p.recipe(r#"image("bare", scratch().copy(ctx("f.txt"), "/f.txt"));"#);
    p.ok(&["build"]);
    let r = p.run(&["run", "bare"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: the image has no entrypoint or cmd"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(":0:0"), "{}", r.stderr);
}

/// `--pids` and `--memory` give the command a cgroup of its own; meeting
/// a limit passes the command's status on and says which limit it met.
#[test]
fn run_takes_limits_like_docker_run() {
    let p = busybox_image();
    let spawn = "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo spawned";
    let r = p.run(&["run", "--pids", "32", IMAGE, "--", "sh", "-c", spawn]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("strata: the command failed: pids limit 32 reached (a process could not fork)"),
        "{}",
        r.stderr
    );
    let r = p.run(&[
        "run",
        "--memory",
        "64m",
        IMAGE,
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=200M",
        "count=1",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("strata: the command killed: memory limit 64 MiB reached"),
        "{}",
        r.stderr
    );
    // Without limits the same command runs.
    let r = p.ok(&["run", IMAGE, "--", "sh", "-c", spawn]);
    assert!(r.stdout.contains("spawned"), "{}", r.stdout);
    let r = p.run(&["run", "--memory", "lots", IMAGE]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`lots` is not a size of at least 1 MiB like 512m or 2g"),
        "{}",
        r.stderr
    );
}
