//! SLSA v1 provenance: how an image was made, as an in-toto statement.
//! strata knows every input exactly (its keys cover them), so the list of
//! resolved dependencies is complete: each base by its digest, each `.deb`
//! by the SHA256 of the verified index, each fetched URL by its checksum,
//! each context selection by its tree hash, and the git commit of the
//! context when it is a checkout. Secrets appear by id only. No timestamps:
//! the same build gives the same provenance.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::graph::{BaseSource, CopyOp, CopySource, Graph, NodeId, Op};
use crate::sched::Plan;

/// The predicate type of SLSA v1 provenance.
pub const SLSA_PREDICATE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build the provenance describes.
pub const BUILD_TYPE: &str = "urn:strata:build:v1";
/// The builder's identity.
pub const BUILDER_ID: &str = "urn:strata:builder:local";

/// What the build was asked to do, besides the graph.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// The recipe (or Dockerfile) as named, relative to the context.
    pub recipe: String,
    /// Its SHA256.
    pub recipe_sha256: String,
    pub args: Vec<(String, String)>,
    pub epoch: i64,
    pub compression: String,
}

/// The provenance predicate of the image target `name` (node `node`) for
/// `platform`.
pub fn predicate(
    graph: &Graph,
    plan: &Plan,
    node: NodeId,
    name: &str,
    platform: &crate::platform::Platform,
    invocation: &Invocation,
) -> Value {
    let closure = graph.closure(&[node]);
    let mut deps: Vec<Value> = vec![json!({
        "uri": format!("file:{}", invocation.recipe),
        "digest": {"sha256": invocation.recipe_sha256},
    })];
    let mut secrets: Vec<String> = Vec::new();
    let mut ssh: Vec<String> = Vec::new();
    for &id in &closure {
        let n = graph.node(id);
        let identity = plan.base_identities.get(&id).map(hex::encode);
        match &n.op {
            Op::Base(BaseSource::Registry { reference }) => {
                if let Some(d) = &identity {
                    deps.push(json!({"uri": format!("oci://{reference}"), "digest": {"sha256": d}}));
                }
            }
            Op::Base(BaseSource::OciLayout { dir, tag }) => {
                if let Some(d) = &identity {
                    let at = tag.as_deref().map(|t| format!(":{t}")).unwrap_or_default();
                    deps.push(json!({"uri": format!("oci:{}{at}", relative(&graph.context_dir, dir)), "digest": {"sha256": d}}));
                }
            }
            Op::Base(BaseSource::DockerArchive { file }) | Op::Base(BaseSource::Rootfs { file }) => {
                if let Some(d) = &identity {
                    deps.push(
                        json!({"uri": format!("file:{}", relative(&graph.context_dir, file)), "digest": {"blake3": d}}),
                    );
                }
            }
            Op::Base(BaseSource::Debian(_)) => {
                if let Some(set) = plan.debian_sets.get(&id) {
                    for p in &set.packages {
                        deps.push(json!({
                            "uri": format!("pkg:deb/debian/{}@{}?arch={}", p.name, p.version, p.arch),
                            "digest": {"sha256": p.sha256},
                            "downloadLocation": format!("{}/{}", set.mirror_of(p).trim_end_matches('/'), p.filename),
                        }));
                    }
                }
            }
            Op::Copy(CopyOp {
                source: CopySource::Context { paths, .. },
                ..
            }) => {
                if let Some(selection) = plan.selections.get(&id) {
                    deps.push(json!({
                        "name": format!("context:{}", paths.join(",")),
                        "digest": {"blake3": hex::encode(selection.hash)},
                    }));
                }
            }
            Op::Copy(CopyOp {
                source: CopySource::Fetch { url, .. },
                ..
            }) => {
                if let Some(d) = &identity {
                    deps.push(json!({"uri": without_userinfo(url), "digest": {"sha256": d}}));
                }
            }
            Op::Run(run) => {
                secrets.extend(run.secrets.iter().map(|s| s.id.clone()));
                ssh.extend(run.ssh.iter().map(|s| s.id.clone()));
            }
            _ => {}
        }
    }
    for (module, sha256) in &graph.modules {
        let uri = match module.strip_prefix("strata/") {
            // Compiled into strata: named by the builder's version too.
            Some(_) => format!("strata:{module}"),
            None => format!("file:{module}"),
        };
        deps.push(json!({"uri": uri, "digest": {"sha256": sha256}}));
    }
    if let Some((remote, commit)) = git_checkout(&graph.context_dir) {
        deps.push(json!({"uri": format!("git+{remote}"), "digest": {"gitCommit": commit}}));
    }
    secrets.sort();
    secrets.dedup();
    ssh.sort();
    ssh.dedup();
    let args: BTreeMap<&str, &str> = invocation.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "recipe": invocation.recipe,
                "target": name,
                "args": args,
                "platform": platform.to_string(),
                "secrets": secrets,
                "ssh": ssh,
            },
            "internalParameters": {
                "sourceDateEpoch": invocation.epoch,
                "compression": invocation.compression,
            },
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": {"strata": env!("CARGO_PKG_VERSION")},
            },
            "metadata": {},
        },
    })
}

/// The SLSA v1 statement (in-toto Statement v1) about the manifest
/// `manifest` called `name`.
pub fn statement(name: &str, manifest: &Digest, predicate: Value) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": manifest.hex()}}],
        "predicateType": SLSA_PREDICATE,
        "predicate": predicate,
    });
    serde_json::to_vec_pretty(&statement).expect("JSON values serialize")
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// `url` without its userinfo (`https://ci-token:SECRET@host/x` →
/// `https://host/x`), as buildx strips it from the provenance it publishes:
/// a credential in a remote's URL must not leave the machine in a blob a
/// push uploads. An scp-like `user@host:path` has no password and stays.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{path}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// The remote and commit of a git checkout at `dir` (read from `.git`, no
/// git needed): `None` when it is not one.
/// Every file is read inside the context (a `ref:` or a symlink in `.git`
/// that points out of it reads nothing of the host's).
fn git_checkout(dir: &Path) -> Option<(String, String)> {
    let root = crate::sys::confined::Root::open(dir).ok()?;
    let read = |rel: &str| -> Option<String> { String::from_utf8(root.read(Path::new(".git").join(rel)).ok()??).ok() };
    let head = read("HEAD")?;
    let commit = match head.trim().strip_prefix("ref: ") {
        Some(r) => match read(r) {
            Some(c) => c.trim().to_string(),
            None => read("packed-refs")?
                .lines()
                .find_map(|l| l.strip_suffix(r).map(|c| c.trim().to_string()))?,
        },
        None => head.trim().to_string(),
    };
    if commit.len() != 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let config = read("config").unwrap_or_default();
    let mut in_origin = false;
    let mut remote = String::from("file:.");
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
        } else if in_origin {
            if let Some(url) = line
                .strip_prefix("url")
                .map(|r| r.trim_start_matches([' ', '=']).trim())
            {
                remote = without_userinfo(url);
            }
        }
    }
    Some((remote, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_never_reaches_the_provenance() {
        for (url, shown) in [
            ("https://ci-token:SECRET@host/team/app.git", "https://host/team/app.git"),
            ("https://user@host:8443/a?b=c@d", "https://host:8443/a?b=c@d"),
            ("ssh://git:pw@host/x", "ssh://host/x"),
            ("git@host:team/app.git", "git@host:team/app.git"),
            ("https://host/plain", "https://host/plain"),
        ] {
            assert_eq!(without_userinfo(url), shown, "{url}");
        }
    }

    #[test]
    fn a_git_checkout_names_its_origin_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(git.join("refs/heads/main"), format!("{commit}\n")).unwrap();
        std::fs::write(
            git.join("config"),
            "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://git.test/team/app.git\n",
        )
        .unwrap();
        assert_eq!(
            git_checkout(dir.path()),
            Some(("https://git.test/team/app.git".into(), commit.into()))
        );
        assert_eq!(git_checkout(&dir.path().join("none")), None);
        // A ref that climbs out of the context reads nothing outside it.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), format!("{commit}\n")).unwrap();
        let escape = format!(
            "ref: ../../../../../../../..{}\n",
            outside.path().join("secret").display()
        );
        std::fs::write(git.join("HEAD"), escape).unwrap();
        assert_eq!(git_checkout(dir.path()), None);
    }
}
