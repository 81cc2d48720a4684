//! Layers in the store: importing a layer blob (verified, unpacked, its
//! diff id checked), committing a directory written by a step as a layer,
//! and making sure a layer has a blob in the compression an export wants.
//! Everything here goes through the store's atomic writes.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::Path;

use super::Store;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::layer::{self, Compression};

/// Copies a layer blob into the store (checking its digest when known),
/// unpacks it, and checks the diff id.
pub fn import_layer(store: &Store, path: &Path, digest: Option<&Digest>, diff_id: &Digest) -> Result<()> {
    if store.has_layer(diff_id) {
        return Ok(());
    }
    let input = File::open(path).map_err(Error::io("open", path))?;
    import_layer_from(store, input, path, digest, diff_id)
}

/// Stores a layer blob read from `input` (checking its digest when known),
/// unpacks it and checks the diff id. `path` names the source in errors.
pub fn import_layer_from(
    store: &Store,
    input: impl io::Read,
    path: &Path,
    digest: Option<&Digest>,
    diff_id: &Digest,
) -> Result<()> {
    if store.has_layer(diff_id) {
        return Ok(());
    }
    let mut input = BufReader::with_capacity(1 << 20, input);
    let compression = Compression::detect(io::BufRead::fill_buf(&mut input).map_err(Error::io("read", path))?);
    let mut blob = store.blob_writer()?;
    io::copy(&mut input, &mut blob).map_err(Error::io("copy layer", path))?;
    let (blob_digest, blob_size) = blob.commit()?;
    if let Some(expected) = digest {
        if expected != &blob_digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: expected.clone(),
                actual: blob_digest,
            });
        }
    }
    let tmp = store.tmp_dir()?;
    let root = tmp.path().join("layer");
    fs::create_dir(&root).map_err(Error::io("create", &root))?;
    let stored = store.blob_path(&blob_digest);
    let reader = Compression::decoder(BufReader::new(File::open(&stored).map_err(Error::io("open", &stored))?))
        .map_err(Error::io("decompress", &stored))?;
    let stats = layer::unpack(reader, &root)?;
    if &stats.diff_id != diff_id {
        return Err(Error::DigestMismatch {
            what: format!("layer {}", path.display()),
            expected: diff_id.clone(),
            actual: stats.diff_id,
        });
    }
    store.commit_layer_dir(&root, diff_id, None)?;
    let desc = Descriptor::new(compression.media_type(), blob_digest, blob_size);
    store.add_layer_blob(diff_id, stats.size, false, compression, desc)
}

/// Commits `dir`, a layer directory strata has just made, to the store:
/// its mtimes clamped to `epoch`, its tar written and hashed (the diff id)
/// with its tree hash, in one walk. With `keep_tar` the tar is kept as the
/// layer's uncompressed blob (what the store's images use); without, it is
/// only hashed (a layer no image of this build holds) and tarred again if
/// an output ever needs it (`ensure_blob`). Nothing is compressed here.
/// `on_bytes` hears how many tar bytes were walked so far, every few MiB.
/// Returns the diff id and the time the walk took, its digest apart.
pub fn write_layer(
    store: &Store,
    dir: &Path,
    epoch: i64,
    keep_tar: bool,
    on_bytes: &dyn Fn(u64),
) -> Result<(Digest, LayerTimes)> {
    let start = std::time::Instant::now();
    let out = match keep_tar {
        true => TarSink::Keep(store.known_blob_writer()?),
        false => TarSink::Drop,
    };
    let counted = layer::Counting::new(out, on_bytes);
    let (counted, new) = layer::write_new_layer(dir, counted, epoch)?;
    let diff_id = new.stats.diff_id.clone();
    let times = LayerTimes {
        tar: start.elapsed().saturating_sub(new.digest_time),
        digest: new.digest_time,
    };
    store.commit_layer_dir(dir, &diff_id, Some(new.tree))?;
    match counted.into_inner() {
        TarSink::Keep(blob) => {
            blob.commit_as(&diff_id)?;
            let desc = Descriptor::new(Compression::None.media_type(), diff_id.clone(), new.stats.size);
            store.add_layer_blob(&diff_id, new.stats.size, true, Compression::None, desc)?;
        }
        TarSink::Drop => store.add_layer(&diff_id, new.stats.size)?,
    }
    Ok((diff_id, times))
}

/// Where a new layer's tar goes: into its blob, or nowhere (only hashed).
enum TarSink<'a> {
    Keep(super::KnownBlobWriter<'a>),
    Drop,
}

impl io::Write for TarSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TarSink::Keep(blob) => blob.write(buf),
            TarSink::Drop => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            TarSink::Keep(blob) => blob.flush(),
            TarSink::Drop => Ok(()),
        }
    }
}

/// Where committing a new layer spent its time.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTimes {
    /// Walking the directory into a tar, with its tree hash.
    pub tar: std::time::Duration,
    /// sha256 of the tar.
    pub digest: std::time::Duration,
}

/// Makes sure a blob of the layer exists in `compression`, made once and
/// kept: a blob in another compression is transcoded (like BuildKit's
/// `force-compression`; an export never mixes compressions), a layer strata
/// made and never wrote a blob of is tarred again from its directory. The
/// bytes are checked against the diff id, which never changes.
pub fn ensure_blob(store: &Store, diff_id: &Digest, compression: Compression) -> Result<Descriptor> {
    let blobs = store.layer_blobs(diff_id)?;
    if let Some(desc) = blobs.blobs.get(compression.name()) {
        if store.has_blob(&desc.digest) {
            return Ok(desc.clone());
        }
    }
    // A blob in another compression: transcode its bytes (an uncompressed
    // one first: nothing to decode); the diff id stays.
    let source = blobs
        .blobs
        .get(Compression::None.name())
        .filter(|d| store.has_blob(&d.digest))
        .or_else(|| blobs.blobs.values().find(|d| store.has_blob(&d.digest)));
    if let Some(source) = source {
        let src = store.blob_path(&source.digest);
        let input = BufReader::new(File::open(&src).map_err(Error::io("open", &src))?);
        let mut decoded = layer::HashReader::new(Compression::decoder(input).map_err(Error::io("decompress", &src))?);
        let blob = store.blob_writer()?;
        let mut encoder = compression.encoder(blob).map_err(Error::io("compress", &src))?;
        io::copy(&mut decoded, &mut encoder).map_err(Error::io("transcode", &src))?;
        let blob = encoder.finish_into().map_err(Error::io("compress", &src))?;
        let (actual, _) = decoded.finish().map_err(Error::io("read", &src))?;
        if &actual != diff_id {
            return Err(Error::DigestMismatch {
                what: src.display().to_string(),
                expected: diff_id.clone(),
                actual,
            });
        }
        let (digest, size) = blob.commit()?;
        let desc = Descriptor::new(compression.media_type(), digest, size);
        store.add_layer_blob(diff_id, blobs.tar_size, false, compression, desc.clone())?;
        return Ok(desc);
    }
    // A layer strata made: its tar again, from its directory, whose mtimes
    // were clamped when it was committed (so no epoch clamps them again).
    if blobs.rewritable {
        let dir = store.layer_dir(diff_id);
        let blob = store.blob_writer()?;
        let encoder = compression
            .encoder(blob)
            .map_err(Error::io("compress layer of", &dir))?;
        let (encoder, stats) = layer::write_tar(&dir, encoder, i64::MAX)?;
        let blob = encoder.finish_into().map_err(Error::io("compress layer of", &dir))?;
        let (digest, size) = blob.commit()?;
        if &stats.diff_id != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("layer directory {}", dir.display()),
                expected: diff_id.clone(),
                actual: stats.diff_id,
            });
        }
        let desc = Descriptor::new(compression.media_type(), digest, size);
        store.add_layer_blob(diff_id, stats.size, true, compression, desc.clone())?;
        return Ok(desc);
    }
    Err(Error::BadImage {
        what: diff_id.to_string(),
        reason: "no blob of this layer is in the store".into(),
    })
}
