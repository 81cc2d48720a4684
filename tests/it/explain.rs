//! `strata explain`: why each step of a target's last build missed.

use std::fs;

use crate::common::*;

fn monorepo() -> Project {
    monorepo_project(2, 30, 5)
}

#[test]
fn explain_names_the_changed_file_of_a_monorepo_edit() {
    let p = monorepo();
    p.ok(&["build", "all", "--arg", "services=2"]);
    let first = p.ok(&["explain", "svc0"]).stdout;
    assert!(first.contains("no earlier build of this target"), "{first}");

    p.ok(&["build", "all", "--arg", "services=2"]);
    assert!(p
        .ok(&["explain", "svc0"])
        .stdout
        .contains("every step of `svc0` came from the cache"));

    fs::write(p.path("services/svc0/pkg00/f00003.txt"), "edited").unwrap();
    fs::remove_file(p.path("services/svc0/pkg00/f00004.txt")).unwrap();
    p.write("services/svc0/pkg00/new.txt", "new");
    p.ok(&["build", "all", "--arg", "services=2"]);
    let out = p.ok(&["explain", "svc0"]).stdout;
    assert!(out.contains("2 of 6 steps of `svc0` missed"), "{out}");
    assert!(out.contains("changed services/svc0/pkg00/f00003.txt"), "{out}");
    assert!(out.contains("removed services/svc0/pkg00/f00004.txt"), "{out}");
    assert!(out.contains("added services/svc0/pkg00/new.txt"), "{out}");
    assert!(
        out.contains("it builds on `copy(ctx([\"services/svc0\"]), \"/app\")` (service.rhai:9:10)"),
        "{out}"
    );
    assert!(p
        .ok(&["explain", "svc1"])
        .stdout
        .contains("every step of `svc1` came from the cache"));
}

#[test]
fn explain_names_changed_env_values_args_commands_and_bases() {
    let p = Project::new();
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    let recipe = |cmd: &str| {
        format!(
            r#"let s = from("rootfs:busybox.tar").env("MODE", arg("mode", "fast")).run("{cmd}", #{{ env: #{{ LEVEL: arg("level", "1") }} }}); image("s", s);"#
        )
    };
    p.recipe(&recipe("echo a > /a"));
    p.ok(&["build"]);
    p.ok(&["build", "--arg", "mode=slow"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert!(
        out.contains("step: env(\"MODE\", \"fast\") → env(\"MODE\", \"slow\")"),
        "{out}"
    );

    p.ok(&["build", "--arg", "mode=slow", "--arg", "level=2"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert!(out.contains("env LEVEL: 1 → 2"), "{out}");

    p.recipe(&recipe("echo b > /b"));
    p.ok(&["build", "--arg", "mode=slow", "--arg", "level=2"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert!(
        out.contains("step: run(\"echo a > /a\") → run(\"echo b > /b\")"),
        "{out}"
    );

    let mut tar = fs::read(busybox_tar()).unwrap();
    tar.extend_from_slice(&[0u8; 1024]);
    fs::write(p.path("busybox.tar"), tar).unwrap();
    p.ok(&["build", "--arg", "mode=slow", "--arg", "level=2"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert!(out.contains("base image changed"), "{out}");

    let missing = p.run(&["explain", "nope"]);
    assert_eq!(missing.code, 2);
}

#[test]
fn explain_names_a_label_that_changed_without_running_and_the_arg_behind_it() {
    let p = Project::new();
    p.write("src/b.txt", "one\n");
    p.recipe(
        r#"image("s", scratch().copy(ctx("src/b.txt"), "/b.txt").label("version", arg("version", "1")).cmd(["/b"]));"#,
    );
    p.ok(&["build"]);
    p.ok(&["build", "--arg", "version=2"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert_eq!(
        out,
        "new --arg version=2\n\
         no step of `s` ran in its last build, but these changed:\n\
         strata.rhai:1:55 label(\"version\", \"2\")\n    \
         step: label(\"version\", \"1\") → label(\"version\", \"2\")\n"
    );
    // A file named on its own has no slash after it.
    p.write("src/b.txt", "two\n");
    p.ok(&["build", "--arg", "version=2"]);
    let out = p.ok(&["explain", "s"]).stdout;
    assert!(out.contains("\n    changed src/b.txt\n"), "{out}");
    assert!(!out.contains("src/b.txt/"), "{out}");
}
