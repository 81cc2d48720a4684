//! A monorepo's CI: `strata affected --since REF` names the targets a
//! change touches without building, `strata build --shard I/N` splits the
//! targets across runners.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::*;

fn git(p: &Project, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(p.dir.path())
        .args([
            "-c",
            "user.name=strata",
            "-c",
            "user.email=strata@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The monorepo example with `services` services, committed.
fn monorepo(services: usize) -> Project {
    let p = monorepo_project(services, 20, 5);
    git(&p, &["init", "--quiet", "--initial-branch=main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "--quiet", "-m", "monorepo"]);
    p
}

#[test]
fn affected_names_the_targets_a_change_touches_without_building() {
    let p = monorepo(4);
    let services = ["--arg", "services=4"];
    let nothing = p.ok(&[&["affected", "--since", "HEAD"][..], &services[..]].concat());
    assert_eq!(nothing.stdout, "", "{}", nothing.stderr);

    // One service's file changes: that service, and `counts`, which takes
    // its result file (a key follows its inputs' keys).
    fs::write(p.path("services/svc2/pkg00/f00001.txt"), "edited\n").unwrap();
    let text = p.ok(&[&["affected", "--since", "HEAD"][..], &services[..]].concat());
    assert_eq!(text.stdout, "counts\nsvc2\n", "{}", text.stderr);
    // Nothing was built, and the store holds no image.
    assert_eq!(p.ok(&["images"]).stdout.lines().count(), 1);

    // Committed, it is the same against the commit before; JSON names both sides.
    git(&p, &["commit", "--quiet", "-am", "edit svc2"]);
    let json = p.ok(&[
        &["affected", "--since", "HEAD~1", "--format", "json"][..],
        &services[..],
    ]
    .concat());
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect(&json.stderr);
    assert_eq!(v["since"], git(&p, &["rev-parse", "HEAD~1"]).trim());
    assert_eq!(v["affected"], serde_json::json!(["counts", "svc2"]), "{}", json.stderr);
    assert_eq!(v["unchanged"], serde_json::json!(["svc0", "svc1", "svc3"]));

    // The shared library and the module touch every service.
    fs::write(p.path("lib/f00000.txt"), "shared change\n").unwrap();
    let all = p.ok(&[&["affected", "--since", "HEAD", "all"][..], &services[..]].concat());
    assert_eq!(all.stdout, "svc0\nsvc1\nsvc2\nsvc3\n", "{}", all.stderr);

    let bad = p.run(&["affected", "--since", "no-such-branch"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--since `no-such-branch` is not a commit of"),
        "{}",
        bad.stderr
    );
}

#[test]
fn affected_reads_what_git_archive_writes_to_its_end() {
    // git writes its archive in 10 KiB blocks; the end-of-archive record may
    // reach the pipe before the rest of the last block does (when the pipe
    // is full). This git writes that rest late, on purpose: closing the
    // pipe at the end-of-archive record would kill it with SIGPIPE.
    let p = Project::new();
    p.write("a.txt", "a\n");
    p.recipe(r#"image("x", scratch().copy(ctx("a.txt"), "/a.txt"));"#);
    git(&p, &["init", "--quiet", "--initial-branch=main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "--quiet", "-m", "a"]);
    let real = tool("sh", &["-c", "command -v git"]);
    let bin = tempfile::tempdir().unwrap();
    let slow = bin.path().join("git");
    fs::write(
        &slow,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit\ncase \" $* \" in *\" archive \"*) sleep 0.5; head -c 10240 /dev/zero;; esac\n",
            real.trim()
        ),
    )
    .unwrap();
    fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let affected = || -> Run {
        p.cmd(&["affected", "--since", "HEAD"])
            .env("PATH", &path)
            .output()
            .unwrap()
            .into()
    };
    let r = affected();
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    p.write("a.txt", "b\n");
    let r = affected();
    assert_eq!((r.code, r.stdout.as_str()), (0, "x\n"), "{}", r.stderr);
}

#[test]
fn affected_outside_git_says_so() {
    let p = Project::new();
    p.recipe(r#"image("x", scratch());"#);
    let r = p.run(&["affected", "--since", "HEAD"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("strata affected compares git trees, and"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("is not in a git checkout"), "{}", r.stderr);
}

#[test]
fn shards_build_every_target_once_between_them() {
    let p = monorepo(5);
    let mut built: Vec<String> = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let r = p.ok(&["build", "all", "--arg", "services=5", "--shard", &shard]);
        assert!(r.stderr.contains(&format!("shard {shard}: ")), "{}", r.stderr);
        let names: Vec<String> = r
            .stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        assert!(!names.is_empty(), "{}", r.stderr);
        // Deterministic: asked again, the same share.
        let again = p.ok(&["build", "all", "--arg", "services=5", "--shard", &shard]);
        assert_eq!(again.stdout, r.stdout);
        built.extend(names);
    }
    built.sort();
    assert_eq!(built, ["svc0", "svc1", "svc2", "svc3", "svc4"]);

    // More shards than targets: the extra ones build nothing, and say so.
    let empty = p.ok(&["build", "svc0", "--arg", "services=5", "--shard", "2/2"]);
    assert_eq!(empty.stdout, "");
    assert!(
        empty.stderr.contains("shard 2/2: no targets (1 targets for 2 shards)"),
        "{}",
        empty.stderr
    );
    let bad = p.run(&["build", "--shard", "3/2"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`3/2` is not I/N with 1 ≤ I ≤ N (e.g. 2/4)"),
        "{}",
        bad.stderr
    );
}
