//! The attacks of issue #34 on planning: inputs that stalled what strata
//! decides (a glob, a huge recipe, a deep Dockerfile), each done as written
//! against the real binary, and a signal in the middle of planning.

use std::fs;
use std::process::Stdio;

use crate::common::*;

/// `*a*a…*b` over one 40-character name backtracked exponentially (14
/// stars took 9 minutes); matched in one pass, 30 stars answer at once,
/// from a recipe and from a Dockerfile COPY.
#[test]
fn a_glob_of_many_stars_is_answered_at_once() {
    let p = Project::new();
    p.write(&"a".repeat(40), "x");
    let stars = "*a".repeat(30) + "*b";
    p.recipe(&format!(r#"image("g", scratch().copy(ctx("{stars}"), "/"));"#));
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("`{stars}` matches nothing in the build context")),
        "{}",
        r.stderr
    );

    // The same shape matching: every star finds its `a`.
    let matching = "*a".repeat(30) + "*";
    p.recipe(&format!(r#"image("g", scratch().copy(ctx("{matching}"), "/"));"#));
    p.ok(&["build"]);

    p.write("Dockerfile", &format!("FROM scratch\nCOPY {stars} /\n"));
    let r = p.run(&["build", "-f", "Dockerfile"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("matches nothing"), "{}", r.stderr);
}

/// 300,000 top-level `let`s made Rhai's parser take quadratic time (more
/// than 13 minutes); a recipe file is bounded in size and declarations,
/// refused before Rhai parses it, at the line past the bound.
#[test]
fn a_recipe_of_300000_lets_is_refused_at_once_naming_the_line() {
    let p = Project::new();
    let lets: String = (0..300_000).map(|i| format!("let v{i} = {i};\n")).collect();
    p.recipe(&lets);
    let r = p.run(&["graph"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("strata.rhai: failed to read recipe")
            && r.stderr
                .contains("it is larger than 1 MiB, the most a recipe file may be"),
        "{}",
        r.stderr
    );

    // Under the size bound, the declaration past 1024 is named.
    let lets: String = (0..2000).map(|i| format!("let v{i} = {i};\n")).collect();
    p.recipe(&(lets + "image(\"x\", scratch());\n"));
    let r = p.run(&["graph"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("strata.rhai:1025:1: more than 1024 variables are declared (`let`, `const`) in this file"),
        "{}",
        r.stderr
    );

    // A module is bounded the same way, its own line named.
    let lets: String = (0..1100).map(|i| format!("let v{i} = {i};\n")).collect();
    p.write("big.rhai", &lets);
    p.recipe("import \"big\" as big;\nimage(\"x\", scratch());\n");
    let r = p.run(&["graph"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("big.rhai:1025:1"), "{}", r.stderr);
    assert!(r.stderr.contains("more than 1024 variables"), "{}", r.stderr);

    // A recipe named /dev/zero is refused, not read to the end.
    let r = p.run(&["graph", "-f", "/dev/zero"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("larger than 1 MiB"), "{}", r.stderr);
}

/// `ARG X=${A:-${A:-…}}` nested 20,000 deep overflowed the stack (SIGABRT)
/// in `graph` and `convert`; nesting is bounded, the error names the line.
#[test]
fn a_dockerfile_word_nested_20000_deep_is_an_error_at_its_line() {
    let p = Project::new();
    let word = "${A:-".repeat(20_000) + "x" + &"}".repeat(20_000);
    p.write("Dockerfile", &format!("FROM scratch\nARG A\nARG X={word}\n"));
    for args in [&["graph", "-f", "Dockerfile"][..], &["convert", "Dockerfile"]] {
        let cmd = args[0];
        let r = p.run(args);
        assert_eq!(r.code, 2, "strata {cmd}: {}", r.stderr);
        assert!(r.stderr.contains("Dockerfile:3"), "strata {cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains("variables nested more than 32 deep"),
            "strata {cmd}: {}",
            r.stderr
        );
    }
}

/// SIGTERM while planning hashes a context file of many gigabytes: the
/// hashing stops at its next read and strata says so, well before its
/// last-resort watch would stop it ("still running … after the signal").
#[test]
fn a_signal_stops_planning_in_the_middle_of_hashing_a_file() {
    let p = Project::new();
    // Sparse: 64 GiB to read, nothing on the disk.
    let big = p.path("big");
    fs::File::create(&big).unwrap().set_len(64 << 30).unwrap();
    let big = fs::canonicalize(big).unwrap();
    p.recipe(r#"image("big", scratch().copy(ctx("big"), "/big"));"#);
    let child = p.cmd(&["build"]).stderr(Stdio::piped()).spawn().unwrap();
    // The file is open: strata is hashing it.
    let fds = format!("/proc/{}/fd", child.id());
    while !fs::read_dir(&fds)
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == big))
    {
        std::thread::yield_now();
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("still running"), "{stderr}");
    // The next build works.
    p.write("big", "small now");
    p.ok(&["build"]);
}
