//! Software bills of materials: what an image holds, found in its layers
//! (dpkg's status, Python `*.dist-info`, `node_modules/*/package.json`),
//! with the layer each package came from and, for the packages of
//! `debian()` bases, the `.deb`'s SHA256 from the verified index; written as
//! an SPDX 2.3 JSON document.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::lock::DebianSet;
use crate::sys::confined::Root;

/// A file of a layer as text, read inside the layer: a symlink (or a
/// symlinked directory on the way) resolves within it, never to the host.
fn read_in(root: &Root, rel: &Path) -> Option<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut root.open_file(rel).ok()?, &mut text).ok()?;
    Some(text)
}

/// `(name, version, arch, source)` of an installed `.deb`.
type Installed = (String, String, String, Option<String>);

/// What kind of package a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deb,
    Python,
    Npm,
    Cargo,
}

/// A package found in an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    /// Debian's architecture (`amd64`, `all`), for `.deb`s.
    pub arch: Option<String>,
    /// The source package, for `.deb`s whose differs from their name.
    pub source: Option<String>,
    /// The layer (diff ID) that brought it in.
    pub layer: Digest,
    /// The `.deb`'s SHA256, when a `debian()` base pinned it.
    pub sha256: Option<String>,
}

impl Package {
    /// The package URL (purl) of the package.
    pub fn purl(&self) -> String {
        match self.kind {
            Kind::Deb => {
                let mut purl = format!("pkg:deb/debian/{}@{}", self.name, purl_escape(&self.version));
                let mut qualifiers = Vec::new();
                if let Some(arch) = &self.arch {
                    qualifiers.push(format!("arch={arch}"));
                }
                if let Some(source) = &self.source {
                    qualifiers.push(format!("upstream={}", purl_escape(source)));
                }
                if !qualifiers.is_empty() {
                    purl.push('?');
                    purl.push_str(&qualifiers.join("&"));
                }
                purl
            }
            Kind::Python => format!(
                "pkg:pypi/{}@{}",
                self.name.to_ascii_lowercase().replace('_', "-"),
                purl_escape(&self.version)
            ),
            Kind::Npm => {
                let name = match self.name.strip_prefix('@') {
                    Some(scoped) => format!("%40{scoped}"),
                    None => self.name.clone(),
                };
                format!("pkg:npm/{name}@{}", purl_escape(&self.version))
            }
            Kind::Cargo => format!("pkg:cargo/{}@{}", self.name, purl_escape(&self.version)),
        }
    }
}

fn purl_escape(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A").replace('+', "%2B")
}

/// The packages of an image whose unpacked layers are `layers` (bottom
/// first, with their diff IDs): those still there in the top layer's view,
/// each attributed to the lowest layer that has it.
pub fn scan(layers: &[(Digest, PathBuf)]) -> Vec<Package> {
    // dpkg: the status file of the highest layer that has one is the truth.
    let mut debs: Vec<Package> = Vec::new();
    let mut seen_debs: BTreeMap<(String, String, String), Digest> = BTreeMap::new();
    let mut last_status: Option<Vec<Installed>> = None;
    for (diff_id, dir) in layers {
        let Ok(root) = Root::open(dir) else { continue };
        if let Some(text) = read_in(&root, Path::new("var/lib/dpkg/status")) {
            let installed = dpkg_status(&text);
            for (name, version, arch, _) in &installed {
                seen_debs
                    .entry((name.clone(), version.clone(), arch.clone()))
                    .or_insert_with(|| diff_id.clone());
            }
            last_status = Some(installed);
        }
    }
    // Distroless images keep no status file but one stanza per package in
    // `status.d/` (what Google's distroless and scanners use): what a layer
    // adds there, a later layer's of the same name replacing it.
    let mut status_d: BTreeMap<String, (Installed, Digest)> = BTreeMap::new();
    for (diff_id, dir) in layers {
        let Ok(root) = Root::open(dir) else { continue };
        let rel = Path::new("var/lib/dpkg/status.d");
        // Listed through the directory inside the layer (a symlink resolves within it).
        let Ok(Some(listing)) = root.dir(rel) else { continue };
        let names: Vec<String> = listing
            .names()
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".md5sums"))
            .collect();
        for file in names {
            let Some(text) = read_in(&root, &rel.join(&file)) else {
                continue;
            };
            for package in dpkg_stanzas(&text, false) {
                status_d.insert(file.clone(), (package, diff_id.clone()));
            }
        }
    }
    let mut listed = last_status.unwrap_or_default();
    for ((name, version, arch, source), layer) in status_d.into_values() {
        if listed.iter().any(|(n, v, a, _)| (n, v, a) == (&name, &version, &arch)) {
            continue;
        }
        seen_debs.insert((name.clone(), version.clone(), arch.clone()), layer);
        listed.push((name, version, arch, source));
    }
    for (name, version, arch, source) in listed {
        let layer = seen_debs[&(name.clone(), version.clone(), arch.clone())].clone();
        debs.push(Package {
            kind: Kind::Deb,
            name,
            version,
            arch: Some(arch),
            source,
            layer,
            sha256: None,
        });
    }
    // Python and npm: what a layer adds, unless a later layer whites it out.
    let mut others: BTreeMap<(Kind, String, String), Package> = BTreeMap::new();
    for (diff_id, dir) in layers {
        let Ok(root) = Root::open(dir) else { continue };
        let mut found = Vec::new();
        walk(&root, dir, dir, 0, &mut found);
        for (kind, name, version, sha256) in found {
            others.entry((kind, name.clone(), version.clone())).or_insert(Package {
                kind,
                name,
                version,
                arch: None,
                source: None,
                layer: diff_id.clone(),
                sha256,
            });
        }
    }
    debs.extend(others.into_values());
    debs
}

/// `(name, version, arch, source)` of every installed package of a dpkg
/// status file.
fn dpkg_status(text: &str) -> Vec<Installed> {
    dpkg_stanzas(text, true)
}

/// The packages of control stanzas; with `need_status`, only those whose
/// `Status` says installed (a `status.d` stanza may have none).
fn dpkg_stanzas(text: &str, need_status: bool) -> Vec<Installed> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        match field("Status") {
            Some(status) if !status.ends_with(" installed") => continue,
            None if need_status => continue,
            _ => {}
        }
        let arch = field("Architecture").unwrap_or_else(|| "all".into());
        // `Source: name (version)` when the source differs.
        let source = field("Source").map(|s| s.split_whitespace().next().unwrap_or_default().to_string());
        out.push((name, version, arch, source));
    }
    out
}

/// A package a walk found: kind, name, version, SHA256 when known.
type Found = (Kind, String, String, Option<String>);

/// Finds `*.dist-info` under `site-packages`/`dist-packages`,
/// `node_modules/*/package.json` and `Cargo.lock` files (a Rust binary's
/// crates, as strata/rust ships them) below `dir` (not through symlinks).
/// Files are read through `root` (the layer at `top`), so none leads out.
fn walk(root: &Root, top: &Path, dir: &Path, depth: usize, out: &mut Vec<Found>) {
    let rel = |p: &Path| p.strip_prefix(top).unwrap_or(p).to_path_buf();
    if depth > 12 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    let parent = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_file() && entry.file_name() == "Cargo.lock" {
            if let Some(text) = read_in(root, &rel(&entry.path())) {
                out.extend(cargo_lock(&text));
            }
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".dist-info") && (parent == "site-packages" || parent == "dist-packages") {
            if let Some((n, v)) = read_in(root, &rel(&path.join("METADATA"))).and_then(|t| python_metadata(&t)) {
                out.push((Kind::Python, n, v, None));
            }
            continue;
        }
        if parent == "node_modules" {
            let packages: Vec<PathBuf> = if name.starts_with('@') {
                // Scoped packages: the scope's real directories only (a
                // symlink there could lead the walk out of the layer).
                fs::read_dir(&path)
                    .map(|d| {
                        d.flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path())
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                vec![path.clone()]
            };
            for p in packages {
                if let Some((n, v)) = read_in(root, &rel(&p.join("package.json")))
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|j| Some((j["name"].as_str()?.to_string(), j["version"].as_str()?.to_string())))
                {
                    out.push((Kind::Npm, n, v, None));
                }
                walk(root, top, &p, depth + 1, out);
            }
            continue;
        }
        walk(root, top, &path, depth + 1, out);
    }
}

/// The crates of a `Cargo.lock`: name, version and, for registry crates,
/// the `.crate`'s SHA256.
fn cargo_lock(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(name), Some(version)) = (field("name"), field("version")) {
            out.push((Kind::Cargo, name, version, field("checksum")));
        }
    }
    out
}

fn python_metadata(text: &str) -> Option<(String, String)> {
    let header = text.split("\n\n").next()?;
    let field = |key: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    Some((field("Name:")?, field("Version:")?))
}

/// Adds the SHA256 of every `.deb` a `debian()` base pinned.
pub fn add_debian_checksums(packages: &mut [Package], sets: &[&DebianSet]) {
    let mut pinned: BTreeMap<(&str, &str, &str), &str> = BTreeMap::new();
    for set in sets {
        for p in &set.packages {
            pinned.insert((&p.name, &p.version, &p.arch), &p.sha256);
        }
    }
    for p in packages.iter_mut().filter(|p| p.kind == Kind::Deb) {
        let arch = p.arch.clone().unwrap_or_default();
        if let Some(sha) = pinned.get(&(p.name.as_str(), p.version.as_str(), arch.as_str())) {
            p.sha256 = Some(sha.to_string());
        }
    }
}

/// The predicate type of an SPDX document in an in-toto statement.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";

/// An in-toto statement (v0.1, as BuildKit's) that `predicate` of
/// `predicate_type` is about the image manifest `manifest` called `name`.
pub fn statement(name: &str, manifest: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": name, "digest": {"sha256": manifest.hex()}}],
        "predicate": predicate,
    });
    serde_json::to_vec_pretty(&statement).expect("JSON values serialize")
}

/// A base image the SBOM names by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub reference: String,
    pub digest: Digest,
}

/// The SPDX 2.3 JSON document of an image: `name`, its manifest digest,
/// its packages and the registry bases it was built on. `created` is the
/// build's timestamp (SOURCE_DATE_EPOCH), so the document is reproducible.
pub fn spdx(name: &str, manifest: &Digest, packages: &[Package], bases: &[Base], created: &str) -> Value {
    let image_id = "SPDXRef-Image";
    let mut spdx_packages = vec![json!({
        "SPDXID": image_id,
        "name": name,
        "versionInfo": manifest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": manifest.hex()}],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    for (i, base) in bases.iter().enumerate() {
        let id = format!("SPDXRef-Base-{i}");
        spdx_packages.push(json!({
            "SPDXID": id,
            "name": base.reference,
            "versionInfo": base.digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.digest.hex()}],
        }));
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": id,
        }));
    }
    for (i, p) in packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{i}");
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(),
            }],
            "comment": format!("from layer {}", p.layer),
        });
        if let Some(sha) = &p.sha256 {
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha}]);
        }
        if p.kind == Kind::Deb {
            let source = p.source.as_deref().unwrap_or(&p.name);
            package["sourceInfo"] = json!(format!("built from the Debian source package {source}"));
        }
        spdx_packages.push(package);
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        // Unique per image: its manifest digest.
        "documentNamespace": format!("https://spdx.org/spdxdocs/strata/{}/{}", name.replace([':', '/'], "-"), manifest.hex()),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: strata-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> Digest {
        Digest::of(b)
    }

    #[test]
    fn packages_are_found_in_their_layers_and_removed_ones_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = dir.path().join("l1");
        let l2 = dir.path().join("l2");
        fs::create_dir_all(l1.join("var/lib/dpkg")).unwrap();
        fs::create_dir_all(l2.join("var/lib/dpkg")).unwrap();
        fs::write(
            l1.join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9\n\nPackage: gone\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n",
        )
        .unwrap();
        fs::write(
            l2.join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9\n\nPackage: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n\nPackage: half\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n",
        )
        .unwrap();
        let site = l2.join("opt/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info");
        fs::create_dir_all(&site).unwrap();
        fs::write(
            site.join("METADATA"),
            "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.0\n\nbody\n",
        )
        .unwrap();
        fs::create_dir_all(l2.join("usr/share/doc/server")).unwrap();
        fs::write(
            l2.join("usr/share/doc/server/Cargo.lock"),
            "version = 3\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.9\"\nsource = \"registry+https://crates.test\"\nchecksum = \"af150ab688ff2122fcef229be89cb50dd66af9e01a4ff320cc137eecc9bacc38\"\n\n[[package]]\nname = \"server\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        let npm = l2.join("app/node_modules/@scope/left-pad");
        fs::create_dir_all(&npm).unwrap();
        fs::write(
            npm.join("package.json"),
            r#"{"name": "@scope/left-pad", "version": "1.3.0"}"#,
        )
        .unwrap();
        let (d1, d2) = (digest(b"one"), digest(b"two"));
        let found = scan(&[(d1.clone(), l1), (d2.clone(), l2)]);
        let names: Vec<(&str, &Digest)> = found.iter().map(|p| (p.name.as_str(), &p.layer)).collect();
        assert_eq!(
            names,
            [
                ("libc6", &d1),
                ("nginx", &d2),
                ("Flask", &d2),
                ("@scope/left-pad", &d2),
                ("itoa", &d2),
                ("server", &d2)
            ]
        );
        assert_eq!(found[4].purl(), "pkg:cargo/itoa@1.0.9");
        assert_eq!(
            found[4].sha256.as_deref(),
            Some("af150ab688ff2122fcef229be89cb50dd66af9e01a4ff320cc137eecc9bacc38")
        );
        assert_eq!(found[5].sha256, None);
        assert_eq!(found[0].purl(), "pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc");
        assert_eq!(found[2].purl(), "pkg:pypi/flask@3.0.0");
        assert_eq!(found[3].purl(), "pkg:npm/%40scope/left-pad@1.3.0");
    }

    #[test]
    fn distroless_status_d_stanzas_are_packages_too() {
        let t = tempfile::tempdir().unwrap();
        let l = t.path().join("l");
        fs::create_dir_all(l.join("var/lib/dpkg/status.d")).unwrap();
        fs::write(
            l.join("var/lib/dpkg/status.d/tzdata"),
            "Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\n",
        )
        .unwrap();
        fs::write(
            l.join("var/lib/dpkg/status.d/ca-certificates"),
            "Package: ca-certificates\nStatus: install ok installed\nVersion: 20230311\nArchitecture: all\n",
        )
        .unwrap();
        fs::write(
            l.join("var/lib/dpkg/status.d/tzdata.md5sums"),
            "x  /usr/share/zoneinfo/UTC\n",
        )
        .unwrap();
        let found = scan(&[(digest(b"l"), l)]);
        let names: Vec<(&str, &str)> = found.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
        assert_eq!(names, [("ca-certificates", "20230311"), ("tzdata", "2025b-0+deb12u1")]);
        assert!(found.iter().all(|p| p.kind == Kind::Deb && p.layer == digest(b"l")));
    }

    #[test]
    fn a_layers_symlinks_never_lead_the_scan_to_the_hosts_files() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir_all(host.join("pkg")).unwrap();
        fs::write(
            host.join("status"),
            "Package: host-secret\nStatus: install ok installed\nVersion: 1\n",
        )
        .unwrap();
        fs::write(
            host.join("pkg/package.json"),
            r#"{"name": "host-secret", "version": "1.0.0"}"#,
        )
        .unwrap();
        let layer = dir.path().join("layer");
        fs::create_dir_all(layer.join("var/lib/dpkg")).unwrap();
        std::os::unix::fs::symlink(host.join("status"), layer.join("var/lib/dpkg/status")).unwrap();
        let pkg = layer.join("app/node_modules/evil");
        fs::create_dir_all(&pkg).unwrap();
        std::os::unix::fs::symlink(host.join("pkg/package.json"), pkg.join("package.json")).unwrap();
        std::os::unix::fs::symlink(&host, layer.join("app/node_modules/linked")).unwrap();
        fs::create_dir_all(layer.join("app/node_modules/@scope")).unwrap();
        std::os::unix::fs::symlink(&host, layer.join("app/node_modules/@scope/pkg")).unwrap();
        let site = layer.join("usr/lib/python3/dist-packages/evil-1.dist-info");
        fs::create_dir_all(&site).unwrap();
        fs::write(host.join("METADATA"), "Name: host-secret\nVersion: 1\n").unwrap();
        std::os::unix::fs::symlink(host.join("METADATA"), site.join("METADATA")).unwrap();
        let found = scan(&[(digest(b"layer"), layer)]);
        assert!(found.iter().all(|p| p.name != "host-secret"), "{found:?}");
    }

    #[test]
    fn the_document_names_the_image_its_bases_and_packages() {
        let manifest = digest(b"manifest");
        let mut packages = vec![Package {
            kind: Kind::Deb,
            name: "nginx".into(),
            version: "1.22.1-9".into(),
            arch: Some("amd64".into()),
            source: None,
            layer: digest(b"layer"),
            sha256: None,
        }];
        let set = DebianSet {
            mirror: "http://mirror.test/debian".into(),
            suite: "bookworm".into(),
            arch: "amd64".into(),
            variant: "required".into(),
            packages: vec![crate::lock::LockedPackage {
                name: "nginx".into(),
                version: "1.22.1-9".into(),
                arch: "amd64".into(),
                sha256: "ab".repeat(32),
                filename: "pool/main/n/nginx/nginx_1.22.1-9_amd64.deb".into(),
                size: 1,
                suite: None,
            }],
            base: Vec::new(),
            overlays: Default::default(),
        };
        add_debian_checksums(&mut packages, &[&set]);
        let base = Base {
            reference: "registry.test/base:1".into(),
            digest: digest(b"base"),
        };
        let doc = spdx("app:1", &manifest, &packages, &[base], "2026-01-01T00:00:00Z");
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["packages"][2]["checksums"][0]["checksumValue"], "ab".repeat(32));
        assert_eq!(doc["packages"][1]["name"], "registry.test/base:1");
        assert_eq!(doc["relationships"][1]["relationshipType"], "DESCENDANT_OF");
        assert_eq!(doc["relationships"][2]["relationshipType"], "CONTAINS");
    }
}
