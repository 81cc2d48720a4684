//! Native Debian bases: `debian(suite, packages, #{mirror, arch, variant})`.
//!
//! Planning resolves the package set, or takes it from `strata.lock`:
//! `InRelease` (signature checked with `gpgv` against the Debian archive
//! keyring when both are present) → the SHA256 of `Packages` → every
//! package's SHA256. Building downloads the `.deb`s in parallel into the
//! store (verified, shared by all recipes), extracts the essential ones,
//! then runs dpkg in the sandbox with the network off to install them all
//! properly (maintainer scripts run, `policy-rc.d` keeps services down), and
//! turns the result into one layer. Same lock, same layer.

pub mod control;
pub mod deb;
mod fetch;
mod install;
mod plan;
pub mod resolve;

pub use fetch::{apt_sources, deb_path, has_deb, mirror, put_deb};
pub use install::{build, install, BaseSetup, Install, RoundsError};
pub use plan::plan;

use crate::error::{Error, Result};
use crate::graph::DebianBase;
use crate::image::{self};
use resolve::Variant;

/// The keyring `InRelease` is checked against.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Where the `.deb`s are visible inside the sandbox while dpkg installs them.
const DEBS_IN_SANDBOX: &str = "/var/cache/strata-debs";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What goes wrong planning or assembling a `debian(...)` base.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// A condition with no underlying cause (no mirror, a bad signature…).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot decompress `{path}`: {source}")]
    Decompress {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
}

/// A download from the mirror that failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("cannot download `{url}`: {reason}")]
    Transport { url: String, reason: String },
    #[error("cannot download `{url}`: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

/// A Debian package name (Policy 5.6.1): at least two characters, lowercase
/// letters, digits and `+-.`, starting with a letter or digit.
pub(crate) fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A SHA256 as `Packages` indexes and `strata.lock` write it, and as the
/// store names a `.deb`: 64 lowercase hexadecimal digits, nothing else.
pub(crate) fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The engine error for `spec`.
fn fail(spec: &DebianBase, source: impl Into<DebianError>) -> Error {
    Error::Debian {
        suite: spec.suite.clone(),
        source: Box::new(source.into()),
    }
}

impl From<String> for DebianError {
    fn from(message: String) -> DebianError {
        DebianError::Invalid(message)
    }
}

impl From<&str> for DebianError {
    fn from(message: &str) -> DebianError {
        DebianError::Invalid(message.to_string())
    }
}

/// The architecture a spec asks for (Debian's names equal OCI's for the usual ones).
pub fn arch_of(spec: &DebianBase) -> String {
    spec.arch.clone().unwrap_or_else(|| image::host_arch().to_string())
}

fn variant_of(spec: &DebianBase) -> Result<Variant> {
    match spec.variant.as_deref() {
        None | Some("required") | Some("minbase") => Ok(Variant::Required),
        Some("essential") => Ok(Variant::Essential),
        Some(other) => Err(fail(
            spec,
            format!("unknown variant `{other}`: expected \"required\" or \"essential\""),
        )),
    }
}

/// One suite a `debian()` base reads, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub suite: String,
    pub mirror: String,
}

/// Suites with no `-updates` or `-security` overlay.
const NO_OVERLAYS: &[&str] = &["sid", "unstable", "experimental", "rc-buggy"];

/// The snapshot archive's URL for `archive` at `instant`: the recipe's
/// `snapshot_url`, else `$STRATA_DEBIAN_SNAPSHOT_URL` (no built-in default,
/// as there is no built-in default mirror).
fn snapshot_mirror(spec: &DebianBase, instant: &str, archive: &str) -> Result<String> {
    let env = std::env::var("STRATA_DEBIAN_SNAPSHOT_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let pattern = spec.snapshot_url.clone().or(env).ok_or_else(|| {
        fail(
            spec,
            "a snapshot needs the snapshot archive's URL: #{ snapshot_url: \"https://HOST/archive/{archive}/{snapshot}\" } or STRATA_DEBIAN_SNAPSHOT_URL",
        )
    })?;
    Ok(pattern
        .replace("{archive}", archive)
        .replace("{snapshot}", instant)
        .trim_end_matches('/')
        .to_string())
}

/// The suites `spec` reads, its own first, each with its mirror: the suite,
/// then `-updates` (same mirror) and `-security` (its own) unless turned off.
pub fn sources(spec: &DebianBase) -> Result<Vec<Source>> {
    let main = match &spec.snapshot {
        Some(instant) => snapshot_mirror(spec, instant, "debian")?,
        None => mirror(spec)?,
    };
    let mut out = vec![Source {
        suite: spec.suite.clone(),
        mirror: main.clone(),
    }];
    if NO_OVERLAYS.contains(&spec.suite.as_str()) {
        return Ok(out);
    }
    if spec.updates {
        out.push(Source {
            suite: format!("{}-updates", spec.suite),
            mirror: main.clone(),
        });
    }
    if spec.security {
        let suite = format!("{}-security", spec.suite);
        let mirror = match (&spec.snapshot, &spec.security_mirror) {
            (Some(instant), _) => snapshot_mirror(spec, instant, "debian-security")?,
            (None, Some(m)) => m.trim_end_matches('/').to_string(),
            // The host's source for it, unless the recipe named the main mirror.
            (None, None) => apt_sources(std::path::Path::new("/etc/apt"))
                .into_iter()
                .find(|(_, suites)| spec.mirror.is_none() && suites.contains(&suite))
                .map(|(uri, _)| uri.trim_end_matches('/').to_string())
                .unwrap_or_else(|| match main.strip_suffix("/debian") {
                    Some(root) => format!("{root}/debian-security"),
                    None => main.clone(),
                }),
        };
        out.push(Source { suite, mirror });
    }
    Ok(out)
}

/// What a base is made from besides its packages: mirrors and suites,
/// architecture, variant, components and what slimming keeps. The base's
/// identity and its base-set layer's key both take it.
fn encode_origin(enc: &mut crate::key::KeyEncoder, spec: &DebianBase, set: &crate::lock::DebianSet) {
    enc.str(&set.mirror).str(&set.suite).str(&set.arch).str(&set.variant);
    for (suite, mirror) in &set.overlays {
        enc.str(suite).str(mirror);
    }
    enc.strs(&spec.components);
    enc.str(if spec.docs { "docs" } else { "slim" }).strs(&spec.locales);
}

/// The name a package set is filed under in `strata.lock`.
pub fn lock_name(spec: &DebianBase) -> String {
    let mut packages = spec.packages.clone();
    packages.sort();
    packages.dedup();
    format!(
        "{}/{} {}: {}",
        spec.suite,
        arch_of(spec),
        spec.variant.as_deref().unwrap_or("required"),
        packages.join(" ")
    )
    .trim_end()
    .trim_end_matches(':')
    .to_string()
        + if spec.recommends { " +recommends" } else { "" }
        + if spec.updates { "" } else { " -updates" }
        + if spec.security { "" } else { " -security" }
        + &match spec.components.as_slice() {
            [main] if main == "main" => String::new(),
            other => format!(" [{}]", other.join(" ")),
        }
        + &spec.snapshot.as_ref().map(|s| format!(" @{s}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn apt_sources_come_from_one_line_and_deb822_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.test/debian bookworm main\ndeb-src http://src.test/debian bookworm main\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://other.test/debian\nSuites: trixie trixie-updates\nComponents: main\n\nTypes: deb\nURIs: http://off.test/debian\nSuites: sid\nEnabled: no\n",
        )
        .unwrap();
        let entries = apt_sources(dir.path());
        assert_eq!(
            entries,
            vec![
                ("http://mirror.test/debian".to_string(), vec!["bookworm".to_string()]),
                (
                    "http://other.test/debian".to_string(),
                    vec!["trixie".to_string(), "trixie-updates".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn lock_names_sort_and_deduplicate_the_request() {
        let spec = DebianBase {
            arch: Some("amd64".into()),
            ..DebianBase::new("bookworm", vec!["nginx".into(), "curl".into(), "nginx".into()])
        };
        assert_eq!(lock_name(&spec), "bookworm/amd64 required: curl nginx");
        let bare = DebianBase {
            packages: vec![],
            ..spec
        };
        assert_eq!(lock_name(&bare), "bookworm/amd64 required");
        let recommends = DebianBase {
            recommends: true,
            ..bare.clone()
        };
        assert_eq!(lock_name(&recommends), "bookworm/amd64 required +recommends");
        let pinned = DebianBase {
            security: false,
            components: vec!["main".into(), "contrib".into()],
            snapshot: Some("20261101T000000Z".into()),
            ..bare
        };
        assert_eq!(
            lock_name(&pinned),
            "bookworm/amd64 required -security [main contrib] @20261101T000000Z"
        );
    }

    #[test]
    fn a_suite_reads_its_updates_and_security_overlays_unless_told_not_to() {
        let spec = DebianBase {
            mirror: Some("http://mirror.test/debian/".into()),
            ..DebianBase::new("bookworm", vec![])
        };
        let suites = |s: &DebianBase| -> Vec<(String, String)> {
            sources(s).unwrap().into_iter().map(|s| (s.suite, s.mirror)).collect()
        };
        assert_eq!(
            suites(&spec),
            [
                ("bookworm".to_string(), "http://mirror.test/debian".to_string()),
                ("bookworm-updates".into(), "http://mirror.test/debian".into()),
                ("bookworm-security".into(), "http://mirror.test/debian-security".into()),
            ]
        );
        let sid = DebianBase {
            suite: "sid".into(),
            ..spec.clone()
        };
        assert_eq!(suites(&sid).len(), 1);
        let unnamed = DebianBase {
            snapshot: Some("20261101T000000Z".into()),
            ..spec.clone()
        };
        if std::env::var_os("STRATA_DEBIAN_SNAPSHOT_URL").is_none() {
            let e = sources(&unnamed).unwrap_err();
            assert!(
                e.chain().contains("a snapshot needs the snapshot archive's URL"),
                "{}",
                e.chain()
            );
        }
        let snapshot = DebianBase {
            snapshot: Some("20261101T000000Z".into()),
            snapshot_url: Some("http://snap.test/archive/{archive}/{snapshot}/".into()),
            updates: false,
            ..spec
        };
        assert_eq!(
            suites(&snapshot),
            [
                (
                    "bookworm".to_string(),
                    "http://snap.test/archive/debian/20261101T000000Z".to_string()
                ),
                (
                    "bookworm-security".into(),
                    "http://snap.test/archive/debian-security/20261101T000000Z".into()
                ),
            ]
        );
    }
}
