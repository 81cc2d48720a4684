//! Choosing packages as apt does: the closure of the base set (priority
//! `required`, or `Essential: yes` only) and the requested packages under
//! `Pre-Depends` and `Depends` (and `Recommends` when asked), with version
//! constraints, alternatives, virtual packages and versioned `Provides`.
//! Plain dependencies are followed first; an alternative (`a | b`) is
//! decided afterwards, so one that is already selected, or that something
//! else requires, wins; otherwise the first installable one (not in
//! conflict with what is chosen). `Conflicts` and `Breaks` are checked; an
//! error names the chain of dependencies that led to it. Deterministic: the
//! same index and request always give the same set.

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
    pub recommends: Vec<Vec<Alternative>>,
    pub provides: Vec<Alternative>,
    /// `Conflicts` and `Breaks`: neither may be installed beside it.
    pub conflicts: Vec<Alternative>,
    /// The suite whose index lists it (`bookworm-security`).
    pub suite: String,
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
    #[error("`{package}` ({chain}) depends on {dependency}, which no package in the index satisfies")]
    Unsatisfiable {
        package: String,
        dependency: String,
        /// How the package came in: `the request → web → broken`.
        chain: String,
    },
    /// `{package}` (how it came in) conflicts with `{other}` (how it came in): the relation.
    #[error("{text}")]
    Conflict {
        package: String,
        other: String,
        text: String,
    },
}

impl Universe {
    /// Builds the universe from `Packages` stanzas for `arch` (and `all`).
    pub fn new(stanzas: Vec<Stanza>, arch: &str) -> Result<Universe, ResolveError> {
        Universe::of_suites(vec![(String::new(), stanzas)], arch)
    }

    /// The universe of several suites' indexes (the suite first, then its
    /// overlays): each package's newest version across them comes first; an
    /// equal version keeps the earlier suite's.
    pub fn of_suites(suites: Vec<(String, Vec<Stanza>)>, arch: &str) -> Result<Universe, ResolveError> {
        let mut by_name: HashMap<String, Vec<Candidate>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for (suite, s) in suites
            .into_iter()
            .flat_map(|(suite, list)| list.into_iter().map(move |s| (suite.clone(), s)))
        {
            let get = |k: &str| s.get(k).cloned().unwrap_or_default();
            let pkg_arch = get("Architecture");
            if pkg_arch != arch && pkg_arch != "all" {
                continue;
            }
            let name = get("Package");
            let groups = |fields: &[&'static str]| -> Result<Vec<Vec<Alternative>>, ResolveError> {
                let mut out = Vec::new();
                for &field in fields {
                    if let Some(v) = s.get(field) {
                        out.extend(dependencies(v).map_err(|source| ResolveError::Field {
                            package: name.clone(),
                            field,
                            source,
                        })?);
                    }
                }
                Ok(out)
            };
            let depends = groups(&["Pre-Depends", "Depends"])?;
            let recommends = groups(&["Recommends"])?;
            let provides: Vec<Alternative> = groups(&["Provides"])?.into_iter().flatten().collect();
            let conflicts: Vec<Alternative> = groups(&["Conflicts", "Breaks"])?.into_iter().flatten().collect();
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
                recommends,
                provides,
                conflicts,
                suite,
                name: name.clone(),
            };
            if candidate.filename.is_empty() || !super::is_sha256_hex(&candidate.sha256) {
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
            .filter(|(_, provided)| provision_meets(alt, provided.as_deref()))
            .filter_map(|(name, _)| self.by_name.get(name)?.first())
            .collect()
    }
}

/// Does a `Provides` of `alt.name` at `provided` (unversioned: `None`)
/// meet `alt`? An unversioned one meets only unversioned relations.
fn provision_meets(alt: &Alternative, provided: Option<&str>) -> bool {
    match (&alt.version, provided) {
        (None, _) => true,
        (Some((rel, v)), Some(p)) => satisfies(p, *rel, v),
        (Some(_), None) => false,
    }
}

/// Is `alt` satisfied by something already chosen?
fn satisfied(alt: &Alternative, chosen: &BTreeMap<String, Candidate>) -> bool {
    chosen.values().any(|c| hits(alt, c))
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

/// What to resolve besides the requested packages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Follow `Recommends` of the requested packages and what they pull in
    /// (a recommendation nothing satisfies is skipped, as apt does).
    pub recommends: bool,
}

/// The package strata's merged-/usr layout asserts: debootstrap adds it to
/// the base set of such a system, so `usrmerge | usr-is-merged` is met
/// without usrmerge (and the perl it needs).
const MERGED_USR: &str = "usr-is-merged";

/// Resolves the closure: first the variant's base set, then the requested
/// packages on top of it (so the base set is the same whatever is asked for).
pub fn resolve(universe: &Universe, variant: Variant, requested: &[String]) -> Result<Resolution, ResolveError> {
    resolve_with(universe, variant, requested, Options::default())
}

/// [`resolve`] with `opts`. The error names the package whose dependency
/// cannot be met (or the two that conflict) and how each came in.
pub fn resolve_with(
    universe: &Universe,
    variant: Variant,
    requested: &[String],
    opts: Options,
) -> Result<Resolution, ResolveError> {
    let mut state = Closure {
        universe,
        chosen: BTreeMap::new(),
        why: BTreeMap::new(),
        recommends: false,
    };
    let mut base: Vec<&Candidate> = universe
        .by_name
        .values()
        .filter_map(|list| list.first())
        .filter(|c| match variant {
            Variant::Required => c.priority == "required" || c.essential,
            Variant::Essential => c.essential,
        })
        .collect();
    if let Some(merged) = universe.by_name.get(MERGED_USR).and_then(|l| l.first()) {
        base.push(merged);
    }
    base.sort_by(|a, b| a.name.cmp(&b.name));
    base.dedup_by(|a, b| a.name == b.name);
    let set = format!("the {variant:?} set").to_lowercase();
    state.close(base.into_iter().map(|c| (c.clone(), set.clone())).collect())?;
    let base: BTreeSet<String> = state.chosen.keys().cloned().collect();
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
    state.recommends = opts.recommends;
    state.close(queue)?;
    state.check_conflicts()?;
    Ok(Resolution {
        packages: state.chosen.into_values().collect(),
        base,
    })
}

/// A closure being built: what is chosen, and who pulled each package in.
struct Closure<'a> {
    universe: &'a Universe,
    chosen: BTreeMap<String, Candidate>,
    /// Package → the package (or "the request", "the required set") that pulled it in.
    why: BTreeMap<String, String>,
    /// Follow `Recommends` of what is added now.
    recommends: bool,
}

impl Closure<'_> {
    /// `the request → web → name`.
    fn chain(&self, name: &str) -> String {
        let mut path = vec![name.to_string()];
        let mut at = name;
        while let Some(parent) = self.why.get(at) {
            path.push(parent.clone());
            if path.len() > 32 || !self.why.contains_key(parent.as_str()) {
                break;
            }
            at = parent;
        }
        path.reverse();
        path.join(" → ")
    }

    /// Can `c` join what is chosen: no `Conflicts`/`Breaks` either way?
    fn installable(&self, c: &Candidate) -> bool {
        self.chosen
            .values()
            .filter(|o| o.name != c.name)
            .all(|o| !c.conflicts.iter().any(|alt| hits(alt, o)) && !o.conflicts.iter().any(|alt| hits(alt, c)))
    }

    /// Adds `queue` and its dependencies, breadth first in a fixed order.
    /// Plain dependencies first; alternatives once nothing else is left, so
    /// that one already chosen or required by another package wins.
    fn close(&mut self, mut queue: Vec<(Candidate, String)>) -> Result<(), ResolveError> {
        let mut deferred: Vec<(String, Vec<Alternative>, bool)> = Vec::new();
        let mut next = 0;
        loop {
            while next < queue.len() {
                let (candidate, parent) = queue[next].clone();
                next += 1;
                if let Some(existing) = self.chosen.get(&candidate.name) {
                    if existing.version != candidate.version {
                        return Err(ResolveError::TwoVersions {
                            package: candidate.name.clone(),
                            first: existing.version.clone(),
                            second: candidate.version.clone(),
                        });
                    }
                    continue;
                }
                self.why.insert(candidate.name.clone(), parent);
                self.chosen.insert(candidate.name.clone(), candidate.clone());
                let recommended: &[Vec<Alternative>] = if self.recommends { &candidate.recommends } else { &[] };
                for (group, required) in candidate
                    .depends
                    .iter()
                    .map(|g| (g, true))
                    .chain(recommended.iter().map(|g| (g, false)))
                {
                    if group.len() > 1 {
                        deferred.push((candidate.name.clone(), group.clone(), required));
                        continue;
                    }
                    if let Some(c) = self.pick(group, &queue[next..], required, &candidate.name)? {
                        queue.push((c, candidate.name.clone()));
                    }
                }
            }
            if deferred.is_empty() {
                return Ok(());
            }
            // The first alternative met; then what it pulls in, before the next.
            let (owner, group, required) = deferred.remove(0);
            if let Some(c) = self.pick(&group, &queue[next..], required, &owner)? {
                queue.push((c, owner));
            }
        }
    }

    /// What satisfies `group` for `owner`: nothing when something chosen or
    /// queued already does; else the first alternative that is installable
    /// (a real package, or the provider of the highest priority, then by
    /// name). A required group nothing satisfies is an error.
    fn pick(
        &self,
        group: &[Alternative],
        queued: &[(Candidate, String)],
        required: bool,
        owner: &str,
    ) -> Result<Option<Candidate>, ResolveError> {
        if group.iter().any(|alt| satisfied(alt, &self.chosen)) {
            return Ok(None);
        }
        let queued: BTreeMap<String, Candidate> = queued.iter().map(|(c, _)| (c.name.clone(), c.clone())).collect();
        if group.iter().any(|alt| satisfied(alt, &queued)) {
            return Ok(None);
        }
        let pick = group.iter().find_map(|alt| {
            let real = self.universe.real(alt).filter(|c| self.installable(c)).cloned();
            real.or_else(|| {
                let mut providers = self.universe.virtual_providers(alt);
                providers.retain(|c| self.installable(c));
                providers.sort_by(|a, b| (rank(&a.priority), &a.name).cmp(&(rank(&b.priority), &b.name)));
                providers.first().map(|c| (*c).clone())
            })
        });
        match pick {
            Some(c) => Ok(Some(c)),
            None if !required => Ok(None),
            None => Err(ResolveError::Unsatisfiable {
                package: owner.to_string(),
                dependency: group.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" | "),
                chain: self.chain(owner),
            }),
        }
    }

    /// Every chosen pair checked against each other's `Conflicts`/`Breaks`.
    fn check_conflicts(&self) -> Result<(), ResolveError> {
        for c in self.chosen.values() {
            for other in self.chosen.values().filter(|o| o.name != c.name) {
                if let Some(rel) = c.conflicts.iter().find(|alt| hits(alt, other)) {
                    return Err(ResolveError::Conflict {
                        package: c.name.clone(),
                        other: other.name.clone(),
                        text: format!(
                            "`{}` ({}) conflicts with `{}` ({}): Conflicts/Breaks: {rel}",
                            c.name,
                            self.chain(&c.name),
                            other.name,
                            self.chain(&other.name)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Does the relation `alt` (a dependency, or a `Conflicts`/`Breaks` entry)
/// name `c`: by its name and version, or by what it provides?
fn hits(alt: &Alternative, c: &Candidate) -> bool {
    let by_name = alt.name == c.name
        && alt
            .version
            .as_ref()
            .is_none_or(|(rel, v)| satisfies(&c.version, *rel, v));
    by_name
        || c.provides
            .iter()
            .any(|p| p.name == alt.name && provision_meets(alt, p.version.as_ref().map(|(_, v)| v.as_str())))
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
            "`broken` (the request → broken) depends on libc6 (>= 3.0), which no package in the index satisfies"
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

    /// A universe from short stanzas: `name version [Field: value]…`, one
    /// per line, fields separated by `; `.
    fn small(lines: &[&str]) -> Universe {
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            let mut parts = line.split("; ");
            let head = parts.next().unwrap();
            let (name, version) = head.split_once(' ').unwrap();
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: pool/{name}.deb\nSHA256: {:064x}\nSize: 1\n",
                i + 1
            ));
            let mut priority = "optional";
            for field in parts {
                if let Some(p) = field.strip_prefix("Priority: ") {
                    priority = p;
                    continue;
                }
                text.push_str(field);
                text.push('\n');
            }
            text.push_str(&format!("Priority: {priority}\n\n"));
        }
        Universe::new(stanzas(&text), "amd64").unwrap()
    }

    fn extra(u: &Universe, request: &[&str], opts: Options) -> Result<Vec<String>, ResolveError> {
        let request: Vec<String> = request.iter().map(|s| s.to_string()).collect();
        let r = resolve_with(u, Variant::Essential, &request, opts)?;
        Ok(r.packages
            .into_iter()
            .map(|c| c.name)
            .filter(|n| !r.base.contains(n))
            .collect())
    }

    #[test]
    fn an_alternative_already_chosen_or_required_elsewhere_wins_over_the_first() {
        let u = small(&[
            "a 1; Depends: x | y, z",
            "z 1; Depends: y",
            "x 1",
            "y 1",
            "b 1; Depends: x | y",
        ]);
        // z requires y; a's `x | y` is decided after it: y, and no x.
        assert_eq!(extra(&u, &["a"], Options::default()).unwrap(), ["a", "y", "z"]);
        // Nothing else requires either: the first.
        assert_eq!(extra(&u, &["b"], Options::default()).unwrap(), ["b", "x"]);
        // Asked for by name, y is already chosen when b's group is decided.
        assert_eq!(extra(&u, &["b", "y"], Options::default()).unwrap(), ["b", "y"]);
    }

    #[test]
    fn merged_usr_is_asserted_so_usrmerge_and_its_perl_stay_out() {
        let u = small(&[
            "init-system-helpers 1.65; Priority: required; Essential: yes; Depends: usrmerge | usr-is-merged",
            "usrmerge 37; Depends: perl",
            "perl 5.36",
            "usr-is-merged 37",
        ]);
        let r = resolve(&u, Variant::Essential, &[]).unwrap();
        assert_eq!(names(&r), ["init-system-helpers", "usr-is-merged"]);
    }

    #[test]
    fn conflicts_and_breaks_rule_out_an_alternative_or_fail_naming_both_chains() {
        let u = small(&[
            "a 1; Depends: x | y",
            "x 1; Conflicts: base",
            "y 1",
            "base 1; Priority: required; Essential: yes",
            "p 1; Depends: q",
            "q 1; Breaks: r (<< 2)",
            "r 1",
            "s 1; Depends: r2",
            "r2 1; Provides: r (= 1)",
        ]);
        // x conflicts with the base: the next alternative.
        assert_eq!(extra(&u, &["a"], Options::default()).unwrap(), ["a", "y"]);
        let e = extra(&u, &["p", "r"], Options::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`q` (the request → p → q) conflicts with `r` (the request → r): Conflicts/Breaks: r (<< 2)"
        );
        // A versioned Provides is hit by a versioned Breaks.
        let e = extra(&u, &["p", "s"], Options::default()).unwrap_err();
        assert!(
            matches!(&e, ResolveError::Conflict { other, .. } if other == "r2"),
            "{e}"
        );
    }

    #[test]
    fn versioned_provides_meet_only_what_they_provide() {
        let u = small(&[
            "app 1; Depends: virt (>= 2)",
            "old 1; Provides: virt",
            "new 1; Provides: virt (= 2)",
            "plain 1; Depends: virt",
        ]);
        assert_eq!(extra(&u, &["app"], Options::default()).unwrap(), ["app", "new"]);
        // An unversioned dependency takes either; the name decides.
        assert_eq!(extra(&u, &["plain"], Options::default()).unwrap(), ["new", "plain"]);
    }

    #[test]
    fn recommends_are_followed_only_when_asked_and_a_missing_one_is_skipped() {
        let u = small(&["app 1; Recommends: helper, missing", "helper 1; Depends: lib", "lib 1"]);
        assert_eq!(extra(&u, &["app"], Options::default()).unwrap(), ["app"]);
        let with = extra(&u, &["app"], Options { recommends: true }).unwrap();
        assert_eq!(with, ["app", "helper", "lib"]);
    }

    #[test]
    fn an_unsatisfiable_dependency_names_the_chain_that_needs_it() {
        let u = small(&["web 1; Depends: mid", "mid 1; Depends: gone (>= 2)"]);
        let e = extra(&u, &["web"], Options::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`mid` (the request → web → mid) depends on gone (>= 2), which no package in the index satisfies"
        );
    }
}
