//! The docker-archive importer on arbitrary archives: manifest.json, the
//! config, layers named through symlinks. An error or an import, never a
//! panic and never a read outside the archive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::graph::BaseSource;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("archive.tar");
    std::fs::write(&file, data).unwrap();
    let source = BaseSource::DockerArchive { file };
    common::import(source);
});
