//! Layers: the deterministic tar writer (an overlay-format directory → a
//! layer tar), the safe unpacker (a layer tar → an overlay-format directory),
//! compression, and the hashing adapters that compute digests while bytes
//! stream past. Nothing here holds a whole layer in memory.

mod hashio;
mod pgzip;
mod tree;
mod unpack;
mod write;

pub use hashio::{Counting, HashReader, HashWriter};
pub use pgzip::ParallelGzip;
pub use tree::{content_of, hash_content, hash_entry, xattrs_of, TreeHash};
pub use unpack::{unpack, UnpackStats};
pub use write::{write_new_layer, write_tar, NewLayer, TarStats};

use std::io::{self, BufRead, Read, Write};

/// The prefix of overlay's own xattrs: `trusted.overlay.` as root,
/// `user.overlay.` in rootless mode (overlay's `userxattr` option), where
/// `trusted.*` would need root on the host.
pub fn overlay_xattr_prefix() -> &'static str {
    if crate::sys::userns::rootless() {
        "user.overlay."
    } else {
        "trusted.overlay."
    }
}

/// Overlay's xattr for an opaque directory.
pub fn opaque_xattr() -> &'static str {
    if crate::sys::userns::rootless() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// zstd level 1 on a fixed number of worker threads: several times
    /// faster than `Zstd`, somewhat larger, for registries that take zstd.
    ZstdFast,
}

/// zstd's worker threads for `ZstdFast`: fixed, so that the bytes never
/// depend on the machine.
const ZSTD_FAST_WORKERS: u32 = 4;

impl Compression {
    /// The OCI media type of a layer blob in this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd | Compression::ZstdFast => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Name used in file names and flags.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::ZstdFast => "zstd-fast",
        }
    }

    /// Parses a `--compression` value.
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "zstd-fast" => Some(Compression::ZstdFast),
            _ => None,
        }
    }

    /// Recognises compression by the first bytes of a blob.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `out` in this compression's encoder with fixed, reproducible settings.
    pub fn encoder<'a, W: Write + 'a>(self, out: W) -> io::Result<Box<dyn FinishWrite<W> + 'a>> {
        Ok(match self {
            Compression::None => Box::new(Plain(out)),
            Compression::Gzip => Box::new(ParallelGzip::new(out, 6, rayon::current_num_threads())),
            Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(out, 3)?),
            Compression::ZstdFast => {
                let mut encoder = zstd::stream::write::Encoder::new(out, 1)?;
                encoder.multithread(ZSTD_FAST_WORKERS)?;
                Box::new(encoder)
            }
        })
    }

    /// Wraps `input` in the decoder that its first bytes call for.
    pub fn decoder<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
        let head = input.fill_buf()?.to_vec();
        Ok(match Compression::detect(&head) {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Zstd | Compression::ZstdFast => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

/// A writer that must be finished to flush its trailer, returning the inner writer.
pub trait FinishWrite<W>: Write {
    fn finish_into(self: Box<Self>) -> io::Result<W>;
}

struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> FinishWrite<W> for Plain<W> {
    fn finish_into(self: Box<Self>) -> io::Result<W> {
        Ok(self.0)
    }
}

impl<W: Write> FinishWrite<W> for ParallelGzip<W> {
    fn finish_into(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}

impl<'a, W: Write> FinishWrite<W> for zstd::stream::write::Encoder<'a, W> {
    fn finish_into(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}

/// Removes a file or a whole tree; nothing there is fine. For strata's own
/// scratch and store directories (a staging area, a layer being replaced),
/// never for a path a hostile entry names (the confined writer removes
/// those, following no link).
pub fn remove_path(path: &std::path::Path) -> crate::error::Result<()> {
    use crate::error::Error;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => std::fs::remove_dir_all(path).map_err(Error::io("remove", path)),
        Ok(_) => std::fs::remove_file(path).map_err(Error::io("remove", path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", path)(e)),
    }
}
