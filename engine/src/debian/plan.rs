//! Planning a `debian()` base: the package set, resolved against the
//! mirror's verified index or taken from `strata.lock`, and the identity
//! that keys the base.

use std::collections::HashMap;

use std::fs;
use std::io::Read;

use super::control::stanzas;
use super::resolve::Universe;
use crate::error::{Error, Result};
use crate::graph::DebianBase;
use crate::lock::{DebianSet, Lock, LockedPackage};
use crate::store::Store;

use super::fetch::{agent, fetch, sha256_hex, verified_release, MAX_RELEASE};
use super::{arch_of, fail, lock_name, resolve, variant_of, DebianError};
use crate::registry::download::Expect;

/// The uncompressed `Packages` index of `component` in `suite` at `mirror`,
/// as its verified `Release` lists it (kept in the store by its SHA256);
/// `None` when the Release lists no such index.
#[allow(clippy::too_many_arguments)]
fn packages_index(
    spec: &DebianBase,
    store: &Store,
    agent: &ureq::Agent,
    mirror: &str,
    suite: &str,
    listed: &HashMap<String, (String, u64)>,
    component: &str,
    arch: &str,
) -> Result<Option<String>> {
    let Some((path, (hash, _))) = ["xz", "gz"].iter().find_map(|ext| {
        let p = format!("{component}/binary-{arch}/Packages.{ext}");
        listed.get(&p).map(|h| (p, h.clone()))
    }) else {
        return Ok(None);
    };
    let cached = store.root().join("debian/index").join(&hash);
    let compressed = match fs::read(&cached) {
        Ok(bytes) if sha256_hex(&bytes) == hash => bytes,
        _ => {
            let url = format!("{mirror}/dists/{suite}/{path}");
            // At most the size the signed Release lists; its hash is checked below.
            let size = listed.get(&path).map_or(0, |(_, size)| *size);
            let bytes = fetch(agent, &url, Expect::at_most(size)).map_err(|e| fail(spec, e))?;
            let actual = sha256_hex(&bytes);
            if actual != hash {
                return Err(fail(
                    spec,
                    format!("`{url}` has SHA256 {actual}, but the signed Release says {hash}"),
                ));
            }
            fs::create_dir_all(cached.parent().expect("has a parent")).map_err(Error::io("create", &cached))?;
            store.write_atomic(&cached, &bytes)?;
            bytes
        }
    };
    let mut text = String::new();
    let decoded: Box<dyn Read> = if path.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new(&compressed[..]))
    } else {
        Box::new(flate2::read::MultiGzDecoder::new(&compressed[..]))
    };
    // A signed index is trusted for its hash, not for what it expands to.
    { decoded.take(MAX_PACKAGES + 1) }
        .read_to_string(&mut text)
        .map_err(|source| {
            fail(
                spec,
                DebianError::Decompress {
                    path: path.to_string(),
                    source,
                },
            )
        })?;
    if text.len() as u64 > MAX_PACKAGES {
        return Err(fail(
            spec,
            format!("`{path}` expands past {MAX_PACKAGES} bytes; Debian's largest is about 60 MB"),
        ));
    }
    Ok(Some(text))
}

/// The largest uncompressed `Packages` index strata reads.
const MAX_PACKAGES: u64 = 1 << 30;

/// Resolves the spec against the mirrors' current indexes: the suite and
/// its overlays, each `InRelease` verified, every component asked for.
fn resolve_now(spec: &DebianBase, store: &Store, warn: &dyn Fn(String)) -> Result<DebianSet> {
    let sources = super::sources(spec)?;
    let arch = arch_of(spec);
    let variant = variant_of(spec)?;
    let agent = agent();
    let mut indexes = Vec::new();
    for source in &sources {
        let release_url = format!("{}/dists/{}/InRelease", source.mirror, source.suite);
        let inrelease = fetch(&agent, &release_url, Expect::at_most(MAX_RELEASE)).map_err(|e| match e {
            super::FetchError::Status { status: 404, .. } if source.suite != spec.suite => fail(
                spec,
                format!(
                    "`{release_url}` answered 404: the mirror has no {} (turn it off with #{{ {}: false }}, or name its mirror{})",
                    source.suite,
                    if source.suite.ends_with("-security") { "security" } else { "updates" },
                    if source.suite.ends_with("-security") { " with security_mirror" } else { "" }
                ),
            ),
            e => fail(spec, e),
        })?;
        let release = verified_release(spec, &release_url, &inrelease, store, warn)?;
        let fields = stanzas(&release).into_iter().next().unwrap_or_default();
        let listed: HashMap<String, (String, u64)> = fields
            .get("SHA256")
            .map(|v| {
                v.lines()
                    .filter_map(|l| {
                        let mut w = l.split_whitespace();
                        let (hash, size, path) = (w.next()?, w.next()?, w.next()?);
                        Some((path.to_string(), (hash.to_string(), size.parse().ok()?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for component in &spec.components {
            let text = packages_index(
                spec,
                store,
                &agent,
                &source.mirror,
                &source.suite,
                &listed,
                component,
                &arch,
            )?;
            match text {
                Some(text) => indexes.push((source.suite.clone(), stanzas(&text))),
                // An overlay may lack a component (security has no non-free-firmware at times).
                None if source.suite != spec.suite => {}
                None => {
                    return Err(fail(
                        spec,
                        format!("`{release_url}` lists no Packages index for {component}/binary-{arch}"),
                    ))
                }
            }
        }
    }
    let universe = Universe::of_suites(indexes, &arch).map_err(|e| fail(spec, e))?;
    let opts = resolve::Options {
        recommends: spec.recommends,
    };
    let resolution = resolve::resolve_with(&universe, variant, &spec.packages, opts).map_err(|e| fail(spec, e))?;
    let base = resolution.base.into_iter().collect();
    let chosen = resolution.packages;
    Ok(DebianSet {
        base,
        mirror: sources[0].mirror.clone(),
        overlays: sources[1..]
            .iter()
            .map(|s| (s.suite.clone(), s.mirror.clone()))
            .collect(),
        suite: spec.suite.clone(),
        arch,
        variant: spec.variant.clone().unwrap_or_else(|| "required".into()),
        packages: chosen
            .into_iter()
            .map(|c| LockedPackage {
                suite: (c.suite != spec.suite).then_some(c.suite),
                name: c.name,
                version: c.version,
                arch: c.arch,
                sha256: c.sha256,
                filename: c.filename,
                size: c.size,
            })
            .collect(),
    })
}

/// Planning: the package set (from the lock, or resolved and pinned) and
/// the identity that keys the base.
pub fn plan(spec: &DebianBase, store: &Store, lock: &Lock, warn: &dyn Fn(String)) -> Result<(DebianSet, [u8; 32])> {
    let name = lock_name(spec);
    let set = lock.debian(&name, || resolve_now(spec, store, warn))?;
    // The lock comes with the recipe and is as hostile: a SHA256 names a
    // file of the store, and only a real one may (the mirror's are checked
    // as the index is read).
    if let Some(bad) = set.packages.iter().find(|p| !super::is_sha256_hex(&p.sha256)) {
        return Err(Error::Lock(format!(
            "`{}`, package set `{name}`: the SHA256 of `{}` is {:?}, not 64 lowercase hexadecimal digits",
            lock.path().display(),
            bad.name,
            bad.sha256
        )));
    }
    let mut enc = crate::key::KeyEncoder::new("debian-v3");
    super::encode_origin(&mut enc, spec, &set);
    for p in &set.packages {
        enc.str(&p.name).str(&p.version).str(&p.arch).str(&p.sha256);
    }
    enc.strs(&set.base);
    Ok((set, enc.finish().0))
}
