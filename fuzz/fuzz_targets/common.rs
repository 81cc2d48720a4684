#![allow(dead_code)]
//! A store shared by the importer targets, and unpacking a fuzz input as
//! the tar of a directory (the tar crate, not strata's unpacker).

use std::path::Path;
use std::sync::OnceLock;

use strata_engine::store::Store;

pub fn store() -> &'static Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("store")).unwrap();
            (dir, store)
        })
        .1
}

/// Unpacks `data` as a plain tar into `dir` (symlinks and all), ignoring
/// entries the tar crate refuses; false when `data` is no tar at all.
pub fn untar(data: &[u8], dir: &Path) -> bool {
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else { return false };
    for entry in entries {
        let Ok(mut entry) = entry else { return false };
        let _ = entry.unpack_in(dir);
    }
    true
}

/// Imports `source` into the shared store; errors are expected, panics are not.
pub fn import(source: strata_engine::graph::BaseSource) {
    let client = strata_engine::registry::Client::new(Vec::new());
    let _ = strata_engine::bases::import(
        store(),
        &source,
        None,
        &client,
        &strata_engine::image::Platform::host(),
        strata_engine::layer::Compression::Gzip,
        0,
        &|_, _| {},
    );
}
