//! docs/recipes.md: every ```rhai block builds.

use std::fs;

use crate::common::*;

/// The ```rhai blocks of a markdown file.
fn rhai_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rhai") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_code_block_of_the_recipe_reference_builds() {
    let mirror = DebianMirror::start();
    let doc = fs::read_to_string(repo().join("docs/recipes.md")).unwrap();
    let blocks = rhai_blocks(&doc);
    assert!(blocks.len() >= 6, "{} blocks", blocks.len());
    let store = tempfile::tempdir().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let p = Project::new();
        fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
        p.write("hello.txt", "hello\n")
            .write("site/index.html", "<h1>hi</h1>\n")
            .write("app.sh", "#!/bin/sh\necho app \"$@\"\n")
            .write("token.txt", "s3cret\n")
            .recipe(block);
        let out = p
            .cmd(&["build", "--progress", "plain"])
            .env("STRATA_HOME", store.path())
            .env("STRATA_DEBIAN_MIRROR", &mirror.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "block {} of docs/recipes.md failed:\n{block}\n{}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
