//! The layer unpacker on arbitrary bytes: tar headers, whiteouts, links,
//! devices. It must return an error or unpack inside its directory; it must
//! never panic, and never create anything outside the directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("layer");
    std::fs::create_dir(&root).unwrap();
    let _ = strata_engine::layer::unpack(data, &root);
    // Nothing beside the unpack directory.
    let names: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["layer"], "the unpacker wrote beside its root");
});
