//! The engine's layering, checked: every module has a rank, and a module may
//! use only modules of a lower rank, so an arrow never goes up and no circle
//! can form. Executors, the sandbox, bases, Debian and exporters sit below
//! the scheduler and the session; the registry and the layer codecs sit
//! below the store. Nothing in the engine uses the recipe language or the CLI.
//!
//! The test reads every `crate::…` path in `engine/src` (comments skipped)
//! and names the file and the import of each arrow that breaks the order.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Ranks, lowest first. A new module must be placed here.
const RANKS: &[(&str, u32)] = &[
    ("digest", 0),
    ("platform", 0),
    ("sys", 1),
    ("graph", 2),
    ("image", 2),
    ("key", 3),
    ("registry", 3),
    ("events", 3),
    ("error", 4),
    ("layer", 5),
    ("lock", 5),
    ("par", 5),
    ("context", 5),
    ("fsview", 6),
    ("store", 6),
    ("reapi", 6),
    ("step", 7),
    ("sandbox", 8),
    ("bases", 8),
    ("export", 8),
    ("debian", 9),
    ("exec", 10),
    ("sched", 11),
    ("explain", 12),
    ("sbom", 12),
    ("provenance", 12),
    ("session", 13),
    ("verify", 14),
];

/// Crates the engine must never use.
const FORBIDDEN_CRATES: &[&str] = &["strata_dsl", "rhai::", "use strata::"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("engine/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `engine/src` belongs to.
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().expect("a relative path");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The code of a line, without a `//` comment (string literals holding
/// `//` do not occur in `use` paths).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every `crate::NAME` and `crate::{A, B}` module named in `text`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `strata_engine::crate::` or similar: not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn every_engine_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let ranks: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        if module == "lib" {
            continue;
        }
        let Some(&rank) = ranks.get(module.as_str()) else {
            problems.push(format!("{}: module `{module}` has no rank in RANKS", rel.display()));
            continue;
        };
        let text = fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let line = code(line);
            for forbidden in FORBIDDEN_CRATES {
                if line.contains(forbidden) {
                    problems.push(format!("{}:{}: the engine uses `{forbidden}`", rel.display(), n + 1));
                }
            }
            for target in crate_paths(line) {
                if target == module {
                    continue;
                }
                match ranks.get(target.as_str()) {
                    Some(&t) if t < rank => {}
                    Some(&t) => problems.push(format!(
                        "{}:{}: `{module}` (rank {rank}) imports `crate::{target}` (rank {t}): an arrow up{}",
                        rel.display(),
                        n + 1,
                        if t == rank { " or sideways" } else { "" }
                    )),
                    None => problems.push(format!(
                        "{}:{}: `crate::{target}` is not a module with a rank",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn crate_paths_reads_plain_and_grouped_imports() {
    assert_eq!(crate_paths("use crate::store::{Record, Store};"), ["store"]);
    assert_eq!(crate_paths("use crate::{graph, image::Platform};"), ["graph", "image"]);
    assert_eq!(crate_paths("let x = crate::sys::lchown(p, 0, 0);"), ["sys"]);
    assert_eq!(crate_paths("strata_engine::store::Store"), Vec::<String>::new());
    assert_eq!(code("use crate::sched; // crate::session"), "use crate::sched; ");
}

#[test]
fn an_upward_import_is_reported_with_its_file() {
    // The same check as above on a made-up pair: `store` may not use `sched`.
    let ranks: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let (store, sched) = (ranks["store"], ranks["sched"]);
    assert!(sched > store, "the scheduler sits above the store");
    for low in ["exec", "sandbox", "bases", "debian", "export"] {
        assert!(
            ranks[low] < ranks["sched"] && ranks[low] < ranks["session"],
            "{low} is below sched and session"
        );
    }
    for low in ["registry", "layer"] {
        assert!(ranks[low] < ranks["store"], "{low} is below the store");
    }
}
