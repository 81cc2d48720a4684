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

/// `("image" | "artifact", name)` of every target a block defines with a literal name.
fn targets_of(block: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (kind, call) in [("image", "image(\""), ("artifact", "artifact(\"")] {
        let mut rest = block;
        while let Some(i) = rest.find(call) {
            let before = rest[..i].chars().last();
            rest = &rest[i + call.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            if let Some(end) = rest.find('"') {
                out.push((kind, rest[..end].to_string()));
            }
        }
    }
    // With a `default` group, a plain `strata build` builds only its members.
    if let Some(i) = block.find("group(\"default\", [") {
        let members = &block[i..];
        let members = &members[members.find('[').unwrap()..members.find(']').unwrap()];
        out.retain(|(_, name)| members.contains(&format!("\"{name}\"")));
    }
    out
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
        // Every target the block defines was built: an image with its digest,
        // an artifact with its directory.
        let stdout = String::from_utf8_lossy(&out.stdout);
        for (kind, name) in targets_of(block) {
            let line = stdout
                .lines()
                .find(|l| l.split('\t').next() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("block {}: no line for {kind} `{name}` in:\n{stdout}", i + 1));
            match kind {
                "image" => assert!(line.contains("\tsha256:"), "{line}"),
                _ => assert!(p.path(line.split('\t').nth(1).unwrap()).is_dir(), "{line}"),
            }
        }
    }
}
