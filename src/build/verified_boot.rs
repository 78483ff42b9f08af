//! The `verified-boot` format: the build side of verified boot.
//!
//! The root filesystem gets the verifier binary at `/sbin/cairn`; its tar (`NAME.tar`,
//! without the kernel, which is in the boot part) is attested and signed, and the tar and
//! its attestations become the payload disk; the kernel, the cmdline and the verifier
//! initramfs (the binary again as `/init`, the boot policy and trusted keys, the virtio and
//! overlay modules) form the boot part. The provenance's subject is the payload's
//! `NAME.tar` (what the verifier checks); the verifier binary is recorded as a resolved
//! dependency. File layouts are in [`crate::emit::verified_boot`]; the guest side is
//! [`crate::init::verifier`].

use std::fs;
use std::path::{Path, PathBuf};

use crate::assemble::Assembly;
use crate::attest::SourceFile;
use crate::attest::facts::{BuildContext, build_facts};
use crate::digest::Digest;
use crate::emit::verified_boot::{
    MODULES, PAYLOAD_CAIRN, VerifierInitrd, module_file_name, write_payload_disk,
    write_verifier_initrd,
};
use crate::emit::{self, EmitError, Output};
use crate::lock::BuildInputs;
use crate::policy::PolicyError;
use crate::sign::attestations::AttestationSignError;
use crate::sign::keys::{PublicKey, SignError, SigningKey};
use crate::tree::{Node, NodeKind, Tree, TreeError, TreePath};

use super::{BuildOutput, Document};

/// The verified-boot settings of a build.
#[derive(Clone, Debug, Default)]
pub struct VerifiedBootOptions {
    /// The policy embedded in the verifier initramfs (YAML; keys given by `path:` are
    /// inlined). `None`: a signed provenance by a trusted key.
    pub policy: Option<PathBuf>,
    /// Public keys (SPKI PEM files) the verifier trusts. Empty: the signing key's.
    pub keys: Vec<PathBuf>,
    /// The statically linked cairn used as the verifier's `/init` and the payload's
    /// `/sbin/cairn`. `None`: the running cairn.
    pub verifier_binary: Option<PathBuf>,
}

/// The policy the verifier enforces when none is given.
const DEFAULT_POLICY: &str = "require:\n  provenance: true\n";

/// Why the verified-boot outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VerifiedBootError {
    #[error("reading the verifier binary {}: {source}", path.display())]
    ReadVerifier { path: PathBuf, source: std::io::Error },
    #[error(
        "the verifier binary {} is dynamically linked; build cairn with RUSTFLAGS=\"-C target-feature=+crt-static\" and pass it with --verifier-binary",
        path.display()
    )]
    Dynamic { path: PathBuf },
    #[error("the verifier binary {}: {source}", path.display())]
    NotElf { path: PathBuf, source: NotElf },
    #[error("verified-boot needs a kernel")]
    NoKernel,
    #[error("{0} in the image is not a regular file")]
    NotAFile(&'static str),
    #[error(
        "verified-boot needs the kernel module {0} (uncompressed) under lib/modules/<version>/kernel/ of the kernel image"
    )]
    MissingModule(&'static str),
    #[error("reading {path} from the build spool: {source}")]
    ReadContent { path: String, source: std::io::Error },
    #[error("reading boot policy {}: {source}", path.display())]
    ReadPolicy { path: PathBuf, source: std::io::Error },
    #[error("parsing boot policy {}: {source}", path.display())]
    ParsePolicy { path: PathBuf, source: serde_norway::Error },
    #[error("boot policy: a key's path is not a string")]
    KeyPathNotString,
    #[error("reading key {rel} of the boot policy: {source}")]
    ReadPolicyKey { rel: String, source: std::io::Error },
    #[error("writing the boot policy: {0}")]
    WritePolicy(serde_norway::Error),
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("reading --boot-key {}: {source}", path.display())]
    BootKey { path: PathBuf, source: SignError },
    #[error("signing the attestations: {0}")]
    Sign(#[source] AttestationSignError),
    #[error("{0}")]
    Tree(#[from] TreeError),
    #[error("{0}")]
    Emit(#[from] EmitError),
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// What [`is_static_elf`] found wrong with a file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotElf(&'static str);

/// The inputs of [`write_outputs`] beyond the assembled tree.
pub(super) struct Request<'a> {
    pub ctx: &'a BuildContext<'a>,
    pub inputs: &'a BuildInputs,
    pub key: &'a SigningKey,
    pub options: &'a VerifiedBootOptions,
    /// The build's staging directory: outputs go here, the payload members into `.payload/`.
    pub staging: &'a Path,
}

/// Writes the verified-boot outputs into the staging directory: the attestations of the
/// payload's `NAME.tar`, then `NAME-kernel`, `NAME-cmdline`, `NAME-initrd.img` and
/// `NAME-payload.img`.
pub(super) fn write_outputs(
    req: &Request<'_>,
    assembly: &mut Assembly,
) -> Result<BuildOutput, VerifiedBootError> {
    let name = req.ctx.name;
    let sd = assembly.source_date;
    let opts = req.options;
    let bin_path = opts.verifier_binary.clone().unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let binary = fs::read(&bin_path)
        .map_err(|source| VerifiedBootError::ReadVerifier { path: bin_path.clone(), source })?;
    match is_static_elf(&binary) {
        Ok(true) => {}
        Ok(false) => return Err(VerifiedBootError::Dynamic { path: bin_path }),
        Err(source) => return Err(VerifiedBootError::NotElf { path: bin_path, source }),
    }
    let parent = Node::dir(0o755, sd.secs());
    let content = assembly.tree.spool(&binary[..], binary.len() as u64)?;
    assembly.tree.insert(
        TreePath::parse(PAYLOAD_CAIRN)?,
        Node::file(content, 0o755, sd.secs()),
        &parent,
    )?;

    // The payload: NAME.tar and its signed attestations.
    let pdir = req.staging.join(".payload");
    fs::create_dir(&pdir)
        .map_err(|source| VerifiedBootError::Write { path: pdir.clone(), source })?;
    // The kernel is in the boot part; the payload need not carry it again.
    let skip = |p: &TreePath| {
        matches!(p.as_str(), emit::KERNEL_PATH | emit::CMDLINE_PATH | emit::UCODE_PATH)
    };
    let tar_name = format!("{name}.tar");
    let tar_bytes = emit::tar::write_tar_filtered(&assembly.tree, |p| !skip(p), Vec::new())?;
    write(&pdir.join(&tar_name), &tar_bytes)?;
    let tar_out = vec![output(tar_name.clone(), &tar_bytes)];
    drop(tar_bytes);
    let mut facts = build_facts(req.ctx, req.inputs, &assembly.package_dbs, &tar_out);
    facts.files.push(SourceFile {
        source: format!("cairn verifier binary (/init, /{PAYLOAD_CAIRN})"),
        digest: Digest::of(&binary),
        size: binary.len() as u64,
    });
    let (documents, signed) =
        super::attest(&facts, Some(req.key)).map_err(VerifiedBootError::Sign)?;
    let mut outputs = Vec::new();
    let mut members = vec![(tar_name.clone(), pdir.join(&tar_name))];
    for Document { file_name, bytes } in &documents {
        write(&pdir.join(file_name), bytes)?;
        write(&req.staging.join(file_name), bytes)?;
        members.push((file_name.clone(), pdir.join(file_name)));
        outputs.push(output(file_name.clone(), bytes));
    }

    // The boot part.
    let tree = &assembly.tree;
    let kernel = file_bytes(tree, emit::KERNEL_PATH)?.ok_or(VerifiedBootError::NoKernel)?;
    let cmdline = file_bytes(tree, emit::CMDLINE_PATH)?.unwrap_or_default();
    let modules = find_modules(tree, &assembly.kernel_modules)?;
    let policy = match &opts.policy {
        Some(p) => embeddable_policy(p)?,
        None => DEFAULT_POLICY.to_string(),
    };
    let keys = trusted_keys(opts, req.key)?;
    let initrd =
        VerifierInitrd { verifier: &binary, policy_yaml: &policy, keys: &keys, modules: &modules };
    let mut boot_file = |suffix: &str, bytes: &[u8]| -> Result<(), VerifiedBootError> {
        let rel = format!("{name}{suffix}");
        write(&req.staging.join(&rel), bytes)?;
        outputs.push(output(rel, bytes));
        Ok(())
    };
    boot_file("-kernel", &kernel)?;
    boot_file("-cmdline", &cmdline)?;
    boot_file("-initrd.img", &write_verifier_initrd(Vec::new(), &initrd, sd)?)?;
    boot_file("-payload.img", &write_payload_disk(Vec::new(), &members, sd)?)?;
    Ok(BuildOutput { outputs, facts: Some(facts), documents, signed, cache: super::CacheUse::Off })
}

fn output(rel_path: String, bytes: &[u8]) -> Output {
    Output { rel_path, digest: Digest::of(bytes), size: bytes.len() as u64 }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), VerifiedBootError> {
    crate::atomic::write_atomic(path, bytes)
        .map_err(|source| VerifiedBootError::Write { path: path.to_path_buf(), source })
}

/// The bytes of a regular file of the image, `None` when absent.
fn file_bytes(tree: &Tree, path: &'static str) -> Result<Option<Vec<u8>>, VerifiedBootError> {
    match tree.get(&TreePath::parse(path)?).map(|n| &n.kind) {
        Some(NodeKind::File(c)) => tree
            .read_to_vec(c)
            .map(Some)
            .map_err(|source| VerifiedBootError::ReadContent { path: path.to_string(), source }),
        None => Ok(None),
        Some(_) => Err(VerifiedBootError::NotAFile(path)),
    }
}

/// The verifier's modules out of the kernel component's `lib/modules/…` files, as
/// `(file name, bytes)` in load order; an error names a missing one.
fn find_modules(
    tree: &Tree,
    kernel_files: &[(String, Node)],
) -> Result<Vec<(String, Vec<u8>)>, VerifiedBootError> {
    let mut out = Vec::new();
    for m in MODULES {
        let suffix = format!("/kernel/{m}");
        let found = kernel_files.iter().find(|(p, _)| p.ends_with(&suffix));
        let Some((path, Node { kind: NodeKind::File(c), .. })) = found else {
            return Err(VerifiedBootError::MissingModule(m));
        };
        let bytes = tree
            .read_to_vec(c)
            .map_err(|source| VerifiedBootError::ReadContent { path: path.clone(), source })?;
        out.push((module_file_name(m).to_string(), bytes));
    }
    Ok(out)
}

/// The keys the verifier trusts, as `(name, SPKI PEM)`: the `--boot-key` files, else the
/// signing key's public half.
fn trusted_keys(
    opts: &VerifiedBootOptions,
    key: &SigningKey,
) -> Result<Vec<(String, String)>, VerifiedBootError> {
    if opts.keys.is_empty() {
        return Ok(vec![("build-key".to_string(), key.public_key().to_spki_pem())]);
    }
    let mut keys = Vec::new();
    for (i, k) in opts.keys.iter().enumerate() {
        let pk = PublicKey::read_pem_file(k)
            .map_err(|source| VerifiedBootError::BootKey { path: k.clone(), source })?;
        keys.push((format!("boot-key-{i}"), pk.to_spki_pem()));
    }
    Ok(keys)
}

/// Is this ELF file statically linked (no PT_INTERP program header)? Errors on a file
/// that is not a 64-bit little-endian ELF.
pub fn is_static_elf(bytes: &[u8]) -> Result<bool, NotElf> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(NotElf("not an ELF file"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(NotElf("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&bytes[0x20..0x28]);
    let phoff = usize::try_from(u64::from_le_bytes(b8)).map_err(|_| NotElf("bad e_phoff"))?;
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    if phentsize < 4 {
        return Err(NotElf("bad e_phentsize"));
    }
    let bad = || NotElf("bad program headers");
    for i in 0..phnum {
        let o = phoff.checked_add(i.checked_mul(phentsize).ok_or_else(bad)?).ok_or_else(bad)?;
        let Some(h) = o.checked_add(4).and_then(|end| bytes.get(o..end)) else {
            return Err(NotElf("program headers run past the end of the file"));
        };
        if u32::from_le_bytes([h[0], h[1], h[2], h[3]]) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads the policy file and inlines the keys it names by `path:` (relative to the policy
/// file), so the verifier initramfs needs no other file. Checks that it parses and resolves.
pub fn embeddable_policy(path: &Path) -> Result<String, VerifiedBootError> {
    let text = fs::read_to_string(path)
        .map_err(|source| VerifiedBootError::ReadPolicy { path: path.to_path_buf(), source })?;
    // Loaded once as `cairn verify` would, for its errors.
    crate::policy::load(path)?;
    let mut doc: serde_norway::Value = serde_norway::from_str(&text)
        .map_err(|source| VerifiedBootError::ParsePolicy { path: path.to_path_buf(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(keys) = doc.get_mut("keys").and_then(|k| k.as_sequence_mut()) {
        for k in keys {
            let Some(map) = k.as_mapping_mut() else { continue };
            if let Some(rel) = map.remove("path") {
                let rel = rel.as_str().ok_or(VerifiedBootError::KeyPathNotString)?;
                let pem = fs::read_to_string(base.join(rel)).map_err(|source| {
                    VerifiedBootError::ReadPolicyKey { rel: rel.to_string(), source }
                })?;
                map.insert("pem".into(), pem.into());
            }
        }
    }
    let out = serde_norway::to_string(&doc).map_err(VerifiedBootError::WritePolicy)?;
    crate::policy::parse("boot policy", &out)?.resolve("boot policy", base)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
