//! A build session: everything `strata build` does after the recipe is
//! evaluated. It plans and runs the targets' nodes (`sched`), then stores
//! each image target and tags it, copies artifacts out, writes `-o`
//! outputs, records what `strata explain` needs, pushes the remote cache
//! and the `--push` images. The CLI parses and renders; this decides.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::explain;
use crate::export::{self, push::PushStats, push::Pusher};
use crate::graph::{Graph, Target, TargetKind};
use crate::image::Descriptor;
use crate::registry::{Client, Reference};
use crate::sched::{BuildOptions, Outcome, Plan, Scheduler};
use crate::store::{read_image, write_image, Store};

/// Where image targets are written besides the store.
#[derive(Clone, Debug)]
pub enum Output {
    /// `oci:DIR`: an OCI image layout.
    Oci(PathBuf),
    /// `docker-archive:FILE`: a tarball `docker load` reads.
    DockerArchive(PathBuf),
    /// `docker-archive:-`: the tarball on standard output.
    DockerArchiveStdout,
}

/// What to do with the built targets.
#[derive(Clone, Debug, Default)]
pub struct Exports {
    pub outputs: Vec<Output>,
    /// Artifacts go to `out_dir/NAME`.
    pub out_dir: PathBuf,
    /// Image targets to push: (target name, reference).
    pub pushes: Vec<(String, Reference)>,
    /// The recipe's `--arg`s, kept with the explain records.
    pub args: Vec<(String, String)>,
    /// `--sbom`: each image gets an SPDX SBOM, attached as BuildKit
    /// attaches one (an attestation manifest in the image's index).
    pub sbom: bool,
    /// `--provenance`: each image gets SLSA v1 provenance, attached the same way.
    pub provenance: bool,
    /// `--load`: the image targets go into this docker or podman.
    pub load: Option<export::load::Daemon>,
    /// `-t` names: with `--load`, only these reach docker or podman (not
    /// the target's own name); empty, the recipe's tags do.
    pub load_names: Vec<String>,
}

/// One target the session finished.
#[derive(Clone, Debug)]
pub enum Finished {
    /// An image target, stored and tagged.
    Image {
        name: String,
        tags: Vec<String>,
        /// Its manifest, or its index when it has several platforms or attestations.
        descriptor: Descriptor,
    },
    /// An artifact target, copied to `dir`.
    Artifact { name: String, dir: PathBuf },
    /// A target a failed step kept from building (`--keep-going`).
    Skipped { name: String },
}

/// A push of an image target: where it went and what it cost.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub reference: Reference,
    pub digest: crate::digest::Digest,
    pub stats: PushStats,
}

/// What a session did.
#[derive(Debug, Default)]
pub struct Report {
    pub finished: Vec<Finished>,
    /// What `--cache-to` pushed, when asked.
    pub cache: Option<PushStats>,
    pub pushed: Vec<Pushed>,
    /// What `--load`'s docker or podman said it loaded.
    pub loaded: Vec<String>,
    /// Errors of failed steps, in the order they failed.
    pub errors: Vec<Error>,
    pub files_hashed: usize,
    pub files_reused: usize,
}

/// Builds `targets` of `graph` and exports them.
pub fn build(
    store: &Store,
    graph: &Graph,
    targets: &[&Target],
    opts: BuildOptions,
    exports: &Exports,
    events: &dyn EventSink,
    cancel: &AtomicBool,
) -> Result<Report> {
    let nodes = graph.nodes_for(targets);
    let keep_going = opts.keep_going;
    let no_cache = opts.no_cache;
    let (compression, epoch) = (opts.compression, opts.epoch);
    // Images in the store keep their layers uncompressed (each layer's blob
    // is its tar, by diff id), as Docker's image store does: a build
    // compresses nothing. Outputs that want compressed blobs (`-o oci:`, a
    // push) get them through `with_compression`, each layer once, kept.
    // Attestations name the digest of the image they describe, so an image
    // that carries them is stored as it will be pushed.
    let stored = match exports.sbom || exports.provenance {
        true => compression,
        false => crate::layer::Compression::None,
    };
    let cache_to = !opts.cache_to.is_empty();
    let images = targets.iter().filter_map(|t| match &t.kind {
        TargetKind::Image { node, .. } => Some(*node),
        _ => None,
    });
    let scheduler = Scheduler::new(store, graph, opts, events, cancel).with_images(images);
    let plan = scheduler.plan(&nodes)?;
    // Steps for another architecture need their emulator: say how to get
    // one before anything runs (a step already in the store needs none).
    for &id in &nodes {
        let node = graph.node(id);
        let executes = matches!(
            node.op,
            crate::graph::Op::Run(_) | crate::graph::Op::Base(crate::graph::BaseSource::Debian(_))
        );
        if executes && !crate::sys::binfmt::is_native(&node.platform) {
            let stored = plan.keys[id]
                .as_ref()
                .is_some_and(|k| matches!(store.record(k), Ok(Some(_))));
            if !stored {
                crate::sys::binfmt::check(&node.platform).map_err(|e| Error::input(&node.origin, e))?;
            }
        }
    }
    // The states the session needs afterwards: its targets' (all of them
    // when every node's result is pushed to a cache).
    let keep: HashSet<usize> = targets.iter().filter_map(|t| t.node()).collect();
    let mut outcome = scheduler.run_keeping(&plan, &nodes, (!cache_to).then_some(&keep));
    if !outcome.errors.is_empty() && !keep_going {
        // Nothing is exported from a failed build unless asked to keep going.
        outcome.states.clear();
    }
    let mut report = Report {
        files_hashed: plan.files_hashed,
        files_reused: plan.files_reused,
        ..Report::default()
    };
    let mut images: Vec<(Vec<String>, Descriptor)> = Vec::new();
    let mut new_tags: Vec<(String, Descriptor)> = Vec::new();
    // Each image target's descriptor (an index for several platforms), by name.
    let mut built: Vec<(String, Descriptor)> = Vec::new();
    // Images that become an index (several platforms, or attestations):
    // (name, tags, [(manifest, its statements)]).
    #[allow(clippy::type_complexity)]
    let mut variants: Vec<(String, Vec<String>, Vec<(Descriptor, Vec<(String, Vec<u8>)>)>)> = Vec::new();
    let invocation = match exports.provenance {
        true => Some(invocation(graph, &scheduler.opts.recipe, exports, compression, epoch)?),
        false => None,
    };
    for target in targets {
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let state = match &target.kind {
            TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. } => outcome.states.get(node),
            TargetKind::Group { .. } => continue,
        };
        let Some(state) = state else {
            if keep_going {
                report.finished.push(Finished::Skipped {
                    name: target.name.clone(),
                });
            }
            continue;
        };
        scheduler.materialize(state, None)?;
        match &target.kind {
            TargetKind::Image { tags, node } if target.platform.is_some() || exports.sbom || exports.provenance => {
                let desc = write_image(store, state, stored)?;
                let mut statements = Vec::new();
                if exports.sbom {
                    let sbom = sbom_statement(store, graph, &plan, *node, state, &desc, &target.name, epoch)?;
                    statements.push((crate::sbom::SPDX_PREDICATE.to_string(), sbom));
                }
                if let Some(invocation) = &invocation {
                    let platform = graph.node(*node).platform.clone();
                    let predicate =
                        crate::provenance::predicate(graph, &plan, *node, &target.name, &platform, invocation);
                    statements.push((
                        crate::provenance::SLSA_PREDICATE.to_string(),
                        crate::provenance::statement(&target.name, &desc.digest, predicate),
                    ));
                }
                match variants.iter_mut().find(|(n, ..)| *n == target.name) {
                    Some((_, _, manifests)) => manifests.push((desc, statements)),
                    None => variants.push((target.name.clone(), tags.clone(), vec![(desc, statements)])),
                }
            }
            TargetKind::Image { tags, .. } => {
                let desc = write_image(store, state, stored)?;
                built.push((target.name.clone(), desc.clone()));
                new_tags.extend(tags.iter().map(|t| (t.clone(), desc.clone())));
                report.finished.push(Finished::Image {
                    name: target.name.clone(),
                    tags: tags.clone(),
                    descriptor: desc.clone(),
                });
                images.push((tags.clone(), desc));
            }
            TargetKind::Artifact { path, .. } => {
                // Several platforms: a directory each, as BuildKit's local exporter.
                let rel = match &target.platform {
                    Some(p) => Path::new(&target.name).join(p.to_string().replace('/', "_")),
                    None => PathBuf::from(&target.name),
                };
                let skipped =
                    export::artifact(store, state, path, &exports.out_dir, &rel).map_err(|e| e.at(&target.origin))?;
                if !skipped.is_empty() {
                    let names: Vec<String> = skipped.iter().map(|p| format!("/{}", p.display())).collect();
                    events.event(crate::events::Event::Warning {
                        message: format!(
                            "artifact `{}`: {} device node(s) or FIFO(s) left out (files on the host get none): {}",
                            target.name,
                            names.len(),
                            names.join(", ")
                        ),
                    });
                }
                let dir = exports.out_dir.join(&rel);
                report.finished.push(Finished::Artifact {
                    name: target.name.clone(),
                    dir,
                });
            }
            TargetKind::Group { .. } => {}
        }
    }
    for (name, tags, images_of) in variants {
        let mut manifests: Vec<Descriptor> = images_of.iter().map(|(d, _)| d.clone()).collect();
        for (desc, statements) in &images_of {
            if !statements.is_empty() {
                manifests.push(crate::store::write_attestation(store, desc, statements)?);
            }
        }
        let desc = crate::store::write_index(store, &manifests)?;
        new_tags.extend(tags.iter().map(|t| (t.clone(), desc.clone())));
        report.finished.push(Finished::Image {
            name: name.clone(),
            tags: tags.clone(),
            descriptor: desc.clone(),
        });
        built.push((name, desc.clone()));
        images.push((tags, desc));
    }
    // Every tag of the build in one update of index.json.
    store.tag_all(&new_tags)?;
    for output in &exports.outputs {
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        match output {
            Output::Oci(dir) => {
                let mut compressed = Vec::new();
                for (tags, desc) in &images {
                    compressed.push((tags.clone(), crate::store::with_compression(store, desc, compression)?));
                }
                export::to_oci_dir(store, &compressed, dir)?
            }
            Output::DockerArchive(file) => export::to_docker_archive(store, &images, export::ArchiveSink::Path(file))?,
            Output::DockerArchiveStdout => export::to_docker_archive(store, &images, export::ArchiveSink::Stdout)?,
        }
    }
    if let Some(daemon) = &exports.load {
        // As `docker build -t X --load`: X alone, not also the target's name.
        let loading: Vec<(Vec<String>, Descriptor)> = match exports.load_names.is_empty() {
            true => images.clone(),
            false => images
                .iter()
                .map(|(tags, desc)| {
                    let named: Vec<String> = tags
                        .iter()
                        .filter(|t| exports.load_names.contains(t))
                        .cloned()
                        .collect();
                    (named, desc.clone())
                })
                .filter(|(tags, _)| !tags.is_empty())
                .collect(),
        };
        if !loading.is_empty() {
            report.loaded = export::load::load(store, &loading, daemon)?;
        }
    }
    record_explanations(
        store,
        graph,
        &plan,
        targets,
        &outcome,
        exports,
        no_cache,
        &scheduler.opts.recipe,
    )?;
    if cache_to && (outcome.errors.is_empty() || keep_going) {
        report.cache = Some(scheduler.push_cache(&plan, &outcome)?);
    }
    if outcome.errors.is_empty() {
        for (name, reference) in &exports.pushes {
            if cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            let Some((_, desc)) = built.iter().find(|(n, _)| n == name) else {
                continue;
            };
            report
                .pushed
                .push(push(store, scheduler.registry(), desc, reference, compression)?);
        }
    }
    report.errors = outcome.errors.into_iter().map(|(_, e)| e).collect();
    Ok(report)
}

/// What the provenance says the build was asked: the recipe and its
/// SHA256, the args, SOURCE_DATE_EPOCH and the compression.
fn invocation(
    graph: &Graph,
    recipe: &Path,
    exports: &Exports,
    compression: crate::layer::Compression,
    epoch: i64,
) -> Result<crate::provenance::Invocation> {
    let bytes = std::fs::read(recipe).map_err(Error::io("read", recipe))?;
    let abs = std::path::absolute(recipe).unwrap_or_else(|_| recipe.to_path_buf());
    let shown = abs
        .strip_prefix(&graph.context_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| recipe.to_path_buf());
    Ok(crate::provenance::Invocation {
        recipe: shown.display().to_string(),
        recipe_sha256: crate::digest::Digest::of(&bytes).hex().to_string(),
        args: exports.args.clone(),
        epoch,
        compression: compression.name().to_string(),
    })
}

/// The SBOM of the image target `node` (its state `state`, stored as
/// `manifest`), as an in-toto statement: the packages its layers hold, the
/// `.deb` checksums its `debian()` bases pinned, the registry bases it
/// builds on.
#[allow(clippy::too_many_arguments)]
fn sbom_statement(
    store: &Store,
    graph: &Graph,
    plan: &Plan,
    node: crate::graph::NodeId,
    state: &crate::store::State,
    manifest: &Descriptor,
    name: &str,
    epoch: i64,
) -> Result<Vec<u8>> {
    use crate::graph::{BaseSource, Op};
    let layers: Vec<(crate::digest::Digest, PathBuf)> = state
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| (d.clone(), store.layer_dir(d)))
        .collect();
    let mut packages = crate::sbom::scan(&layers);
    let closure = graph.closure(&[node]);
    let sets: Vec<&crate::lock::DebianSet> = closure
        .iter()
        .filter_map(|id| plan.debian_sets.get(id).map(|s| s.as_ref()))
        .collect();
    crate::sbom::add_debian_checksums(&mut packages, &sets);
    let bases: Vec<crate::sbom::Base> = closure
        .iter()
        .filter_map(|&id| match &graph.node(id).op {
            Op::Base(BaseSource::Registry { reference }) => {
                plan.base_identities.get(&id).map(|identity| crate::sbom::Base {
                    reference: reference.clone(),
                    digest: crate::digest::Digest::from_bytes(*identity),
                })
            }
            _ => None,
        })
        .collect();
    let doc = crate::sbom::spdx(name, &manifest.digest, &packages, &bases, &crate::image::rfc3339(epoch));
    Ok(crate::sbom::statement(
        name,
        &manifest.digest,
        crate::sbom::SPDX_PREDICATE,
        doc,
    ))
}

/// Pushes the image a manifest of the store describes, its layers in
/// `compression` (made once per layer and kept).
pub fn push(
    store: &Store,
    client: &Client,
    desc: &Descriptor,
    target: &Reference,
    compression: crate::layer::Compression,
) -> Result<Pushed> {
    let desc = &crate::store::with_compression(store, desc, compression)?;
    let pusher = Pusher::new(store, client);
    let digest = if crate::store::is_index(desc) {
        // Each platform's image by its digest, then the index under the tag.
        let by_digest = Reference {
            tag: None,
            digest: None,
            ..target.clone()
        };
        let manifests = crate::store::manifests_of(store, desc)?;
        for manifest in &manifests {
            pusher.image(&read_image(store, manifest)?, &by_digest)?;
        }
        let bytes = store.read_blob(&desc.digest)?;
        let digest = pusher.manifest(target, &desc.media_type, &bytes)?;
        // Attestations are also OCI 1.1 referrers of the image they are about.
        for attestation in manifests.iter().filter(|m| crate::store::is_attestation(m)) {
            let Some(subject) = attestation
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::image::REFERENCE_DIGEST))
                .and_then(|d| d.parse::<crate::digest::Digest>().ok())
            else {
                continue;
            };
            let mut referrer = attestation.clone();
            referrer.platform = None;
            referrer.artifact_type = Some(crate::store::IN_TOTO_MEDIA_TYPE.into());
            pusher.referrer(&by_digest, &subject, &referrer)?;
        }
        digest
    } else {
        pusher.image(&read_image(store, desc)?, target)?
    };
    Ok(Pushed {
        reference: Reference {
            digest: None,
            ..target.clone()
        },
        digest,
        stats: pusher.stats(),
    })
}

/// Stores, per built target, its nodes' facts and why each executed node missed.
#[allow(clippy::too_many_arguments)]
fn record_explanations(
    store: &Store,
    graph: &Graph,
    plan: &Plan,
    targets: &[&Target],
    outcome: &Outcome,
    exports: &Exports,
    no_cache: bool,
    recipe: &Path,
) -> Result<()> {
    let recipe = std::fs::canonicalize(recipe).unwrap_or_else(|_| recipe.to_path_buf());
    for target in targets {
        let (TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. }) = &target.kind else {
            continue;
        };
        if !outcome.states.contains_key(node) {
            continue;
        }
        let nodes = graph.closure(&[*node]);
        let facts = explain::facts(graph, plan, &nodes);
        let executed: HashSet<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| outcome.executed.contains(n))
            .map(|(i, _)| i)
            .collect();
        let previous = explain::load(store, &recipe, &target.name)?;
        let misses = explain::explain(previous.as_ref(), &facts, &executed, no_cache);
        let args = exports.args.iter().cloned().collect();
        let record = explain::BuildRecord {
            target: target.name.clone(),
            arg_changes: explain::arg_changes(previous.as_ref(), &args),
            args,
            nodes: facts,
            misses,
        };
        if matches!(target.kind, TargetKind::Image { .. }) {
            let config = crate::digest::Digest::of(&crate::image::to_json(&outcome.states[node].config));
            explain::record_origins(store, graph, *node, &config)?;
        }
        let bytes = serde_json::to_vec(&record).expect("explain records serialise");
        let path = explain::record_path(store, &recipe, &target.name);
        // A fully cached build writes nothing it already has.
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            store.write_atomic(&path, &bytes)?;
        }
    }
    Ok(())
}

/// Pulls `reference` (resolved for `platform`, no lock involved) into the
/// store and tags it under the text the user gave; `progress` hears
/// (bytes downloaded, bytes to download).
pub fn pull(
    store: &Store,
    client: &Client,
    text: &str,
    platform: &crate::image::Platform,
    epoch: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Descriptor> {
    let desc = pull_untagged(store, client, text, platform, epoch, progress)?;
    store.tag(text, &desc)?;
    Ok(desc)
}

/// As [`pull`], without tagging: the image and its layers are in the
/// store, and whatever the store called `text` is left as it was.
pub fn pull_untagged(
    store: &Store,
    client: &Client,
    text: &str,
    platform: &crate::image::Platform,
    epoch: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Descriptor> {
    let reference = Reference::parse(text)?;
    let identity = *crate::registry::resolve(client, &reference, platform)?.0.bytes();
    let source = crate::graph::BaseSource::Registry {
        reference: text.to_string(),
    };
    let compression = crate::layer::Compression::Gzip;
    let record = crate::bases::import(store, &source, Some(&identity), client, platform, epoch, progress)?;
    let config = record.config.ok_or_else(|| Error::BadImage {
        what: text.to_string(),
        reason: "the image has no config".into(),
    })?;
    write_image(store, &crate::store::State::new(config), compression)
}

/// Keeps what a `strata run` changed (the `upper` directory of its scratch)
/// as a new image on top of `image`, tagged `name`, with a history entry
/// that says how it was made.
pub fn commit(
    store: &Store,
    image: &crate::image::ImageConfig,
    upper: &Path,
    name: &str,
    created_by: String,
    epoch: i64,
) -> Result<Descriptor> {
    // Kept uncompressed, as a build's images are in the store.
    let compression = crate::layer::Compression::None;
    let (diff_id, _) = crate::store::write_layer(store, upper, epoch, true, &|_| {})?;
    let mut config = image.clone();
    config.created = Some(crate::image::rfc3339(epoch));
    config.rootfs.diff_ids.push(diff_id);
    config.history.push(crate::image::History {
        created: config.created.clone(),
        created_by: Some(created_by),
        comment: Some("strata run --commit".into()),
        ..crate::image::History::default()
    });
    let desc = write_image(store, &crate::store::State::new(config), compression)?;
    store.tag(name, &desc)?;
    Ok(desc)
}
