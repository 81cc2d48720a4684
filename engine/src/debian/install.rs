//! Installing a `debian()` base: install rounds (essential closure first,
//! `Pre-Depends` configured before their users), the essential packages
//! extracted, then dpkg in the sandbox with the network off; two layers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::path::{Path, PathBuf};

use super::control::{dependencies, Stanza};
use crate::error::{Error, Result};
use crate::graph::{DebianBase, Node};
use crate::image::{self, History, ImageConfig};
use crate::lock::DebianSet;
use crate::step::ExecCtx;
use crate::store::{LayerRef, Record};
use crate::sys::confined::{self, Attrs, Policy, Tree};

use serde::{Deserialize, Serialize};

use super::fetch::{deb_path, download};
use super::{control, deb, DEBS_IN_SANDBOX, KEYRING, PATH};

/// Names in `names` that `group` (one dependency's alternatives) can mean,
/// through `provides` (virtual name → providers).
fn members<'a>(
    group: &'a [control::Alternative],
    names: &'a BTreeSet<String>,
    provides: &'a HashMap<String, Vec<String>>,
) -> impl Iterator<Item = String> + 'a {
    group.iter().flat_map(move |alt| {
        let mut v: Vec<String> = Vec::new();
        if names.contains(&alt.name) {
            v.push(alt.name.clone());
        }
        v.extend(provides.get(&alt.name).into_iter().flatten().cloned());
        v
    })
}

/// Packages that cannot be put in install rounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoundsError {
    /// Packages that pre-depend on each other: none can be configured first.
    #[error("the packages {0} pre-depend on each other in a cycle: none of them can be configured first")]
    PreDependsCycle(String),
}

/// The install plan: round 0 is the essential closure (extracted first, then installed
/// with dependency checks relaxed, as debootstrap and mmdebstrap do), then
/// the rest in rounds so that every package's `Pre-Depends` are configured
/// before it is unpacked and its `Depends` are installed with it or before.
fn rounds(controls: &BTreeMap<String, Stanza>) -> std::result::Result<Vec<Vec<String>>, RoundsError> {
    let names: BTreeSet<String> = controls.keys().cloned().collect();
    let mut provides: HashMap<String, Vec<String>> = HashMap::new();
    for (name, c) in controls {
        for alt in c
            .get("Provides")
            .and_then(|v| dependencies(v).ok())
            .into_iter()
            .flatten()
            .flatten()
        {
            provides.entry(alt.name).or_default().push(name.clone());
        }
    }
    let deps = |name: &str, fields: &[&str]| -> Vec<String> {
        let c = &controls[name];
        fields
            .iter()
            .filter_map(|f| c.get(*f))
            .filter_map(|v| dependencies(v).ok())
            .flatten()
            .flat_map(|group| members(&group, &names, &provides).collect::<Vec<_>>())
            .collect()
    };
    let mut essential: BTreeSet<String> = controls
        .iter()
        .filter(|(_, c)| c.get("Essential").is_some_and(|v| v == "yes"))
        .map(|(n, _)| n.clone())
        .collect();
    let mut queue: Vec<String> = essential.iter().cloned().collect();
    while let Some(n) = queue.pop() {
        for d in deps(&n, &["Pre-Depends", "Depends"]) {
            if essential.insert(d.clone()) {
                queue.push(d);
            }
        }
    }
    // Pre-Depends must be configured in an earlier round (weight 1); Depends
    // in the same round at the latest (weight 0: dpkg orders one invocation
    // itself, so a cycle of Depends is fine inside one round).
    let rest: Vec<&String> = names.iter().filter(|n| !essential.contains(*n)).collect();
    let mut graph: DiGraph<&str, usize> = DiGraph::new();
    let index: HashMap<&str, NodeIndex> = rest.iter().map(|n| (n.as_str(), graph.add_node(n.as_str()))).collect();
    for n in &rest {
        for (fields, weight) in [(&["Pre-Depends"][..], 1), (&["Depends"][..], 0)] {
            for d in deps(n, fields) {
                if let Some(&from) = index.get(d.as_str()) {
                    graph.update_edge(from, index[n.as_str()], weight);
                }
            }
        }
    }
    // Strongly connected components come out in reverse topological order.
    let mut round: BTreeMap<String, usize> = BTreeMap::new();
    let mut of_node: HashMap<NodeIndex, usize> = HashMap::new();
    for component in tarjan_scc(&graph).into_iter().rev() {
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        let mut need = 1;
        for &m in &component {
            for edge in graph.edges_directed(m, Direction::Incoming) {
                if members.contains(&edge.source()) {
                    if *edge.weight() > 0 {
                        let mut cycle: Vec<&str> = component.iter().map(|&i| graph[i]).collect();
                        cycle.sort_unstable();
                        return Err(RoundsError::PreDependsCycle(cycle.join(", ")));
                    }
                } else {
                    need = need.max(of_node[&edge.source()] + edge.weight());
                }
            }
        }
        for &m in &component {
            of_node.insert(m, need);
            round.insert(graph[m].to_string(), need);
        }
    }
    let last = round.values().copied().max().unwrap_or(0);
    let mut out = vec![essential.into_iter().collect::<Vec<_>>()];
    for r in 1..=last {
        let this: Vec<String> = round.iter().filter(|(_, v)| **v == r).map(|(n, _)| n.clone()).collect();
        if !this.is_empty() {
            out.push(this);
        }
    }
    Ok(out)
}

/// Files that record when or in what order things happened, not what was installed.
const UNREPRODUCIBLE: &[&str] = &[
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
    "/var/log/bootstrap.log",
    "/var/log/apt/history.log",
    "/var/log/apt/term.log",
    "/var/log/apt/eipp.log.xz",
    "/var/cache/ldconfig/aux-cache",
    "/var/lib/dpkg/status-old",
    "/var/lib/dpkg/available-old",
    "/var/lib/dpkg/diversions-old",
    "/var/lib/dpkg/statoverride-old",
    "/var/cache/debconf/config.dat-old",
    "/var/cache/debconf/templates.dat-old",
    "/var/cache/debconf/passwords.dat-old",
];

/// Writes strata's own file `rel` into the base being assembled (its
/// directories made as needed), through the same confined writer as the
/// packages: a directory a package made a symlink is refused, not followed.
fn write_file(tree: &mut Tree, rel: impl AsRef<Path>, content: &[u8], mode: u32) -> Result<()> {
    let rel = rel.as_ref();
    let root = Attrs::new(0o755, 0, 0);
    tree.parents(rel, root)
        .and_then(|()| tree.write(rel, &mut &content[..], Attrs::new(mode, 0, 0)))
        .map(|_| ())
        .map_err(Error::io("write", tree.path().join(rel)))
}

/// The environment of dpkg in the sandbox.
fn dpkg_env(ctx: &ExecCtx<'_>) -> Vec<String> {
    vec![
        format!("PATH={PATH}"),
        "DEBIAN_FRONTEND=noninteractive".into(),
        "DEBCONF_NONINTERACTIVE_SEEN=true".into(),
        "LC_ALL=C.UTF-8".into(),
        "HOME=/root".into(),
        format!("SOURCE_DATE_EPOCH={}", ctx.opts.epoch),
    ]
}

/// dpkg's excludes of a slim base, as the official `debian:*-slim` images
/// have them (debuerreotype's slimify): documentation but its copyright
/// files, man pages, info, groff and lintian data, and translations but
/// those of `locales`. Kept in the image, so packages a later step installs
/// are slim too.
fn slim_excludes(locales: &[String]) -> String {
    let mut text = String::from(
        "# A slim base, as debian:*-slim: strata's debian(…, #{ docs: true }) keeps these.\n\
         path-exclude /usr/share/doc/*\n\
         path-include /usr/share/doc/*/copyright\n\
         path-exclude /usr/share/groff/*\n\
         path-exclude /usr/share/info/*\n\
         path-exclude /usr/share/linda/*\n\
         path-exclude /usr/share/lintian/overrides/*\n\
         path-exclude /usr/share/locale/*\n\
         path-exclude /usr/share/man/*\n",
    );
    for locale in locales {
        text.push_str(&format!("path-include /usr/share/locale/{locale}/*\n"));
    }
    text
}
const SLIM_EXCLUDES_FILE: &str = "etc/dpkg/dpkg.cfg.d/excludes";

/// apt's configuration in every base, as in Docker's Debian images:
/// no package cache files. apt leaves uninitialised padding in them (a
/// byte of a heap address, which address-space randomisation changes from
/// run to run), so any step that ran apt would make a different layer each
/// time; the cache is rebuilt in memory when apt needs it.
const APT_CONF_FILE: &str = "etc/apt/apt.conf.d/strata-reproducible";
const APT_CONF: &str = "\
// Written by strata's debian(): apt builds its package cache in memory,
// because the files it would write hold bytes that change with every run.
Dir::Cache::pkgcache \"\";
Dir::Cache::srcpkgcache \"\";
";

/// What the excludes remove from files written before dpkg read them (the
/// essential packages strata extracts itself).
fn slim_cleanup(locales: &[String]) -> String {
    let kept: String = locales.iter().map(|l| format!(" ! -name '{l}'")).collect();
    format!(
        "find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete\n\
         find /usr/share/doc -mindepth 1 -depth -type d -empty -delete\n\
         rm -rf /usr/share/groff/* /usr/share/info/* /usr/share/linda/* /usr/share/lintian/overrides/* /usr/share/man/*\n\
         find /usr/share/locale -mindepth 1 -maxdepth 1{kept} -exec rm -rf {{}} +\n"
    )
}

/// The dpkg script for an install plan: round 0 (the essential closure)
/// with dependency checks relaxed, the others as they are; then the
/// services policy and the files that record dates go, and with `slim`
/// what dpkg's excludes leave out.
fn dpkg_script(plan: &[Vec<String>], policy_in_script: bool, slim: Option<&[String]>) -> String {
    let mut script = format!("set -e\ncd {DEBS_IN_SANDBOX}\n");
    if policy_in_script {
        script
            .push_str("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d\n");
    }
    for (i, round) in plan.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        let force = if i == 0 { " --force-depends" } else { "" };
        let list: Vec<String> = round.iter().map(|n| format!("{n}.deb")).collect();
        script.push_str(&format!("dpkg --install{force} {}\n", list.join(" ")));
    }
    script.push_str("dpkg --configure --pending\nrm -f /usr/sbin/policy-rc.d\n");
    if let Some(locales) = slim {
        script.push_str(&slim_cleanup(locales));
    }
    for f in UNREPRODUCIBLE {
        script.push_str(&format!("rm -f {f}\n"));
    }
    script
}

/// Hard links of the .debs `files` names under short names in `dir`, for the sandbox.
fn stage_debs(dir: &Path, files: &BTreeMap<String, PathBuf>) -> Result<()> {
    let mut tree = Tree::create(dir, 0o755, Policy::image(u64::MAX)).map_err(Error::io("create", dir))?;
    for (name, path) in files {
        let link = PathBuf::from(format!("{name}.deb"));
        let linked = tree
            .link_from(&link, path)
            .map_err(Error::io("link", dir.join(&link)))?;
        if !linked {
            tree.copy_from(&link, path, Attrs::new(0o644, 0, 0))
                .map_err(Error::io("copy", dir.join(&link)))?;
        }
    }
    Ok(())
}

/// Builds the base: the suite's base set as one layer (shared by every
/// `debian()` of that suite, and kept even by `--no-cache`, as an imported
/// base is), the requested packages as a second layer on top.
///
/// Each install is handed to `run`: [`install`] here, or a remote worker.
pub fn build(
    ctx: &ExecCtx<'_>,
    node: &Node,
    spec: &DebianBase,
    set: &DebianSet,
    run: &dyn Fn(&Install) -> Result<crate::digest::Digest>,
) -> Result<Record> {
    let store = ctx.store;
    download(ctx, spec, set)?;
    let debs = |names: &dyn Fn(&str) -> bool| -> BTreeMap<String, String> {
        set.packages
            .iter()
            .filter(|p| names(&p.name))
            .map(|p| (p.name.clone(), p.sha256.clone()))
            .collect()
    };
    let base: BTreeSet<&str> = if set.base.is_empty() {
        set.packages.iter().map(|p| p.name.as_str()).collect()
    } else {
        set.base.iter().map(String::as_str).collect()
    };
    let extras: Vec<&str> = set
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| !base.contains(n))
        .collect();

    // The base layer, found by what it is made of.
    let mut key = crate::key::KeyEncoder::new("debian-base-layer-v3");
    super::encode_origin(&mut key, spec, set);
    for p in set.packages.iter().filter(|p| base.contains(p.name.as_str())) {
        key.str(&p.name).str(&p.version).str(&p.sha256);
    }
    let base_key = key.u64(ctx.opts.epoch as u64).finish();
    let base_layer = {
        let _guard = store.lock(&format!("node-{}", base_key.hex()))?;
        match store.record(&base_key)? {
            Some(record) if record.layers.len() == 1 => record.layers[0].diff_id.clone(),
            _ => {
                let diff_id = run(&Install {
                    debs: debs(&|name| base.contains(name)),
                    lowers: Vec::new(),
                    base: Some(BaseSetup {
                        sources: apt_sources(set, &spec.components),
                        slim: (!spec.docs).then(|| spec.locales.clone()),
                    }),
                })?;
                let record = Record {
                    layers: vec![LayerRef {
                        diff_id: diff_id.clone(),
                    }],
                    config: None,
                    restored: None,
                };
                store.put_record(&base_key, &record)?;
                diff_id
            }
        }
    };
    let mut layers = vec![base_layer.clone()];
    if !extras.is_empty() {
        layers.push(run(&Install {
            debs: debs(&|name| !base.contains(name)),
            lowers: vec![base_layer.clone()],
            base: None,
        })?);
    }

    // The platform's names (arm/v7 for Debian's armhf).
    let mut config = ImageConfig::empty_for(&node.platform);
    config.created = Some(image::rfc3339(ctx.opts.epoch));
    config.config.env = Some(vec![format!("PATH={PATH}")]);
    config.config.cmd = Some(vec!["bash".into()]);
    let said = [
        format!("debian {} base set ({} packages)", set.suite, base.len()),
        format!("{} ({} more packages)", node.description, extras.len()),
    ];
    for (diff_id, created_by) in layers.iter().zip(said) {
        config.rootfs.diff_ids.push(diff_id.clone());
        config.history.push(History {
            created: config.created.clone(),
            created_by: Some(created_by),
            comment: Some("strata".into()),
            ..History::default()
        });
    }
    Ok(Record {
        layers: layers.into_iter().map(|diff_id| LayerRef { diff_id }).collect(),
        config: Some(config),
        restored: None,
    })
}

/// One dpkg install, everything it reads named by digest: a local build
/// runs it with [`install`]; a remote one sends it to a worker, which runs
/// the same function (so it is checked there again: see [`Install::check`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Install {
    /// The packages, each with its .deb's SHA256.
    pub debs: BTreeMap<String, String>,
    /// The layers dpkg runs on, bottom first (by diff id).
    pub lowers: Vec<crate::digest::Digest>,
    /// For the base set, what is prepared before dpkg runs; `None` for
    /// packages installed on top of it.
    pub base: Option<BaseSetup>,
}

/// The base set's preparation: essential packages extracted (merged
/// /usr), dpkg's database started, apt's sources written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BaseSetup {
    /// apt's `debian.sources`: the mirrors the base was made from.
    pub sources: String,
    /// A slim base's kept locales; `None` keeps the documentation.
    pub slim: Option<Vec<String>>,
}

impl Install {
    /// Refuses what a recipe could not have produced: package names that
    /// are not Debian's (they become file names and shell words), hashes
    /// that are not SHA256, locales that are not names.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(name) = self.debs.keys().find(|n| !super::is_package_name(n)) {
            return Err(format!("`{name}` is not a Debian package name"));
        }
        if let Some((name, _)) = self.debs.iter().find(|(_, h)| !super::is_sha256_hex(h)) {
            return Err(format!("the SHA256 of `{name}` is malformed"));
        }
        let locales = self.base.iter().flat_map(|b| b.slim.iter().flatten());
        if let Some(bad) = locales
            .clone()
            .find(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || "_@.-".contains(c)))
        {
            return Err(format!("`{bad}` is not a locale name"));
        }
        Ok(())
    }
}

/// apt's sources for a base made from `set`: one entry per mirror.
fn apt_sources(set: &DebianSet, components: &[String]) -> String {
    let mut by_mirror: Vec<(&str, Vec<&str>)> = vec![(set.mirror.as_str(), vec![set.suite.as_str()])];
    for (suite, mirror) in &set.overlays {
        match by_mirror.iter_mut().find(|(m, _)| m == mirror) {
            Some((_, suites)) => suites.push(suite),
            None => by_mirror.push((mirror, vec![suite])),
        }
    }
    let sources: Vec<String> = by_mirror
        .iter()
        .map(|(mirror, suites)| {
            format!(
                "Types: deb\nURIs: {mirror}\nSuites: {}\nComponents: {}\nSigned-By: {KEYRING}\n",
                suites.join(" "),
                components.join(" ")
            )
        })
        .collect();
    sources.join("\n")
}

/// Prepares the base set's upper directory: the essential packages (round
/// 0 of `plan`) extracted, dpkg's database, the services policy, apt's
/// sources and, for a slim base, dpkg's excludes.
fn prepare_base(
    upper: &mut Tree,
    plan: &[Vec<String>],
    files: &BTreeMap<String, PathBuf>,
    setup: &BaseSetup,
) -> Result<()> {
    deb::merged_usr(upper)?;
    if let Some(locales) = &setup.slim {
        write_file(upper, SLIM_EXCLUDES_FILE, slim_excludes(locales).as_bytes(), 0o644)?;
    }
    for name in plan.first().into_iter().flatten() {
        deb::extract(&files[name], upper)?;
    }
    deb::merged_links(upper)?;
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        let rel = Path::new(dir);
        upper
            .parents(rel, Attrs::new(0o755, 0, 0))
            .and_then(|()| upper.dir(rel, Attrs::new(0o755, 0, 0)))
            .map_err(Error::io("create", upper.path().join(dir)))?;
    }
    for file in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        write_file(upper, file, b"", 0o644)?;
    }
    write_file(upper, "usr/sbin/policy-rc.d", b"#!/bin/sh\nexit 101\n", 0o755)?;
    write_file(upper, APT_CONF_FILE, APT_CONF.as_bytes(), 0o644)?;
    // apt in a later step reads what the base was made from.
    write_file(
        upper,
        "etc/apt/sources.list.d/debian.sources",
        setup.sources.as_bytes(),
        0o644,
    )
}

/// Runs `job` here: installs its packages with dpkg in the sandbox on its
/// lowers (their .debs already in the store), into an upper directory
/// prepared first for the base set, and stores the result as a layer.
pub fn install(ctx: &ExecCtx<'_>, node: &Node, job: &Install) -> Result<crate::digest::Digest> {
    let store = ctx.store;
    job.check().map_err(|message| Error::Step {
        origin: node.origin.clone(),
        message,
        detail: String::new(),
    })?;
    let files: BTreeMap<String, PathBuf> = job
        .debs
        .iter()
        .map(|(name, sha256)| (name.clone(), deb_path(store, sha256)))
        .collect();
    let mut controls = BTreeMap::new();
    for (name, file) in &files {
        controls.insert(name.clone(), deb::control(file)?);
    }
    let plan = rounds(&controls).map_err(|e| Error::Step {
        origin: node.origin.clone(),
        message: e.to_string(),
        detail: String::new(),
    })?;
    let tmp = store.tmp_dir()?;
    let upper = tmp.path().join("upper");
    let mut tree = Tree::create(&upper, 0o755, Policy::image(confined::extract_limit(&upper)))
        .map_err(Error::io("create", &upper))?;
    if let Some(setup) = &job.base {
        prepare_base(&mut tree, &plan, &files, setup)?;
    }
    drop(tree);
    let debs = tmp.path().join("debs");
    stage_debs(&debs, &files)?;
    let slim = job.base.as_ref().and_then(|b| b.slim.as_deref());
    crate::sandbox::run_in_root(
        ctx,
        node,
        tmp.path(),
        job.lowers.iter().map(|d| store.layer_dir(d)).collect(),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            // The base's excludes (if any) apply on top as dpkg reads them from it.
            dpkg_script(&plan, job.base.is_none(), slim),
        ],
        dpkg_env(ctx),
        vec![(debs, DEBS_IN_SANDBOX.into(), true)],
    )?;
    ctx.commit_layer(&upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_naming_what_no_recipe_could_is_refused() {
        let sha = "a".repeat(64);
        let job = |name: &str, sha: &str, locale: &str| Install {
            debs: [(name.to_string(), sha.to_string())].into(),
            lowers: Vec::new(),
            base: Some(BaseSetup {
                sources: String::new(),
                slim: Some(vec![locale.to_string()]),
            }),
        };
        assert_eq!(job("libc6", &sha, "de_DE.UTF-8").check(), Ok(()));
        assert_eq!(
            job("../../etc/cron.d/x", &sha, "de").check(),
            Err("`../../etc/cron.d/x` is not a Debian package name".into())
        );
        assert_eq!(
            job("a;rm -rf /", &sha, "de").check(),
            Err("`a;rm -rf /` is not a Debian package name".into())
        );
        assert_eq!(
            job("libc6", "../x", "de").check(),
            Err("the SHA256 of `libc6` is malformed".into())
        );
        assert_eq!(
            job("libc6", &sha, "de' -o -exec sh -c x '").check(),
            Err("`de' -o -exec sh -c x '` is not a locale name".into())
        );
    }

    /// Control stanzas by package name, from (field, value) pairs.
    fn packages(list: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Stanza> {
        list.iter()
            .map(|(name, fields)| {
                let stanza = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                (name.to_string(), stanza)
            })
            .collect()
    }

    #[test]
    fn install_rounds_put_the_essential_closure_first_and_pre_depends_before_users() {
        let controls = packages(&[
            ("dpkg", &[("Essential", "yes"), ("Depends", "libc6")]),
            ("libc6", &[]),
            ("web", &[("Pre-Depends", "init-helpers"), ("Depends", "libc6")]),
            ("web-doc", &[("Depends", "web")]),
            ("init-helpers", &[("Pre-Depends", "awk")]),
            ("mawk", &[("Provides", "awk")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap(),
            vec![
                vec!["dpkg".to_string(), "libc6".to_string()],
                vec!["mawk".to_string()],
                vec!["init-helpers".to_string()],
                vec!["web".to_string(), "web-doc".to_string()],
            ]
        );
    }

    #[test]
    fn a_cycle_of_depends_shares_a_round_and_a_cycle_of_pre_depends_is_named() {
        let controls = packages(&[
            ("a", &[("Depends", "b")]),
            ("b", &[("Depends", "a")]),
            ("c", &[("Pre-Depends", "a")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap(),
            vec![vec![], vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]
        );
        let controls = packages(&[
            ("libx", &[("Pre-Depends", "liby")]),
            ("liby", &[("Depends", "libz")]),
            ("libz", &[("Pre-Depends", "libx")]),
            ("tool", &[("Depends", "libx")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap_err().to_string(),
            "the packages libx, liby, libz pre-depend on each other in a cycle: none of them can be configured first"
        );
    }
}
