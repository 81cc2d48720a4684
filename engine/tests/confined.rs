//! Host-side writes go through one guarded path. Every raw `std::fs` write,
//! removal and rename (and the `*at` calls, the `sys` wrappers that change
//! a path's owner, mode, times or xattrs, and the tar crate's unpacking) in strata's code must sit in
//! a file listed here with the reason it may: the confined writer itself,
//! the store's own files under names strata computes, the sandbox's own
//! tree, or a file the user named. Everything that writes what an input
//! chose (layer tars, `.deb`s, archives, copies, artifacts, outputs) goes
//! through `sys::confined`; those modules are checked to hold no raw write
//! at all.

use std::fs;
use std::path::{Path, PathBuf};

/// The calls that write on the host.
const WRITES: &[&str] = &[
    "fs::write(",
    "fs::create_dir(",
    "fs::create_dir_all(",
    "fs::set_permissions(",
    "fs::hard_link(",
    "fs::copy(",
    "fs::rename(",
    "fs::remove_file(",
    "fs::remove_dir(",
    "fs::remove_dir_all(",
    "renameat(",
    "unlinkat(",
    "File::create(",
    "OpenOptions::new(",
    "unix::fs::symlink(",
    "sys::lchown(",
    "sys::mknod(",
    "sys::set_mtime(",
    "sys::lsetxattr(",
    ".persist(",
    ".unpack(",
    ".unpack_in(",
];

/// Files (or directories, ending in `/`) that may write, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "engine/src/sys/",
        "the confined writer itself, and the kernel's own files (cgroupfs, binfmt_misc, uid maps)",
    ),
    (
        "engine/src/store/",
        "the store's own files, each named by a digest or a key strata computes",
    ),
    (
        "engine/src/layer/write.rs",
        "layer tars into the store, and the epoch clamp of the upper it walks without following links",
    ),
    (
        "engine/src/layer/mod.rs",
        "`remove_path`: strata's own scratch and store directories, never a path an entry names",
    ),
    (
        "engine/src/sandbox/init.rs",
        "runs inside the sandbox's mount namespace: what it writes lands in the sandbox's own tree",
    ),
    (
        "engine/src/context.rs",
        "its stat cache: files of the store named by hashes",
    ),
    (
        "engine/src/sandbox/mod.rs",
        "the sandbox's spec and scratch directories, names strata chose",
    ),
    (
        "engine/src/sandbox/steps.rs",
        "cache mount directories of the store and the debug shell's history in scratch",
    ),
    (
        "engine/src/sandbox/ssh.rs",
        "the agent socket it binds in the step's scratch",
    ),
    (
        "engine/src/debian/fetch.rs",
        "InRelease for gpgv in scratch, and a checked .deb into the store by its SHA256",
    ),
    (
        "engine/src/debian/plan.rs",
        "a checked index into the store by its SHA256",
    ),
    ("engine/src/exec/fetch.rs", "a download into the store by its digest"),
    ("engine/src/exec/remote.rs", "a CAS blob into scratch by its digest"),
    (
        "engine/src/sched/remote.rs",
        "a restored cache mount swapped in under the store's cache directory",
    ),
    (
        "engine/src/sched/keys.rs",
        "a path key memo of the store, named by a hash",
    ),
    (
        "engine/src/export/mod.rs",
        "the store's record of what an artifact export wrote",
    ),
    (
        "engine/src/bases/mod.rs",
        "a scratch directory of the store for an import",
    ),
    ("engine/src/lock.rs", "strata.lock beside the recipe"),
    (
        "src/cli/build.rs",
        "--iidfile and --metadata-file, files the user names",
    ),
    (
        "src/cli/push.rs",
        "strata login's credentials in the user's docker config",
    ),
];

/// Modules that handle what an input chose: no raw write at all.
const CONFINED_ONLY: &[&str] = &[
    "engine/src/exec/copy.rs",
    "engine/src/exec/extract.rs",
    "engine/src/debian/deb.rs",
    "engine/src/debian/install.rs",
    "engine/src/fsview/",
    "engine/src/layer/unpack.rs",
    "src/cli/affected.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line number, code)` of every raw write in `text` before its tests.
fn writes(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        if WRITES.iter().any(|w| code.contains(w)) {
            found.push((n + 1, code.trim().to_string()));
        }
    }
    found
}

fn covers(entry: &str, rel: &str) -> bool {
    match entry.strip_suffix('/') {
        Some(dir) => rel.starts_with(&format!("{dir}/")),
        None => rel == entry,
    }
}

#[test]
fn host_writes_appear_only_where_they_may() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf();
    let mut files = Vec::new();
    for dir in ["engine/src", "dsl/src", "src"] {
        rust_files(&repo.join(dir), &mut files);
    }
    files.sort();
    let mut problems = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for file in &files {
        let rel = file
            .strip_prefix(&repo)
            .expect("under the repository")
            .display()
            .to_string();
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue; // a module of tests (declared `#[cfg(test)] mod tests;`)
        }
        let text = fs::read_to_string(file).expect("readable source");
        let found = writes(&text);
        if found.is_empty() {
            continue;
        }
        match ALLOWED.iter().position(|(entry, _)| covers(entry, &rel)) {
            Some(i) => used[i] = true,
            None => problems.extend(found.iter().map(|(n, code)| {
                format!("{rel}:{n}: `{code}` writes on the host outside sys::confined (or list the file in ALLOWED with why)")
            })),
        }
        if CONFINED_ONLY.iter().any(|entry| covers(entry, &rel)) {
            problems.extend(found.iter().map(|(n, code)| {
                format!("{rel}:{n}: `{code}`: this module handles hostile trees and writes only through sys::confined")
            }));
        }
    }
    for (i, (entry, _)) in ALLOWED.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "ALLOWED lists `{entry}`, which writes nothing any more: drop it"
            ));
        }
    }
    assert!(problems.is_empty(), "host writes:\n{}", problems.join("\n"));
}

#[test]
fn a_raw_write_is_found_and_its_tests_are_not() {
    let text = "fn f() {\n    // fs::write( in a comment\n    std::fs::write(p, b)?;\n}\n#[cfg(test)]\nmod tests { fn g() { fs::write(p, b); } }\n";
    assert_eq!(writes(text), [(3, "std::fs::write(p, b)?;".to_string())]);
    assert!(covers("engine/src/sys/", "engine/src/sys/confined/tree.rs"));
    assert!(!covers("engine/src/sys/", "engine/src/system.rs"));
    assert!(covers("src/cli/build.rs", "src/cli/build.rs"));
}
