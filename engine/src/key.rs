//! Cache keys. A node's key is blake3 over a canonical encoding of its op,
//! its parameters and the keys of its inputs; nothing else (no origin, no
//! description, no timestamps, no host paths) goes in.
//!
//! The encoding, version `strata-key-v1`:
//!
//! ```text
//! key      = blake3( "strata-key-v1" ‖ str(domain) ‖ field* )
//! str(s)   = u64-le(len(s)) ‖ bytes(s)         every string and byte string
//! u64(n)   = 8 bytes little endian             numbers, counts, enum tags
//! opt(x)   = u64(0) | u64(1) ‖ x               optional values
//! list(xs) = u64(len) ‖ x*                     lists, in recipe order
//! key(k)   = 32 raw bytes                      input keys and content hashes
//! ```
//!
//! Per op, after the domain `node`: a tag string (`scratch`, `base`, `copy`,
//! `run`, `meta`), then the parent key if any, then the op's fields in the
//! order `node_key` writes them. Because every variable-size value is length
//! prefixed and every choice is tagged, two different ops cannot encode to the
//! same bytes.

use crate::digest::NodeKey;
use crate::graph::{CopySource, MetaChange, Network, Node, Op, SecretSource};

/// Writes the canonical encoding into a blake3 hasher.
pub struct KeyEncoder(blake3::Hasher);

impl KeyEncoder {
    /// Starts an encoding in `domain` (`node`, `context`, `file`, …).
    pub fn new(domain: &str) -> KeyEncoder {
        let mut enc = KeyEncoder(blake3::Hasher::new());
        enc.0.update(b"strata-key-v1");
        enc.str(domain);
        enc
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.0.update(b);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.0.update(&n.to_le_bytes());
        self
    }

    pub fn hash(&mut self, h: &[u8; 32]) -> &mut Self {
        self.0.update(h);
        self
    }

    pub fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.u64(0),
            Some(s) => self.u64(1).str(s),
        }
    }

    pub fn strs(&mut self, items: &[String]) -> &mut Self {
        self.u64(items.len() as u64);
        for item in items {
            self.str(item);
        }
        self
    }

    pub fn pairs(&mut self, items: &[(String, String)]) -> &mut Self {
        self.u64(items.len() as u64);
        for (k, v) in items {
            self.str(k).str(v);
        }
        self
    }

    pub fn finish(&self) -> NodeKey {
        NodeKey(*self.0.finalize().as_bytes())
    }
}

/// What the engine learned about a node's outside inputs before keying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The op has no outside input.
    Nothing,
    /// Content hash of the selected context files (`copy` from `ctx`).
    Context([u8; 32]),
    /// Identity of a base image's bytes (manifest digest or file content hash).
    Base([u8; 32]),
}

/// `key` of a RUN step that re-runs when its secrets change: it takes the
/// HMAC of each (never the value; the HMAC's key stays in the store).
pub fn with_secret_macs(key: NodeKey, macs: &[(String, [u8; 32])]) -> NodeKey {
    let mut enc = KeyEncoder::new("secret-macs");
    enc.hash(&key.0).u64(macs.len() as u64);
    for (id, mac) in macs {
        enc.str(id).hash(mac);
    }
    enc.finish()
}

/// The key of `node`, given the keys of its inputs (`input_keys[i]` is the key
/// of `node.inputs()[i]`) and what was resolved about its outside inputs.
pub fn node_key(node: &Node, input_keys: &[NodeKey], resolved: Resolved) -> NodeKey {
    let mut enc = KeyEncoder::new("node");
    let mut inputs = input_keys.iter();
    let mut next_input = |enc: &mut KeyEncoder| {
        let key = inputs.next().expect("one key per input");
        enc.hash(&key.0);
    };
    // A root's platform (its children's keys read it through their
    // parent's): linux/amd64 roots keep the keys they had before platforms.
    if node.parent.is_none() && node.platform.to_string() != "linux/amd64" {
        enc.str("platform").str(&node.platform.to_string());
    }
    match &node.op {
        Op::Scratch => {
            enc.str("scratch");
        }
        Op::Base(source) => {
            enc.str("base");
            let kind = match source {
                crate::graph::BaseSource::OciLayout { .. } => "oci",
                crate::graph::BaseSource::DockerArchive { .. } => "docker-archive",
                crate::graph::BaseSource::Rootfs { .. } => "rootfs",
                crate::graph::BaseSource::Registry { .. } => "registry",
                crate::graph::BaseSource::Debian(_) => "debian",
            };
            enc.str(kind);
            match resolved {
                Resolved::Base(identity) => enc.hash(&identity),
                _ => enc.u64(0),
            };
        }
        Op::Copy(copy) => {
            // v2: owners as BuildKit gives them (state files keep theirs; new directories are `chown`'s).
            enc.str("copy-v2");
            next_input(&mut enc);
            match &copy.source {
                CopySource::Context { paths, exclude } => {
                    enc.str("ctx").strs(paths);
                    // Only copies that use them carry the markers: existing keys stay as they were.
                    if !exclude.is_empty() {
                        enc.str("exclude").strs(exclude);
                    }
                    if copy.parents {
                        enc.str("parents");
                    }
                    if copy.extract {
                        enc.str("extract");
                    }
                    match resolved {
                        Resolved::Context(hash) => enc.hash(&hash),
                        _ => enc.u64(0),
                    };
                }
                CopySource::Mkdir => {
                    enc.str("mkdir");
                }
                CopySource::Text { content } => {
                    enc.str("text").str(content);
                }
                CopySource::Fetch { url, .. } => {
                    // The content by its digest (given or pinned), and the name it lands under.
                    enc.str("fetch").str(&crate::graph::url_file_name(url));
                    match resolved {
                        Resolved::Context(hash) => enc.hash(&hash),
                        _ => enc.u64(0),
                    };
                }
                CopySource::State { path, .. } => {
                    enc.str("state");
                    next_input(&mut enc);
                    enc.str(path);
                }
            }
            enc.str(&copy.dst).opt_str(copy.chown.as_deref());
            match copy.chmod {
                None => enc.u64(0),
                Some(mode) => enc.u64(1).u64(mode as u64),
            };
        }
        Op::Run(run) => {
            enc.str("run");
            next_input(&mut enc);
            enc.strs(&run.argv).pairs(&run.env).opt_str(run.user.as_deref());
            enc.str(match run.network {
                Network::None => "none",
                Network::Host => "host",
            });
            enc.u64(run.caches.len() as u64);
            for cache in &run.caches {
                enc.str(&cache.target).str(&cache.id);
            }
            enc.u64(run.secrets.len() as u64);
            for secret in &run.secrets {
                // The secret's identity and where it is mounted, never its value.
                enc.str(&secret.id).str(&secret.target);
                enc.str(match secret.source {
                    SecretSource::File(_) => "file",
                    SecretSource::Env(_) => "env",
                    // Whether it is there is part of what the step sees.
                    SecretSource::Given if secret.required => "given",
                    SecretSource::Given => "optional",
                });
                if secret.mode.is_some() || secret.uid.is_some() || secret.gid.is_some() {
                    // Only secrets with their own access carry it: existing keys stay.
                    enc.str("access");
                    for v in [secret.mode, secret.uid, secret.gid] {
                        enc.u64(v.map_or(u64::MAX, u64::from));
                    }
                }
            }
            enc.u64(run.mounts.len() as u64);
            for mount in &run.mounts {
                next_input(&mut enc);
                enc.str(&mount.path).str(&mount.target);
            }
            if run.insecure {
                // Only insecure steps carry the marker: existing keys stay as they were.
                enc.str("insecure");
            }
            if run.keep_mount_points {
                enc.str("keep-mount-points");
            }
            if !run.ssh.is_empty() {
                // Which agent and where, never the socket's host path or the keys.
                enc.str("ssh").u64(run.ssh.len() as u64);
                for ssh in &run.ssh {
                    enc.str(&ssh.id)
                        .str(&ssh.target)
                        .str(if ssh.required { "required" } else { "optional" });
                    for v in [ssh.mode, ssh.uid, ssh.gid] {
                        enc.u64(v.map_or(u64::MAX, u64::from));
                    }
                }
            }
            if !run.tmpfs.is_empty() {
                enc.str("tmpfs").u64(run.tmpfs.len() as u64);
                for t in &run.tmpfs {
                    enc.str(&t.target).u64(t.size.unwrap_or(u64::MAX));
                }
            }
        }
        Op::Meta(change) => {
            enc.str("meta");
            next_input(&mut enc);
            match change {
                MetaChange::Env(pairs) => enc.str("env").pairs(pairs),
                MetaChange::EnvExpand(pairs) => enc.str("env-expand").pairs(pairs),
                MetaChange::Workdir(p) => enc.str("workdir").str(p),
                MetaChange::User(u) => enc.str("user").str(u),
                MetaChange::Cmd(argv) => enc.str("cmd").strs(argv),
                MetaChange::Entrypoint(argv) => enc.str("entrypoint").strs(argv),
                MetaChange::Expose(port) => enc.str("expose").str(port),
                MetaChange::Label(k, v) => enc.str("label").str(k).str(v),
                MetaChange::Volume(p) => enc.str("volume").str(p),
                MetaChange::StopSignal(s) => enc.str("stop_signal").str(s),
                MetaChange::Healthcheck(None) => enc.str("healthcheck-none"),
                MetaChange::Healthcheck(Some(h)) => {
                    enc.str("healthcheck").strs(&h.test);
                    for d in [h.interval, h.timeout, h.start_period, h.start_interval, h.retries] {
                        // u64::MAX stands for unset: no real value is that long.
                        enc.u64(d.unwrap_or(u64::MAX));
                    }
                    &mut enc
                }
                MetaChange::Shell(argv) => enc.str("shell").strs(argv),
                MetaChange::OnBuild(trigger) => enc.str("onbuild").str(trigger),
                MetaChange::NoOnBuild => enc.str("onbuild-none"),
            };
        }
    }
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{CopyOp, Origin, RunOp};
    use proptest::prelude::*;

    fn node(op: Op, parent: Option<usize>, line: u32, description: &str) -> Node {
        Node {
            op,
            parent,
            origin: Origin {
                file: "r.rhai".into(),
                line,
                col: 1,
            },
            description: description.into(),
            platform: crate::image::Platform::host(),
        }
    }

    fn copy_op(paths: Vec<String>, dst: String, chown: Option<String>, chmod: Option<u32>) -> Op {
        Op::Copy(CopyOp {
            source: CopySource::Context {
                paths,
                exclude: Vec::new(),
            },
            dst,
            chown,
            chmod,
            parents: false,
            extract: false,
        })
    }

    fn parent_key(n: u8) -> NodeKey {
        NodeKey([n; 32])
    }

    proptest! {
        #[test]
        fn copy_key_changes_with_every_input(
            paths in proptest::collection::vec("[a-z/]{1,8}", 1..4),
            dst in "/[a-z/]{0,10}",
            chown in proptest::option::of("[0-9]{1,4}(:[0-9]{1,4})?"),
            chmod in proptest::option::of(0u32..0o7777),
            content in any::<[u8; 32]>(),
            parent in any::<u8>(),
        ) {
            let base = node(copy_op(paths.clone(), dst.clone(), chown.clone(), chmod), Some(0), 1, "a");
            let key = node_key(&base, &[parent_key(parent)], Resolved::Context(content));

            // Nothing else changes it: not the origin, not the description.
            let moved = node(copy_op(paths.clone(), dst.clone(), chown.clone(), chmod), Some(0), 99, "b");
            prop_assert_eq!(node_key(&moved, &[parent_key(parent)], Resolved::Context(content)), key);

            // Every input does.
            prop_assert_ne!(node_key(&base, &[parent_key(parent.wrapping_add(1))], Resolved::Context(content)), key);
            let mut other_content = content;
            other_content[0] ^= 1;
            prop_assert_ne!(node_key(&base, &[parent_key(parent)], Resolved::Context(other_content)), key);
            let mut more_paths = paths.clone();
            more_paths.push("x".into());
            let changed = node(copy_op(more_paths, dst.clone(), chown.clone(), chmod), Some(0), 1, "a");
            prop_assert_ne!(node_key(&changed, &[parent_key(parent)], Resolved::Context(content)), key);
            let changed = node(copy_op(paths.clone(), format!("{dst}x"), chown.clone(), chmod), Some(0), 1, "a");
            prop_assert_ne!(node_key(&changed, &[parent_key(parent)], Resolved::Context(content)), key);
            let changed = node(copy_op(paths.clone(), dst.clone(), Some(format!("{}9", chown.clone().unwrap_or_default())), chmod), Some(0), 1, "a");
            prop_assert_ne!(node_key(&changed, &[parent_key(parent)], Resolved::Context(content)), key);
            let changed = node(copy_op(paths.clone(), dst.clone(), chown.clone(), Some(chmod.map_or(0, |m| m + 1))), Some(0), 1, "a");
            prop_assert_ne!(node_key(&changed, &[parent_key(parent)], Resolved::Context(content)), key);
        }

        #[test]
        fn meta_key_changes_with_every_value(k in "[A-Z]{1,5}", v in "[a-z]{0,5}", parent in any::<u8>()) {
            let env = |k: &str, v: &str| node(Op::Meta(MetaChange::Env(vec![(k.into(), v.into())])), Some(0), 1, "");
            let key = node_key(&env(&k, &v), &[parent_key(parent)], Resolved::Nothing);
            prop_assert_eq!(node_key(&env(&k, &v), &[parent_key(parent)], Resolved::Nothing), key);
            prop_assert_ne!(node_key(&env(&format!("{k}X"), &v), &[parent_key(parent)], Resolved::Nothing), key);
            prop_assert_ne!(node_key(&env(&k, &format!("{v}x")), &[parent_key(parent)], Resolved::Nothing), key);
            // Same strings, another kind of change: another key.
            let label = node(Op::Meta(MetaChange::Label(k.clone(), v.clone())), Some(0), 1, "");
            prop_assert_ne!(node_key(&label, &[parent_key(parent)], Resolved::Nothing), key);
        }

        #[test]
        fn run_key_changes_with_command_env_user_network(argv in proptest::collection::vec("[a-z ]{0,6}", 1..4), parent in any::<u8>()) {
            let run = |argv: Vec<String>, env: Vec<(String, String)>, user: Option<String>, network: Network| {
                node(Op::Run(RunOp { argv, env, user, network, caches: vec![], secrets: vec![], ssh: vec![], mounts: vec![], tmpfs: vec![], timeout: None, insecure: false, limits: Default::default(), keep_mount_points: false }), Some(0), 1, "")
            };
            let key = node_key(&run(argv.clone(), vec![], None, Network::None), &[parent_key(parent)], Resolved::Nothing);
            let mut longer = argv.clone();
            longer.push(String::new());
            prop_assert_ne!(node_key(&run(longer, vec![], None, Network::None), &[parent_key(parent)], Resolved::Nothing), key);
            prop_assert_ne!(node_key(&run(argv.clone(), vec![("A".into(), "1".into())], None, Network::None), &[parent_key(parent)], Resolved::Nothing), key);
            prop_assert_ne!(node_key(&run(argv.clone(), vec![], Some("1".into()), Network::None), &[parent_key(parent)], Resolved::Nothing), key);
            prop_assert_ne!(node_key(&run(argv.clone(), vec![], None, Network::Host), &[parent_key(parent)], Resolved::Nothing), key);
        }
    }

    #[test]
    fn length_prefixes_keep_adjacent_strings_apart() {
        let a = KeyEncoder::new("t").str("ab").str("c").finish();
        let b = KeyEncoder::new("t").str("a").str("bc").finish();
        assert_ne!(a, b);
    }
}
