//! The OCI layout importer on arbitrary layouts (the input is the layout
//! as a tar): oci-layout, index.json, nested indexes, manifests, configs,
//! blobs that are links. An error or an import, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::graph::BaseSource;
use strata_engine::image::Platform;
use strata_engine::layer::Compression;
use strata_engine::registry::Client;

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
    let client = Client::new(Vec::new());
    let _ = strata_engine::bases::import(
        common::store(),
        &source,
        None,
        &client,
        &Platform::host(),
        Compression::Gzip,
        0,
        &|_, _| {},
    );
});
