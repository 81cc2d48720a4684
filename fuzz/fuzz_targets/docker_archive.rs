//! The docker-archive importer on arbitrary archives: manifest.json, the
//! config, layers named through symlinks. An error or an import, never a
//! panic and never a read outside the archive.
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
    let file = dir.path().join("archive.tar");
    std::fs::write(&file, data).unwrap();
    let source = BaseSource::DockerArchive { file };
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
