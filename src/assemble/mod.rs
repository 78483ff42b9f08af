//! Assembly: the pinned components of a spec placed into one filesystem [`Tree`], the way
//! LinuxKit places them.
//!
//! Order (LinuxKit's): the kernel image (its `kernel` file becomes `boot/kernel`, its
//! `kernel.tar` is unpacked into the root, `ucode` becomes `boot/ucode.cpio`, the cmdline
//! `boot/cmdline`); each `init` image unpacked at `/`; `onboot` and `onshutdown` containers
//! as OCI runtime bundles in `containers/onboot/NNN-name/` and
//! `containers/onshutdown/NNN-name/`; `services` in `containers/services/name/`; then the
//! `files` section. Every layer blob is streamed once from the store and its digest is
//! checked when the stream ends; a mismatch fails the build.
//!
//! Each init image and each container's image gets LinuxKit's base entries ([`base`]:
//! `dev/pts`, `dev/shm`, `etc/hosts`, `etc/mtab`, `etc/resolv.conf`, …). An image used by
//! several containers is stored once, as LinuxKit does (its `dupMap`): the first of them in
//! spec order (onboot, onshutdown, services) holds the files in its `lower/` (or `rootfs/`
//! when read-only); the others have no copy, and their `runtime.json` mounts that one (an
//! overlay with their own upper layer, or a bind mount for a read-only container). Images
//! are the same when their manifest digests are.

pub mod base;
pub mod bundle;
pub mod files;
pub mod layer;

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use crate::attest::{PACKAGE_DB_DIR_PREFIXES, PACKAGE_DB_PATHS, PackageDb};
use crate::digest::Digest;
use crate::lock::BuildInputs;
use crate::source_date::SourceDate;
use crate::spec::{Container, Role, Spec};
use crate::store::{Compression, ResolvedImage, Store, StoreError};
use crate::tree::{Content, Node, NodeKind, Tree, TreeError, TreePath};

pub use layer::LayerStats;

/// Why an image could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("{0}")]
    Layer(#[from] layer::LayerError),
    #[error("reading layer {digest} of {image}: {source}")]
    Blob { image: String, digest: String, source: io::Error },
    #[error("opening layer {digest} of {image}: {source}")]
    Store { image: String, digest: String, source: Box<StoreError> },
    #[error(
        "kernel image {image} has no file {file:?} (set kernel.binary to the kernel's path inside the image)"
    )]
    NoKernel { image: String, file: String },
    #[error("kernel image {image}: {file:?} is not a regular file")]
    KernelNotFile { image: String, file: String },
    /// A container's bundle config; the error names the container.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error("files[{index}] ({path}): {source}")]
    File { index: usize, path: String, source: Box<files::FileError> },
    #[error("placing {path}: {source}")]
    Tree { path: String, source: TreeError },
    #[error("creating the build spool: {0}")]
    Spool(io::Error),
}

/// Knobs that change resource use, never output bytes.
#[derive(Clone, Debug)]
pub struct AssembleOptions {
    /// Upper bound on the unpacked size of all layers together (decompression bombs).
    pub max_unpacked_size: u64,
    /// Upper bound on a compressed layer's unpacked size per compressed byte, past
    /// [`layer::RATIO_FLOOR`].
    pub max_expansion_ratio: u64,
}

/// The default `--max-unpacked-size`: far more than any OS image, far less than a disk.
pub const DEFAULT_MAX_UNPACKED_SIZE: u64 = 16 << 30;

/// The default `--max-expansion-ratio`: a kernel or userland gzips about 3:1, zstd about
/// 4:1; a layer of zeros 1000:1 and more.
pub const DEFAULT_MAX_EXPANSION_RATIO: u64 = 100;

impl Default for AssembleOptions {
    fn default() -> Self {
        AssembleOptions {
            max_unpacked_size: DEFAULT_MAX_UNPACKED_SIZE,
            max_expansion_ratio: DEFAULT_MAX_EXPANSION_RATIO,
        }
    }
}

/// The composed tree plus what assembly noticed along the way.
pub struct Assembly {
    pub tree: Tree,
    pub source_date: SourceDate,
    /// Package databases and os-release files found in each component, aligned with
    /// [`BuildInputs::images`]: the raw material of the SBOM.
    pub package_dbs: Vec<Vec<PackageDb>>,
    /// Device nodes and FIFOs left out of layers, as `image: path`.
    pub skipped: Vec<String>,
    /// Every `lib/modules/…` regular file of the kernel image (path inside the image, file
    /// node), sorted by path, whether or not it is placed in the tree: the verified-boot
    /// verifier initramfs takes the modules it needs from here.
    pub kernel_modules: Vec<(String, Node)>,
}

/// Upper bound on one package database file.
const MAX_PACKAGE_DB: u64 = 64 << 20;

/// The package databases of the image flattened at `root`.
fn find_package_dbs(tree: &Tree, root: &TreePath) -> Result<Vec<PackageDb>, AssembleError> {
    let mut paths: Vec<String> = PACKAGE_DB_PATHS.iter().map(|p| p.to_string()).collect();
    for prefix in PACKAGE_DB_DIR_PREFIXES {
        let Ok(dir) = TreePath::parse(prefix) else { continue };
        let dir = root.join_path(&dir);
        for (p, n) in tree.iter_under(&dir) {
            if p != &dir
                && matches!(n.kind, NodeKind::File(_))
                && let Some(rel) = p.strip_prefix(root)
            {
                paths.push(rel.to_string());
            }
        }
    }
    let mut found = Vec::new();
    for rel in paths {
        let Ok(rel_path) = TreePath::parse(&rel) else { continue };
        let Some(Node { kind: NodeKind::File(content), .. }) = tree.get(&root.join_path(&rel_path))
        else {
            continue;
        };
        if content.len() > MAX_PACKAGE_DB {
            continue;
        }
        let bytes = tree.read_to_vec(content).map_err(AssembleError::Spool)?;
        found.push(PackageDb { path: rel, bytes });
    }
    Ok(found)
}

/// Where an image is flattened before it is placed (removed again right after).
const SCRATCH: &str = ".cairn-scratch";
const KERNEL_TAR_SCRATCH: &str = ".cairn-scratch-kernel-tar";

/// Builds the tree for `spec` from the pinned `inputs`. `spec_yaml` is the spec's text,
/// written to files with `metadata: yaml`.
pub fn assemble(
    spec: &Spec,
    spec_yaml: &str,
    inputs: &BuildInputs,
    store: &Store,
    opts: &AssembleOptions,
) -> Result<Assembly, AssembleError> {
    let mut tree = Tree::new().map_err(AssembleError::Spool)?;
    let sd = inputs.source_date;
    let mut budget =
        layer::Budget { left: opts.max_unpacked_size, max_ratio: opts.max_expansion_ratio };
    let mut skipped = Vec::new();
    let parent = Node::dir(0o755, sd.secs());
    let mut unpacked: BTreeMap<Digest, TreePath> = BTreeMap::new();
    let ids = spec.id_map();
    let mut package_dbs = vec![Vec::new(); inputs.images.len()];
    let mut kernel_modules = Vec::new();

    for (position, pinned) in inputs.images.iter().enumerate() {
        let label = pinned.image.to_string();
        match pinned.role {
            Role::Kernel | Role::Init => {
                let kernel = match pinned.role {
                    Role::Kernel => match &spec.kernel {
                        Some(kernel) => Some(kernel),
                        None => continue,
                    },
                    _ => None,
                };
                // Each image is flattened on its own first, as LinuxKit does, so its
                // whiteouts hide only its own lower layers, never another component's files.
                let scratch = flatten_in_scratch(
                    &mut tree,
                    store,
                    &pinned.resolved,
                    &label,
                    sd,
                    &mut budget,
                    &mut skipped,
                )?;
                package_dbs[position] = find_package_dbs(&tree, &scratch)?;
                if let Some(kernel) = kernel {
                    place_kernel(&mut tree, &scratch, kernel, &label, sd, &mut budget, &parent)?;
                    if let Ok(modules) = scratch.join("lib/modules") {
                        for (p, n) in tree.iter_under(&modules) {
                            if matches!(n.kind, NodeKind::File(_))
                                && let Some(rel) = p.strip_prefix(&scratch)
                            {
                                kernel_modules.push((rel.as_str().to_string(), n.clone()));
                            }
                        }
                    }
                } else {
                    let tree_err = |source| AssembleError::Tree { path: label.clone(), source };
                    base::complete_image_root(&mut tree, &scratch, base::ImageKind::Init, sd)
                        .map_err(tree_err)?;
                    tree.copy_subtree(&scratch, &TreePath::root(), &parent).map_err(tree_err)?;
                }
                tree.remove(&scratch);
            }
            Role::Onboot | Role::Onshutdown | Role::Service => {
                let containers: &[Container] = match pinned.role {
                    Role::Onboot => &spec.onboot,
                    Role::Onshutdown => &spec.onshutdown,
                    _ => &spec.services,
                };
                let Some(container) = containers.get(pinned.index) else { continue };
                let Some(dir) = bundle::bundle_dir(pinned.role, pinned.index, &container.name)
                else {
                    continue;
                };
                let tree_err = |source| AssembleError::Tree { path: dir.clone(), source };
                let bundle_dir = TreePath::parse(&dir).map_err(tree_err)?;
                let readonly = container.readonly.unwrap_or(false);
                let extract =
                    bundle_dir.join(bundle::rootfs_extract_dir(readonly)).map_err(tree_err)?;
                // One copy per image, as LinuxKit: the first container (in spec order) of an
                // image holds its files; the others mount that copy (`runtime.json`).
                let shared = unpacked.get(&pinned.resolved.manifest).cloned();
                for sub in bundle::bundle_subdirs(readonly, shared.is_none()) {
                    let p = bundle_dir.join(sub).map_err(tree_err)?;
                    tree.insert(p, Node::dir(0o755, sd.secs()), &parent).map_err(tree_err)?;
                }
                let image_root = match shared {
                    Some(first) => first,
                    None => {
                        let stats = apply_image(
                            &mut tree,
                            &extract,
                            store,
                            &pinned.resolved,
                            &label,
                            sd,
                            &mut budget,
                        )?;
                        skipped.extend(stats.skipped.into_iter().map(|p| format!("{label}: {p}")));
                        base::complete_image_root(
                            &mut tree,
                            &extract,
                            base::ImageKind::Container,
                            sd,
                        )
                        .map_err(tree_err)?;
                        unpacked.insert(pinned.resolved.manifest, extract.clone());
                        extract
                    }
                };
                package_dbs[position] = find_package_dbs(&tree, &image_root)?;
                let config = bundle::runtime_config(&pinned.resolved.config_json, container, &ids)?;
                let config_json = bundle::render_config_json(&config.oci);
                put_generated(&mut tree, &bundle_dir, "config.json", config_json, sd, &parent)?;
                let runtime_json =
                    bundle::render_runtime_json(&config.runtime, &dir, readonly, &image_root);
                put_generated(&mut tree, &bundle_dir, "runtime.json", runtime_json, sd, &parent)?;
            }
        }
    }

    if let Some(kernel) = &spec.kernel {
        let cmdline = kernel.cmdline.clone();
        let boot = TreePath::parse("boot").unwrap_or_default();
        put_generated(&mut tree, &boot, "cmdline", cmdline.into_bytes(), sd, &parent)?;
    }

    files::place_files(&mut tree, spec, spec_yaml, inputs, sd)?;

    Ok(Assembly { tree, source_date: sd, skipped, package_dbs, kernel_modules })
}

fn put_generated(
    tree: &mut Tree,
    dir: &TreePath,
    name: &str,
    bytes: Vec<u8>,
    sd: SourceDate,
    parent: &Node,
) -> Result<(), AssembleError> {
    let path = dir.join_path(&TreePath::parse(name).unwrap_or_default());
    tree.insert(path.clone(), Node::file(Content::inline(bytes), 0o644, sd.secs()), parent)
        .map_err(|source| AssembleError::Tree { path: path.to_string(), source })
}

/// Moves the kernel image's files from the scratch area into place.
fn place_kernel(
    tree: &mut Tree,
    scratch: &TreePath,
    kernel: &crate::spec::Kernel,
    label: &str,
    sd: SourceDate,
    budget: &mut layer::Budget,
    parent: &Node,
) -> Result<(), AssembleError> {
    let find = |tree: &Tree, file: &str| -> Result<Option<Node>, AssembleError> {
        let rel = TreePath::parse(file)
            .map_err(|source| AssembleError::Tree { path: file.to_string(), source })?;
        match tree.get(&scratch.join_path(&rel)) {
            None => Ok(None),
            Some(n @ Node { kind: NodeKind::File(_), .. }) => Ok(Some(n.clone())),
            Some(_) => Err(AssembleError::KernelNotFile {
                image: label.to_string(),
                file: file.to_string(),
            }),
        }
    };
    let binary = kernel.binary.as_str();
    let Some(mut node) = find(tree, binary)? else {
        return Err(AssembleError::NoKernel { image: label.to_string(), file: binary.to_string() });
    };
    node.mtime = sd.secs();
    let boot_kernel = TreePath::parse("boot/kernel").unwrap_or_default();
    tree.insert(boot_kernel, node, parent)
        .map_err(|source| AssembleError::Tree { path: "boot/kernel".into(), source })?;
    if let Some(ucode) = kernel.ucode.as_deref() {
        let Some(mut node) = find(tree, ucode)? else {
            return Err(AssembleError::NoKernel {
                image: label.to_string(),
                file: ucode.to_string(),
            });
        };
        node.mtime = sd.secs();
        tree.insert(TreePath::parse("boot/ucode.cpio").unwrap_or_default(), node, parent)
            .map_err(|source| AssembleError::Tree { path: "boot/ucode.cpio".into(), source })?;
    }
    if let Some(tar_name) = kernel.tar.as_deref()
        && let Some(Node { kind: NodeKind::File(content), .. }) = find(tree, tar_name)?
    {
        {
            let reader = tree.open_owned(&content).map_err(AssembleError::Spool)?;
            let name = format!("{label} ({tar_name})");
            // Unpacked on its own and then merged, so nothing in it can touch boot/.
            let unpacked = TreePath::parse(KERNEL_TAR_SCRATCH).map_err(|source| {
                AssembleError::Tree { path: KERNEL_TAR_SCRATCH.to_string(), source }
            })?;
            layer::apply_layer(tree, &unpacked, reader, &name, sd, &mut budget.left)?;
            tree.copy_subtree(&unpacked, &TreePath::root(), parent)
                .map_err(|source| AssembleError::Tree { path: name.clone(), source })?;
            tree.remove(&unpacked);
        }
    }
    Ok(())
}

/// Unpacks `image` on its own into the scratch subtree (removed again by the caller once
/// its files are placed), recording left-out device nodes in `skipped`.
#[allow(clippy::too_many_arguments)]
fn flatten_in_scratch(
    tree: &mut Tree,
    store: &Store,
    image: &ResolvedImage,
    label: &str,
    sd: SourceDate,
    budget: &mut layer::Budget,
    skipped: &mut Vec<String>,
) -> Result<TreePath, AssembleError> {
    let scratch = TreePath::parse(SCRATCH)
        .map_err(|source| AssembleError::Tree { path: SCRATCH.to_string(), source })?;
    let stats = apply_image(tree, &scratch, store, image, label, sd, budget)?;
    skipped.extend(stats.skipped.into_iter().map(|p| format!("{label}: {p}")));
    Ok(scratch)
}

/// Streams every layer of `image` from the store into `root`, checking each blob's digest.
fn apply_image(
    tree: &mut Tree,
    root: &TreePath,
    store: &Store,
    image: &ResolvedImage,
    label: &str,
    sd: SourceDate,
    budget: &mut layer::Budget,
) -> Result<LayerStats, AssembleError> {
    let mut total = LayerStats::default();
    for layer in &image.layers {
        let digest = layer.digest.to_string();
        let blob = store.open_blob(&layer.digest).map_err(|source| AssembleError::Store {
            image: label.to_string(),
            digest: digest.clone(),
            source: Box::new(source),
        })?;
        let blob_err = |source| AssembleError::Blob {
            image: label.to_string(),
            digest: digest.clone(),
            source,
        };
        let name = format!("layer {digest} of {label}");
        let mut input = BufReader::with_capacity(256 * 1024, blob);
        // Apply, then read the blob to its end so its digest is checked. A corrupt blob
        // explains any parse failure better than the parse error itself, so it wins.
        let compressed = (layer.compression != Compression::None).then_some(layer.size);
        let mut apply = |reader: &mut dyn Read| {
            budget.layer(&name, compressed, |left| {
                layer::apply_layer(tree, root, reader, &name, sd, left)
            })
        };
        let (applied, mut raw) = match layer.compression {
            Compression::None => {
                let s = apply(&mut input);
                (s.map_err(AssembleError::from), input)
            }
            Compression::Gzip => {
                let mut dec = flate2::bufread::MultiGzDecoder::new(input);
                let s = apply(&mut dec)
                    .map_err(AssembleError::from)
                    .and_then(|s| io::copy(&mut dec, &mut io::sink()).map(|_| s).map_err(blob_err));
                (s, dec.into_inner())
            }
            Compression::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(input).map_err(blob_err)?;
                let s = apply(&mut dec)
                    .map_err(AssembleError::from)
                    .and_then(|s| io::copy(&mut dec, &mut io::sink()).map(|_| s).map_err(blob_err));
                (s, dec.finish())
            }
        };
        let stats = match (applied, io::copy(&mut raw, &mut io::sink())) {
            (_, Err(corrupt)) => return Err(blob_err(corrupt)),
            (Err(e), Ok(_)) => return Err(e),
            (Ok(s), Ok(_)) => s,
        };
        total.entries += stats.entries;
        total.bytes += stats.bytes;
        total.skipped.extend(stats.skipped);
    }
    Ok(total)
}

/// Reads a whole regular file of the tree, if present (small files such as /etc/passwd).
pub fn read_small_file(tree: &Tree, path: &str, max: u64) -> Option<Vec<u8>> {
    let p = TreePath::parse(path).ok()?;
    match &tree.get(&p)?.kind {
        NodeKind::File(c) if c.len() <= max => {
            let mut out = Vec::new();
            tree.open(c).read_to_end(&mut out).ok()?;
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
