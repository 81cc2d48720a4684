//! Talking to the mirror: where it is (the recipe, `$STRATA_DEBIAN_MIRROR`
//! or the host's apt sources), fetching with retries, checking `InRelease`,
//! and downloading `.deb`s into the store, each against its SHA256.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use super::control::stanzas;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::graph::DebianBase;
use crate::lock::{DebianSet, LockedPackage};
use crate::registry::download::{self, Expect};
use crate::step::ExecCtx;
use crate::store::Store;

use super::{fail, FetchError, KEYRING};

/// The mirror: the recipe's option, else `$STRATA_DEBIAN_MIRROR`, else the
/// first Debian entry of the host's apt sources (one that carries `suite`
/// if any does).
pub fn mirror(spec: &DebianBase) -> Result<String> {
    let env = std::env::var("STRATA_DEBIAN_MIRROR").ok();
    if let Some(m) = spec.mirror.as_deref().or(env.as_deref()).filter(|m| !m.is_empty()) {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let entries = apt_sources(Path::new("/etc/apt"));
    let pick = entries
        .iter()
        .find(|(_, suites)| suites.iter().any(|s| s == &spec.suite))
        .or_else(|| entries.first());
    match pick {
        Some((uri, _)) => Ok(uri.trim_end_matches('/').to_string()),
        None => Err(fail(
            spec,
            "no Debian mirror: pass #{ mirror: \"http://HOST/debian\" }, set STRATA_DEBIAN_MIRROR or configure one in /etc/apt/sources.list(.d)",
        )),
    }
}

/// `(uri, suites)` of every `deb` entry in the apt sources under `etc_apt`.
pub fn apt_sources(etc_apt: &Path) -> Vec<(String, Vec<String>)> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let name = file.to_string_lossy();
        if name.ends_with(".sources") {
            for s in stanzas(&text) {
                let enabled = s.get("Enabled").is_none_or(|v| v != "no");
                let deb = s.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
                if enabled && deb {
                    let suites: Vec<String> = s
                        .get("Suites")
                        .map(|v| v.split_whitespace().map(str::to_string).collect())
                        .unwrap_or_default();
                    for uri in s.get("URIs").map(|v| v.split_whitespace()).into_iter().flatten() {
                        out.push((uri.to_string(), suites.clone()));
                    }
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                let mut rest: Vec<&str> = words.collect();
                if rest.first().is_some_and(|w| w.starts_with('[')) {
                    let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                    rest.drain(..=end);
                }
                if rest.len() >= 2 {
                    out.push((rest[0].to_string(), vec![rest[1].to_string()]));
                }
            }
        }
    }
    out
}

pub(super) fn agent() -> ureq::Agent {
    download::agent()
}

/// The largest `InRelease` strata reads (Debian's are about 150 KiB).
pub(super) const MAX_RELEASE: u64 = 16 << 20;

/// GETs `url` into `out` under `expect` (the bounded downloader), with
/// retries of transient failures.
fn fetch_into(
    agent: &ureq::Agent,
    url: &str,
    expect: Expect,
    out: &mut dyn std::io::Write,
) -> std::result::Result<u64, FetchError> {
    let mut body = download::get(agent, url, expect).map_err(|e| match e {
        download::DownloadError::Status { url, status } => FetchError::Status { url, status },
        download::DownloadError::Transport { url, reason } => FetchError::Transport { url, reason },
    })?;
    std::io::copy(&mut body, out).map_err(|source| FetchError::Read {
        url: url.to_string(),
        source,
    })
}

/// The body of `url` in memory, under `expect`.
pub(super) fn fetch(agent: &ureq::Agent, url: &str, expect: Expect) -> std::result::Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    fetch_into(agent, url, expect, &mut out)?;
    Ok(out)
}

/// Checks `InRelease` with gpgv and returns the signed text. Without gpgv or
/// the keyring the text is used unverified, and `warn` says so.
pub(super) fn verified_release(
    spec: &DebianBase,
    url: &str,
    bytes: &[u8],
    store: &Store,
    warn: &dyn Fn(String),
) -> Result<String> {
    let keyring = Path::new(KEYRING);
    let gpgv = Command::new("gpgv").arg("--version").output().is_ok();
    if gpgv && keyring.exists() {
        let tmp = store.tmp_dir()?;
        let input = tmp.path().join("InRelease");
        let output = tmp.path().join("Release");
        fs::write(&input, bytes).map_err(Error::io("write", &input))?;
        let out = Command::new("gpgv")
            .arg("--keyring")
            .arg(keyring)
            .arg("--output")
            .arg(&output)
            .arg(&input)
            .output()
            .map_err(Error::io("run gpgv on", &input))?;
        if !out.status.success() {
            return Err(fail(
                spec,
                format!(
                    "the signature of `{url}` does not verify against {KEYRING}:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        return fs::read_to_string(&output).map_err(Error::io("read", &output));
    }
    warn(format!(
        "`{url}` is NOT signature-checked: {}",
        if gpgv {
            format!("{KEYRING} is missing (install debian-archive-keyring)")
        } else {
            "gpgv is not installed (install gpgv)".to_string()
        }
    ));
    let text = String::from_utf8_lossy(bytes).into_owned();
    // The cleartext between the armor header's blank line and the signature.
    let body = text
        .split_once("\n\n")
        .map(|(_, b)| b)
        .unwrap_or(&text)
        .split("\n-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap_or("")
        .to_string();
    Ok(body)
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    crate::digest::Digest::of(bytes).hex()
}

pub fn deb_path(store: &Store, sha256: &str) -> PathBuf {
    store.root().join("debian/debs").join(format!("{sha256}.deb"))
}

/// Whether the store holds the .deb whose SHA256 is `sha256`.
pub fn has_deb(store: &Store, sha256: &str) -> bool {
    deb_path(store, sha256).exists()
}

/// Stores the .deb that `write` writes, as the package whose SHA256 is
/// `sha256`, once `check` accepts what the bytes hash to (their digest and
/// size): nothing unchecked enters the store. The partial file lives in
/// `scratch`. For a mirror's download and a remote worker's CAS fetch alike.
pub fn put_deb(
    store: &Store,
    scratch: &Path,
    sha256: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
    check: impl FnOnce(&crate::digest::Digest, u64) -> Result<()>,
) -> Result<()> {
    let mut blob = tempfile::NamedTempFile::new_in(scratch).map_err(Error::io("create temporary file in", scratch))?;
    let mut hashing = crate::layer::HashWriter::new(blob.as_file_mut());
    write(&mut hashing)?;
    let (_, digest, size) = hashing.finish();
    check(&digest, size)?;
    let dest = deb_path(store, sha256);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    blob.persist(&dest).map_err(|e| Error::io("store", &dest)(e.error))?;
    Ok(())
}

/// Downloads the packages the store lacks, eight at a time, each checked
/// against its SHA256 and size.
pub(super) fn download(ctx: &ExecCtx<'_>, spec: &DebianBase, set: &DebianSet) -> Result<()> {
    let store = ctx.store;
    let missing: Vec<&LockedPackage> = set.packages.iter().filter(|p| !has_deb(store, &p.sha256)).collect();
    let total: u64 = missing.iter().map(|p| p.size).sum();
    let done = AtomicU64::new(0);
    // The mirrors configured now serve the bytes; the lock's are the fallback.
    let now: std::collections::HashMap<String, String> = super::sources(spec)
        .map(|list| list.into_iter().map(|s| (s.suite, s.mirror)).collect())
        .unwrap_or_default();
    let agent = agent();
    // Partial downloads stay in this process's scratch space (gone with it).
    let scratch = store.tmp_dir()?;
    crate::par::try_each(&missing, 8, |p| {
        if ctx.cancelled() {
            return Err(Error::Interrupted);
        }
        let suite = p.suite.as_deref().unwrap_or(&set.suite);
        let mirror = now.get(suite).map_or_else(|| set.mirror_of(p), String::as_str);
        let url = format!("{mirror}/{}", p.filename);
        put_deb(
            store,
            scratch.path(),
            &p.sha256,
            // Exactly the size the lock names, or the download stops there
            // (what the bytes hash to is checked as they are stored).
            |out| {
                fetch_into(&agent, &url, Expect::exact(p.size), out)
                    .map(|_| ())
                    .map_err(|e| fail(spec, e))
            },
            |digest, size| {
                let actual = digest.hex();
                if actual == p.sha256 && size == p.size {
                    return Ok(());
                }
                Err(fail(
                    spec,
                    format!(
                        "`{url}` has SHA256 {actual} ({size} bytes), but the index says {} ({} bytes)",
                        p.sha256, p.size
                    ),
                ))
            },
        )?;
        let bytes = done.fetch_add(p.size, Ordering::Relaxed) + p.size;
        ctx.event(Event::Downloading {
            node: ctx.node,
            bytes,
            total,
        });
        Ok(())
    })
}
