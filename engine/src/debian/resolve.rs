//! Choosing packages: the closure of the base set (priority `required`, or
//! `Essential: yes` only) and the requested packages under `Depends` and
//! `Pre-Depends`, with version constraints, alternatives and virtual
//! packages (`Provides`). Deterministic: the same index and request always
//! give the same set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::control::{compare_versions, dependencies, satisfies, Alternative, Stanza};

/// A package as a `Packages` index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub priority: String,
    pub essential: bool,
    pub depends: Vec<Vec<Alternative>>,
    pub provides: Vec<Alternative>,
}

/// Every candidate of an index, by name, and who provides what.
pub struct Universe {
    by_name: HashMap<String, Vec<Candidate>>,
    providers: HashMap<String, Vec<(String, Option<String>)>>,
}

/// Why a request cannot be resolved against an index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("{package}: {field}: {source}")]
    Field {
        package: String,
        field: &'static str,
        #[source]
        source: super::control::ControlError,
    },
    #[error("{package}: the index gives no Filename or SHA256")]
    NoFile { package: String },
    #[error("package `{package}` has no version {version} (the index has {available})")]
    NoSuchVersion {
        package: String,
        version: String,
        available: String,
    },
    #[error("`{package}` is a virtual package; name one of: {providers}")]
    Virtual { package: String, providers: String },
    #[error("no package `{package}` in the index")]
    NoSuchPackage { package: String },
    #[error("`{package}` is wanted at {first} and at {second}")]
    TwoVersions {
        package: String,
        first: String,
        second: String,
    },
    #[error("`{package}` depends on {dependency}, which no package in the index satisfies")]
    Unsatisfiable { package: String, dependency: String },
}

impl Universe {
    /// Builds the universe from `Packages` stanzas for `arch` (and `all`).
    pub fn new(stanzas: Vec<Stanza>, arch: &str) -> Result<Universe, ResolveError> {
        let mut by_name: HashMap<String, Vec<Candidate>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for s in stanzas {
            let get = |k: &str| s.get(k).cloned().unwrap_or_default();
            let pkg_arch = get("Architecture");
            if pkg_arch != arch && pkg_arch != "all" {
                continue;
            }
            let name = get("Package");
            let mut depends = Vec::new();
            for field in ["Pre-Depends", "Depends"] {
                if let Some(v) = s.get(field) {
                    depends.extend(dependencies(v).map_err(|source| ResolveError::Field {
                        package: name.clone(),
                        field,
                        source,
                    })?);
                }
            }
            let provides: Vec<Alternative> = match s.get("Provides") {
                Some(v) => dependencies(v)
                    .map_err(|source| ResolveError::Field {
                        package: name.clone(),
                        field: "Provides",
                        source,
                    })?
                    .into_iter()
                    .flatten()
                    .collect(),
                None => Vec::new(),
            };
            for p in &provides {
                providers
                    .entry(p.name.clone())
                    .or_default()
                    .push((name.clone(), p.version.as_ref().map(|(_, v)| v.clone())));
            }
            let candidate = Candidate {
                version: get("Version"),
                arch: pkg_arch,
                filename: get("Filename"),
                sha256: get("SHA256"),
                size: get("Size").parse().unwrap_or(0),
                priority: get("Priority"),
                essential: get("Essential") == "yes",
                depends,
                provides,
                name: name.clone(),
            };
            if candidate.filename.is_empty() || candidate.sha256.len() != 64 {
                return Err(ResolveError::NoFile { package: name });
            }
            by_name.entry(name).or_default().push(candidate);
        }
        // Newest first, so the first match is the one apt would pick.
        for list in by_name.values_mut() {
            list.sort_by(|a, b| compare_versions(&b.version, &a.version));
        }
        for list in providers.values_mut() {
            list.sort();
            list.dedup();
        }
        Ok(Universe { by_name, providers })
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The newest candidate of `name` satisfying the alternative's constraint.
    fn real(&self, alt: &Alternative) -> Option<&Candidate> {
        self.by_name.get(&alt.name)?.iter().find(|c| match &alt.version {
            Some((rel, v)) => satisfies(&c.version, *rel, v),
            None => true,
        })
    }

    /// Packages that provide `alt` (an unversioned `Provides` satisfies only
    /// unversioned dependencies).
    fn virtual_providers(&self, alt: &Alternative) -> Vec<&Candidate> {
        let Some(list) = self.providers.get(&alt.name) else {
            return Vec::new();
        };
        list.iter()
            .filter(|(_, provided)| match (&alt.version, provided) {
                (None, _) => true,
                (Some((rel, v)), Some(p)) => satisfies(p, *rel, v),
                (Some(_), None) => false,
            })
            .filter_map(|(name, _)| self.by_name.get(name)?.first())
            .collect()
    }
}

/// Is `alt` satisfied by something already chosen?
fn satisfied(alt: &Alternative, chosen: &BTreeMap<String, Candidate>) -> bool {
    if let Some(c) = chosen.get(&alt.name) {
        if alt
            .version
            .as_ref()
            .is_none_or(|(rel, v)| satisfies(&c.version, *rel, v))
        {
            return true;
        }
    }
    chosen.values().any(|c| {
        c.provides.iter().any(|p| {
            p.name == alt.name
                && match (&alt.version, &p.version) {
                    (None, _) => true,
                    (Some((rel, v)), Some((_, pv))) => satisfies(pv, *rel, v),
                    (Some(_), None) => false,
                }
        })
    })
}

/// Debian priorities, most important first.
fn rank(priority: &str) -> u8 {
    match priority {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

/// Which base set a variant starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Priority `required` (like debootstrap's minbase / mmdebstrap's required).
    Required,
    /// `Essential: yes` only.
    Essential,
}

/// What resolving chose: every package, and which of them make up the base
/// set (the variant's closure alone, which every request of the suite shares).
#[derive(Debug)]
pub struct Resolution {
    pub packages: Vec<Candidate>,
    pub base: BTreeSet<String>,
}

/// Resolves the closure: first the variant's base set, then the requested
/// packages on top of it (so the base set is the same whatever is asked for).
/// The error names the package whose dependency cannot be met, and the
/// dependency.
pub fn resolve(universe: &Universe, variant: Variant, requested: &[String]) -> Result<Resolution, ResolveError> {
    let mut chosen: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut queue: Vec<(Candidate, String)> = Vec::new();
    let mut base: Vec<&Candidate> = universe
        .by_name
        .values()
        .filter_map(|list| list.first())
        .filter(|c| match variant {
            Variant::Required => c.priority == "required" || c.essential,
            Variant::Essential => c.essential,
        })
        .collect();
    base.sort_by(|a, b| a.name.cmp(&b.name));
    for c in base {
        queue.push((c.clone(), format!("the {variant:?} set").to_lowercase()));
    }
    close(universe, &mut chosen, queue)?;
    let base: BTreeSet<String> = chosen.keys().cloned().collect();
    let mut queue = Vec::new();
    for r in requested {
        let (name, version) = match r.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (r.trim(), None),
        };
        let alt = Alternative {
            name: name.to_string(),
            version: version.map(|v| (super::control::Relation::Eq, v.to_string())),
        };
        let candidate = universe
            .real(&alt)
            .or_else(|| {
                let providers = universe.virtual_providers(&alt);
                (providers.len() == 1).then(|| providers[0])
            })
            .ok_or_else(|| match (universe.by_name.get(name), version) {
                (Some(list), Some(v)) => ResolveError::NoSuchVersion {
                    package: name.to_string(),
                    version: v.to_string(),
                    available: list.iter().map(|c| c.version.as_str()).collect::<Vec<_>>().join(", "),
                },
                _ if !universe.virtual_providers(&alt).is_empty() => ResolveError::Virtual {
                    package: name.to_string(),
                    providers: universe
                        .virtual_providers(&alt)
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                _ => ResolveError::NoSuchPackage {
                    package: name.to_string(),
                },
            })?;
        queue.push((candidate.clone(), "the request".into()));
    }
    close(universe, &mut chosen, queue)?;
    Ok(Resolution {
        packages: chosen.into_values().collect(),
        base,
    })
}

/// Adds `queue` and its dependencies to `chosen`, breadth first in a fixed
/// order: the same input gives the same choices.
fn close(
    universe: &Universe,
    chosen: &mut BTreeMap<String, Candidate>,
    mut queue: Vec<(Candidate, String)>,
) -> Result<(), ResolveError> {
    let mut next = 0;
    while next < queue.len() {
        let (candidate, _) = queue[next].clone();
        next += 1;
        if let Some(existing) = chosen.get(&candidate.name) {
            if existing.version != candidate.version {
                return Err(ResolveError::TwoVersions {
                    package: candidate.name.clone(),
                    first: existing.version.clone(),
                    second: candidate.version.clone(),
                });
            }
            continue;
        }
        chosen.insert(candidate.name.clone(), candidate.clone());
        for group in &candidate.depends {
            if group.iter().any(|alt| satisfied(alt, chosen)) {
                continue;
            }
            // Something already queued may satisfy it.
            let queued: BTreeMap<String, Candidate> =
                queue[next..].iter().map(|(c, _)| (c.name.clone(), c.clone())).collect();
            if group.iter().any(|alt| satisfied(alt, &queued)) {
                continue;
            }
            let pick = group.iter().find_map(|alt| {
                universe.real(alt).cloned().or_else(|| {
                    // Like apt: the provider of the highest priority, then by name.
                    let mut providers = universe.virtual_providers(alt);
                    providers.sort_by(|a, b| (rank(&a.priority), &a.name).cmp(&(rank(&b.priority), &b.name)));
                    providers.first().map(|c| (*c).clone())
                })
            });
            match pick {
                Some(c) => queue.push((c, candidate.name.clone())),
                None => {
                    return Err(ResolveError::Unsatisfiable {
                        package: candidate.name.clone(),
                        dependency: group.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" | "),
                    })
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::control::stanzas;

    fn universe() -> Universe {
        let text = "\
Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nPriority: optional\nFilename: pool/l/libc6.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000001\nSize: 1\n\n\
Package: base-files\nVersion: 12.4\nArchitecture: amd64\nPriority: required\nEssential: yes\nDepends: libc6 (>= 2.34)\nFilename: pool/b/base-files.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000002\nSize: 1\n\n\
Package: web\nVersion: 1.0\nArchitecture: amd64\nPriority: optional\nDepends: httpd-cgi | nothing, libc6 (>= 2.40) | libc6\nPre-Depends: mawk | awk\nFilename: pool/w/web.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000003\nSize: 1\n\n\
Package: mawk\nVersion: 1.3\nArchitecture: amd64\nPriority: required\nProvides: awk\nFilename: pool/m/mawk.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000004\nSize: 1\n\n\
Package: cgi-a\nVersion: 1\nArchitecture: all\nPriority: optional\nProvides: httpd-cgi\nFilename: pool/c/cgi-a.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000005\nSize: 1\n\n\
Package: broken\nVersion: 1\nArchitecture: amd64\nPriority: optional\nDepends: libc6 (>= 3.0)\nFilename: pool/x/broken.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000006\nSize: 1\n\n\
Package: arm-only\nVersion: 1\nArchitecture: arm64\nPriority: required\nFilename: pool/a/arm.deb\nSHA256: 0000000000000000000000000000000000000000000000000000000000000007\nSize: 1\n";
        Universe::new(stanzas(text), "amd64").unwrap()
    }

    fn names(r: &Resolution) -> Vec<&str> {
        r.packages.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn required_set_and_requests_close_over_dependencies() {
        let u = universe();
        let base = resolve(&u, Variant::Required, &[]).unwrap();
        assert_eq!(names(&base), ["base-files", "libc6", "mawk"]);
        let essential = resolve(&u, Variant::Essential, &[]).unwrap();
        assert_eq!(names(&essential), ["base-files", "libc6"]);
        // Virtual packages and alternatives: httpd-cgi via its provider,
        // the second alternative where the first cannot be met, awk via mawk.
        let web = resolve(&u, Variant::Essential, &["web".into()]).unwrap();
        assert_eq!(names(&web), ["base-files", "cgi-a", "libc6", "mawk", "web"]);
        // The base set is the variant's closure, whatever else is asked for.
        assert_eq!(web.base, essential.base);
        assert_eq!(web.base.iter().collect::<Vec<_>>(), ["base-files", "libc6"]);
    }

    #[test]
    fn unsatisfiable_requests_name_the_package_and_the_dependency() {
        let u = universe();
        let e = resolve(&u, Variant::Required, &["broken".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`broken` depends on libc6 (>= 3.0), which no package in the index satisfies"
        );
        let e = resolve(&u, Variant::Required, &["nope".into()]).unwrap_err();
        assert_eq!(e, ResolveError::NoSuchPackage { package: "nope".into() });
        let e = resolve(&u, Variant::Required, &["web=2.0".into()]).unwrap_err();
        assert!(
            matches!(&e, ResolveError::NoSuchVersion { version, .. } if version == "2.0"),
            "{e}"
        );
        let e = resolve(&u, Variant::Required, &["awk".into()]).unwrap();
        assert!(names(&e).contains(&"mawk"));
    }
}
