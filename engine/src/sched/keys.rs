//! Effective keys: an input taken through `state.path(P)` (a copy's
//! source, a RUN mount) counts by the content at `P`, not by the step that
//! produced it.

use std::collections::HashMap;
use std::fs;

use super::{Plan, Scheduler};
use crate::digest::NodeKey;
use crate::error::{Error, Result};
use crate::fsview::{self, View};
use crate::graph::{CopyOp, CopySource, NodeId, Op};
use crate::key::{node_key, Resolved};
use crate::store::State;
use crate::sys::confined::{Policy, Tree};
use std::path::Path;

impl Scheduler<'_> {
    /// The key a node really has: its planned key, except that an input used
    /// only through `state.path(P)` (a copy's source, a RUN mount) counts by
    /// the content at `P`, not by the producing step. A builder stage that
    /// changes without changing the files a runtime stage takes from it
    /// leaves the runtime stage cached. Keys of the nodes after it follow.
    pub(super) fn effective_key(
        &self,
        id: NodeId,
        plan: &Plan,
        states: &HashMap<NodeId, State>,
        keys: &HashMap<NodeId, NodeKey>,
    ) -> Result<NodeKey> {
        let node = self.graph.node(id);
        let planned = plan.keys[id].expect("planned");
        let inputs = node.inputs();
        if inputs.is_empty() {
            return Ok(planned);
        }
        let paths: Vec<&str> = match &node.op {
            Op::Copy(CopyOp {
                source: CopySource::State { path, .. },
                ..
            }) => vec![path.as_str()],
            Op::Run(run) => run.mounts.iter().map(|m| m.path.as_str()).collect(),
            _ => Vec::new(),
        };
        let first_path = usize::from(node.parent.is_some());
        let mut input_keys = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let key = match i.checked_sub(first_path).and_then(|j| paths.get(j)) {
                Some(path) => match states.get(input) {
                    Some(state) => self.path_key(state, path)?,
                    None => plan.keys[*input].expect("planned"),
                },
                None => keys
                    .get(input)
                    .copied()
                    .unwrap_or_else(|| plan.keys[*input].expect("planned")),
            };
            input_keys.push(key);
        }
        // What planning resolved for the node itself, as it keyed it: a
        // context selection's hash, a fetched file's checksum.
        let resolved = match (plan.selections.get(&id), &node.op) {
            (Some(selection), _) => Resolved::Context(selection.hash),
            (
                None,
                Op::Copy(CopyOp {
                    source: CopySource::Fetch { .. },
                    ..
                }),
            ) => Resolved::Context(plan.base_identities[&id]),
            _ => Resolved::Nothing,
        };
        let key = node_key(node, &input_keys, resolved);
        Ok(match plan.secret_macs.get(&id) {
            Some(macs) => crate::key::with_secret_macs(key, macs),
            None => key,
        })
    }

    /// The key of the content at `path` in `state`, remembered per (layers, path).
    fn path_key(&self, state: &State, path: &str) -> Result<NodeKey> {
        let mut memo = crate::key::KeyEncoder::new("path-key-memo");
        for d in &state.config.rootfs.diff_ids {
            memo.str(&d.to_string());
        }
        let memo = memo.str(path).finish();
        let file = self.store.root().join("pathkeys").join(memo.hex());
        if let Some(key) = fs::read_to_string(&file)
            .ok()
            .and_then(|t| hex::decode(t.trim()).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            return Ok(NodeKey(key));
        }
        self.materialize(state, None)?;
        let dirs = state.layer_dirs(self.store);
        let view = View { layers: &dirs };
        let matches: Vec<(Vec<String>, String)> = if fsview::is_glob(path) {
            view.glob(path)
                .into_iter()
                .map(|m| {
                    let name = m.join("/");
                    (view.resolve(&format!("/{name}"), true).unwrap_or(m), name)
                })
                .collect()
        } else {
            view.resolve(path, true)
                .filter(|c| view.lookup(c).is_some())
                .map(|c| (c, String::new()))
                .into_iter()
                .collect()
        };
        if matches.is_empty() {
            // Missing: the step itself reports it when it runs.
            return Ok(crate::key::KeyEncoder::new("path-missing").str(path).finish());
        }
        let tmp = self.store.tmp_dir()?;
        let mut tree = Tree::open(tmp.path(), Policy::image(u64::MAX)).map_err(Error::io("open", tmp.path()))?;
        let mut enc = crate::key::KeyEncoder::new("path-content");
        for (i, (comps, name)) in matches.iter().enumerate() {
            let copy = tmp.path().join(i.to_string());
            view.materialize(comps, &mut tree, Path::new(&i.to_string()))?;
            enc.str(name).hash(&fsview::tree_hash(&copy)?);
        }
        let key = enc.finish();
        fs::create_dir_all(file.parent().expect("has a parent")).map_err(Error::io("create", &file))?;
        self.store.write_atomic(&file, key.hex().as_bytes())?;
        Ok(key)
    }
}
