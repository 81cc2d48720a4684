//! Files from a URL (`fetch(url, #{ sha256 })`, a Dockerfile's `ADD URL`):
//! downloaded once into the store's `downloads/`, named by their SHA-256,
//! and verified on the way in. A URL without a checksum is pinned in
//! `strata.lock` the first time it is fetched, as a registry base is.

use std::fs;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::Origin;
use crate::layer::HashWriter;
use crate::registry::download::{self, Expect};
use crate::registry::Client;
use crate::store::Store;

/// Where the store keeps a download with this digest.
pub fn path(store: &Store, digest: &Digest) -> PathBuf {
    store.root().join("downloads").join(digest.hex())
}

/// The download of `url` in the store, fetched now unless there already;
/// its digest must be `expect` when given. Returns the digest.
pub fn ensure(store: &Store, client: &Client, origin: &Origin, url: &str, expect: Option<&Digest>) -> Result<Digest> {
    if let Some(d) = expect {
        if path(store, d).is_file() {
            return Ok(d.clone());
        }
    }
    let dir = store.root().join("downloads");
    fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let tmp = store.tmp_dir()?;
    let part = tmp.path().join("download");
    let file = fs::File::create(&part).map_err(Error::io("create", &part))?;
    let mut out = HashWriter::new(std::io::BufWriter::new(file));
    // Nobody measured the file: at most what the store's disk can spare
    // (or `$STRATA_MAX_DOWNLOAD_SIZE`); the checksum is checked below.
    let bound = Expect::at_most(download::max_unmeasured(|| crate::sys::confined::extract_limit(&dir)));
    client
        .download(url, bound, &mut out)
        .map_err(|e| Error::input(origin, format!("fetch `{url}`: {e}")))?;
    let (writer, digest, _) = out.finish();
    let file = writer
        .into_inner()
        .map_err(|e| Error::io("write", &part)(e.into_error()))?;
    file.sync_all().map_err(Error::io("write", &part))?;
    if let Some(d) = expect {
        if *d != digest {
            return Err(Error::input(
                origin,
                format!("fetch `{url}`: the download hashes to {digest}, the recipe says {d}"),
            ));
        }
    }
    let dest = path(store, &digest);
    fs::rename(&part, &dest).map_err(Error::io("store", &dest))?;
    Ok(digest)
}
