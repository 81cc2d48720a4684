//! The OCI layout importer on arbitrary layouts (the input is the layout
//! as a tar): oci-layout, index.json, nested indexes, manifests, configs,
//! blobs that are links. An error or an import, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::graph::BaseSource;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    if !common::untar(data, &layout) {
        return;
    }
    let source = BaseSource::OciLayout { dir: layout, tag: None };
    common::import(source);
});
