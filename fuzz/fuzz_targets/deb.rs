//! The `.deb` extractor on arbitrary bytes (an ar archive whose members a
//! hostile lock and mirror chose): it reads the control stanza and extracts
//! the data member through the confined writer. It must return an error or
//! extract inside its root; never panic, never write beside the root, and
//! never leave a hard link to a file outside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::MetadataExt;
use strata_engine::sys::confined::{Policy, Tree};

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().unwrap();
    let deb = outer.path().join("x.deb");
    std::fs::write(&deb, data).unwrap();
    let sentinel = outer.path().join("sentinel");
    std::fs::write(&sentinel, "outside").unwrap();
    let root = outer.path().join("root");
    let _ = strata_engine::debian::deb::control(&deb);
    let mut tree = Tree::create(&root, 0o755, Policy::image(64 << 20)).unwrap();
    let _ = strata_engine::debian::deb::merged_usr(&mut tree);
    let _ = strata_engine::debian::deb::extract(&deb, &mut tree);
    let mut names: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["root", "sentinel", "x.deb"], "the extractor wrote beside its root");
    assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "outside");
    assert_eq!(std::fs::metadata(&sentinel).unwrap().nlink(), 1, "a link to a file outside");
    assert_eq!(std::fs::metadata(&deb).unwrap().nlink(), 1, "a link to a file outside");
});
