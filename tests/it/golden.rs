//! Golden snapshots (insta): what a user sees for every broken recipe in
//! `tests/fixtures/broken/` and for the CLI's everyday output. Temporary
//! paths, digests and durations are filtered so the snapshots hold only
//! what the code decides. Update with `INSTA_UPDATE=always scripts/test.sh`
//! and review the diff.

use std::fs;

use crate::common::*;

/// Filters for whatever varies between runs and machines.
fn settings(p: &Project) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&p.dir.path().display().to_string()), "[PROJECT]");
    s.add_filter(&regex_escape(&p.store.path().display().to_string()), "[STORE]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[KEY]");
    s.add_filter(r"\d+\.\d+s\b", "[SECONDS]");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = r"\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

fn shown(r: &Run) -> String {
    format!(
        "exit code: {}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.stdout, r.stderr
    )
}

#[test]
fn every_broken_recipe_has_its_message() {
    let dir = repo().join("tests/fixtures/broken");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the golden set has {} recipes", names.len());
    for name in names {
        let p = Project::new();
        p.write("present.txt", "here\n");
        p.recipe(&fs::read_to_string(dir.join(&name)).unwrap());
        let r = p.run(&["build", "--progress", "plain"]);
        assert_ne!(r.code, 0, "{name} built");
        settings(&p).bind(|| insta::assert_snapshot!(format!("broken-{}", name.trim_end_matches(".rhai")), shown(&r)));
    }
}

#[test]
fn everyday_output_reads_the_same() {
    let p = Project::example("hello");
    let graph = p.ok(&["graph"]);
    let build = p.ok(&["build", "hello", "--progress", "plain"]);
    let images = p.ok(&["images"]);
    let history = p.ok(&["history", "example/hello:latest"]);
    let again = p.ok(&["build", "hello", "--progress", "plain"]);
    settings(&p).bind(|| {
        insta::assert_snapshot!("graph-text", shown(&graph));
        insta::assert_snapshot!("build-plain", shown(&build));
        insta::assert_snapshot!("images", shown(&images));
        insta::assert_snapshot!("history", shown(&history));
        insta::assert_snapshot!("build-cached", shown(&again));
    });
}
