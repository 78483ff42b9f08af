//! `cairn build`: assemble a spec from pinned inputs and write the outputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::assemble::{self, AssembleOptions};
use crate::attest::facts::{BuildContext, build_facts};
use crate::attest::sbom::{cyclonedx, spdx};
use crate::attest::{BuildFacts, DEFAULT_BUILDER_ID, provenance, sbom_statement, to_json_bytes};
use crate::emit::{self, Format};
use crate::lock::{self, LockMode};
use crate::sign::attestations::sign_statements;

use super::GlobalArgs;
use super::lock::LoadedSpec;

/// Build an image from a spec, using only pinned inputs; never touches the network.
///
/// Every image must be pinned by the lock (SPEC.lock) or by an @sha256: reference in the
/// spec. Output names follow LinuxKit: NAME.tar, NAME-kernel, NAME-initrd.img,
/// NAME-cmdline, NAME.oci/. Several formats share one assembly. Outputs appear only
/// when the whole build succeeded. All timestamps are clamped to SOURCE_DATE_EPOCH, else
/// the spec's x-cairn.source-date-epoch, else the value the lock recorded.
///
/// Formats: tar, kernel+initrd (gzip initrd), kernel+initrd:zstd, oci.
///
/// Examples:
///   cairn build examples/hello.yml --format tar --format kernel+initrd -o out/
///   cairn build examples/hello.yml --locked --format oci -o out/
///   SOURCE_DATE_EPOCH=1700000000 cairn build hello.yml --name hello-2023 -o out/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The spec file (LinuxKit YAML).
    pub spec: PathBuf,

    /// Output format; repeat for several. Default: kernel+initrd.
    #[arg(long = "format", short = 'f', value_name = "FORMAT")]
    pub formats: Vec<Format>,

    /// Output directory (created if missing).
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    /// Base name of the outputs. Default: the spec file's name without extension.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Fail (exit 1) if SPEC.lock is missing or does not match the spec.
    #[arg(long)]
    pub locked: bool,

    /// Sign the provenance and SBOM attestations with this private key (PKCS#8 PEM;
    /// CAIRN_KEY_PASSPHRASE decrypts an encrypted one): writes NAME.intoto.jsonl and
    /// NAME.sigstore.json.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// The SLSA builder id recorded in the provenance (who ran this build).
    #[arg(long, value_name = "URI", default_value = DEFAULT_BUILDER_ID)]
    pub builder_id: String,

    /// verified-boot: the policy embedded in the verifier initramfs (YAML; keys given by
    /// `path:` are inlined). Default: a signed provenance by a trusted key.
    #[arg(long, value_name = "FILE")]
    pub boot_policy: Option<PathBuf>,

    /// verified-boot: a public key (SPKI PEM) the verifier trusts; repeatable. Default: the
    /// public key of --sign-key.
    #[arg(long = "boot-key", value_name = "FILE")]
    pub boot_keys: Vec<PathBuf>,

    /// verified-boot: the statically linked cairn binary used as the verifier's /init and
    /// the payload's /sbin/cairn. Default: this cairn (refused unless statically linked).
    #[arg(long, value_name = "FILE")]
    pub verifier_binary: Option<PathBuf>,

    /// Refuse layers that unpack to more than this many bytes in total.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_unpacked_size: u64,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedSpec::read(&args.spec)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => loaded
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .context("choosing an output name: the spec file name is not UTF-8; pass --name")?,
    };
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        anyhow::bail!("invalid output name {name:?}: it must be a plain file name");
    }
    let formats = if args.formats.is_empty() {
        vec![Format::KernelInitrd(emit::compress::Codec::Gzip)]
    } else {
        args.formats.clone()
    };
    let env_sd = super::env_source_date()?;
    // A bad key or passphrase should fail before minutes of work, not after.
    let sign_key = args.sign_key.as_deref().map(super::load_signing_key).transpose()?;
    let lock_file = loaded.read_lock()?;
    let store = global.open_store()?;
    let mode = if args.locked { LockMode::Locked } else { LockMode::PinnedOnly };
    let spec_name = loaded.path.display().to_string();
    let lock_name = loaded.lock_path().display().to_string();
    let inputs = match lock::pin_for_build(
        &loaded.spec,
        &loaded.digest,
        loaded.dir(),
        lock_file.as_ref(),
        mode,
        &store,
        env_sd,
        (&spec_name, &lock_name),
    )
    .with_context(|| format!("building {spec_name}"))?
    {
        Ok(inputs) => inputs,
        Err(stale) => {
            eprintln!("cairn: {stale}");
            return Ok(ExitCode::from(super::EXIT_REJECTED));
        }
    };

    let verified_boot = formats.contains(&Format::VerifiedBoot);
    if verified_boot && formats.len() != 1 {
        anyhow::bail!("--format verified-boot cannot be combined with other formats");
    }
    if verified_boot && sign_key.is_none() {
        anyhow::bail!("--format verified-boot needs --sign-key: the payload must be signed");
    }
    let progress = Progress::new(global.quiet);
    progress.say(&format!("assembling {spec_name}"));
    let opts = AssembleOptions { max_unpacked_size: args.max_unpacked_size };
    let mut assembly = assemble::assemble(&loaded.spec, &loaded.text, &inputs, &store, &opts)
        .with_context(|| format!("assembling {spec_name}"))?;
    for s in &assembly.skipped {
        progress.warn(&format!("left out a device node or FIFO: {s}"));
    }

    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating output directory {}", args.output.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cairn-build-")
        .tempdir_in(&args.output)
        .with_context(|| format!("writing to output directory {}", args.output.display()))?;
    progress.say("writing outputs");
    let spec_file_name = loaded
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| spec_name.clone());
    let ctx = BuildContext {
        name: &name,
        spec_path: &spec_file_name,
        spec_digest: loaded.digest,
        formats: formats.iter().map(|f| f.to_string()).collect(),
        builder_id: &args.builder_id,
    };
    if let (true, Some(key)) = (verified_boot, &sign_key) {
        let outputs =
            verified_boot_outputs(&args, &mut assembly, &inputs, &ctx, staging.path(), key)
                .with_context(|| format!("writing the verified-boot outputs of {spec_name}"))?;
        publish(staging.path(), &args.output, &outputs)?;
        progress.finish();
        if !global.quiet {
            for o in &outputs {
                println!("{}  {}", o.digest, args.output.join(&o.rel_path).display());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut outputs =
        emit::emit(&assembly.tree, &formats, staging.path(), &name, assembly.source_date)
            .with_context(|| format!("writing outputs of {spec_name}"))?;
    let facts = build_facts(&ctx, &inputs, &assembly.package_dbs, &outputs);
    let mut documents = attestation_documents(&facts);
    if let Some(key) = &sign_key {
        let provenance = provenance::provenance_statement(&facts);
        let sbom = sbom_statement(&facts, &spdx::document(&facts));
        let signed = sign_statements(&provenance, &sbom, key)
            .with_context(|| format!("signing the attestations of {spec_name}"))?;
        documents.push((format!("{name}.intoto.jsonl"), signed.intoto_jsonl));
        documents.push((format!("{name}.sigstore.json"), signed.sigstore_json));
    }
    for (file_name, bytes) in documents {
        let path = staging.path().join(&file_name);
        crate::atomic::write_atomic(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        outputs.push(emit::Output {
            rel_path: file_name,
            digest: crate::digest::Digest::of(&bytes),
            size: bytes.len() as u64,
        });
    }
    publish(staging.path(), &args.output, &outputs)?;
    progress.finish();
    if !global.quiet {
        for o in &outputs {
            println!("{}  {}", o.digest, args.output.join(&o.rel_path).display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The verified-boot outputs (see [`crate::vboot`]): the root filesystem gets the verifier
/// binary at /sbin/cairn; its tar and signed attestations go into the payload disk; the
/// kernel, cmdline and the verifier initramfs form the boot part. The provenance's subject
/// is the payload's NAME.tar (what the verifier checks); the verifier binary is recorded
/// as a resolved dependency.
fn verified_boot_outputs(
    args: &Args,
    assembly: &mut assemble::Assembly,
    inputs: &crate::lock::BuildInputs,
    ctx: &BuildContext<'_>,
    staging: &Path,
    key: &crate::sign::keys::SigningKey,
) -> anyhow::Result<Vec<emit::Output>> {
    use crate::tree::{Content, Node, NodeKind, TreePath};
    let name = ctx.name;
    let sd = assembly.source_date;
    let bin_path = args.verifier_binary.clone().unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let binary = std::fs::read(&bin_path)
        .with_context(|| format!("reading the verifier binary {}", bin_path.display()))?;
    match crate::vboot::is_static_elf(&binary) {
        Ok(true) => {}
        Ok(false) => anyhow::bail!(
            "the verifier binary {} is dynamically linked; build cairn with RUSTFLAGS=\"-C target-feature=+crt-static\" and pass it with --verifier-binary",
            bin_path.display()
        ),
        Err(e) => anyhow::bail!("the verifier binary {}: {e}", bin_path.display()),
    }
    let bin_digest = crate::digest::Digest::of(&binary);
    let parent = Node::dir(0o755, sd.secs());
    let content = assembly.tree.spool(&binary[..], binary.len() as u64)?;
    assembly.tree.insert(
        TreePath::parse(crate::vboot::PAYLOAD_CAIRN)?,
        Node::file(content, 0o755, sd.secs()),
        &parent,
    )?;

    // The payload: NAME.tar and its signed attestations.
    let pdir = staging.join(".payload");
    std::fs::create_dir(&pdir)?;
    // The kernel is in the boot part; the payload need not carry it again.
    let skip = |p: &TreePath| {
        matches!(p.as_str(), emit::KERNEL_PATH | emit::CMDLINE_PATH | emit::UCODE_PATH)
    };
    let tar_bytes = emit::tar::write_tar_filtered(&assembly.tree, |p| !skip(p), Vec::new())?;
    crate::atomic::write_atomic(&pdir.join(format!("{name}.tar")), &tar_bytes)?;
    let tar_out = vec![emit::Output {
        rel_path: format!("{name}.tar"),
        digest: crate::digest::Digest::of(&tar_bytes),
        size: tar_bytes.len() as u64,
    }];
    drop(tar_bytes);
    let mut facts = build_facts(ctx, inputs, &assembly.package_dbs, &tar_out);
    facts.files.push(crate::attest::SourceFile {
        source: format!("cairn verifier binary (/init, /{})", crate::vboot::PAYLOAD_CAIRN),
        digest: bin_digest,
        size: binary.len() as u64,
    });
    let mut documents = attestation_documents(&facts);
    let provenance = provenance::provenance_statement(&facts);
    let sbom = sbom_statement(&facts, &spdx::document(&facts));
    let signed = sign_statements(&provenance, &sbom, key).context("signing the attestations")?;
    documents.push((format!("{name}.intoto.jsonl"), signed.intoto_jsonl));
    documents.push((format!("{name}.sigstore.json"), signed.sigstore_json));
    let mut outputs = Vec::new();
    let mut members = vec![(format!("{name}.tar"), pdir.join(format!("{name}.tar")))];
    for (file_name, bytes) in &documents {
        crate::atomic::write_atomic(&pdir.join(file_name), bytes)?;
        crate::atomic::write_atomic(&staging.join(file_name), bytes)?;
        members.push((file_name.clone(), pdir.join(file_name)));
        outputs.push(emit::Output {
            rel_path: file_name.clone(),
            digest: crate::digest::Digest::of(bytes),
            size: bytes.len() as u64,
        });
    }

    // The boot part.
    let file_bytes = |p: &str| -> anyhow::Result<Option<Vec<u8>>> {
        match assembly.tree.get(&TreePath::parse(p)?).map(|n| &n.kind) {
            Some(NodeKind::File(c)) => Ok(Some(assembly.tree.read_to_vec(c)?)),
            None => Ok(None),
            Some(_) => anyhow::bail!("{p} in the image is not a regular file"),
        }
    };
    let kernel = file_bytes(emit::KERNEL_PATH)?.context("verified-boot needs a kernel")?;
    let cmdline = file_bytes(emit::CMDLINE_PATH)?.unwrap_or_default();
    let mut modules = Vec::new();
    for (file, node) in crate::vboot::find_modules(&assembly.kernel_modules)? {
        let NodeKind::File(c) = &node.kind else { unreachable!("find_modules keeps files") };
        let c: &Content = c;
        modules.push((file, assembly.tree.read_to_vec(c)?));
    }
    let policy = match &args.boot_policy {
        Some(p) => crate::vboot::embeddable_policy(p)?,
        None => "require:\n  provenance: true\n".to_string(),
    };
    let mut keys = Vec::new();
    if args.boot_keys.is_empty() {
        keys.push(("build-key".to_string(), key.public_key().to_spki_pem()));
    }
    for (i, k) in args.boot_keys.iter().enumerate() {
        let pk = crate::sign::keys::PublicKey::read_pem_file(k)
            .with_context(|| format!("reading --boot-key {}", k.display()))?;
        keys.push((format!("boot-key-{i}"), pk.to_spki_pem()));
    }
    let mut write = |rel: String, bytes: &[u8]| -> anyhow::Result<()> {
        crate::atomic::write_atomic(&staging.join(&rel), bytes)?;
        outputs.push(emit::Output {
            rel_path: rel,
            digest: crate::digest::Digest::of(bytes),
            size: bytes.len() as u64,
        });
        Ok(())
    };
    write(format!("{name}-kernel"), &kernel)?;
    write(format!("{name}-cmdline"), &cmdline)?;
    let initrd =
        crate::vboot::write_verifier_initrd(Vec::new(), &binary, &policy, &keys, &modules, sd)?;
    write(format!("{name}-initrd.img"), &initrd)?;
    let disk = crate::vboot::write_payload_disk(Vec::new(), &members, sd)?;
    write(format!("{name}-payload.img"), &disk)?;
    Ok(outputs)
}

/// The unsigned attestations of a build, as (file name, bytes): the SPDX and CycloneDX
/// SBOMs and the in-toto statement carrying the SLSA provenance.
pub(super) fn attestation_documents(facts: &BuildFacts) -> Vec<(String, Vec<u8>)> {
    let name = &facts.name;
    vec![
        (format!("{name}.spdx.json"), to_json_bytes(&spdx::document(facts))),
        (format!("{name}.cdx.json"), to_json_bytes(&cyclonedx::document(facts))),
        (
            format!("{name}.provenance.json"),
            to_json_bytes(&provenance::provenance_statement(facts)),
        ),
    ]
}

/// Moves finished outputs from the staging directory into place, each with one rename.
/// Every destination is checked before anything is moved, so a refusal leaves the output
/// directory as it was.
fn publish(staging: &Path, out: &Path, outputs: &[emit::Output]) -> anyhow::Result<()> {
    for o in outputs {
        let to = out.join(&o.rel_path);
        // Only an earlier OCI layout output may be replaced; any other directory is the user's.
        if to.is_dir() && !(staging.join(&o.rel_path).is_dir() && to.join("oci-layout").is_file()) {
            anyhow::bail!(
                "writing {}: a directory of that name exists and is not an earlier cairn OCI output; remove it or choose another --name",
                to.display()
            );
        }
    }
    for o in outputs {
        let from = staging.join(&o.rel_path);
        let to = out.join(&o.rel_path);
        if to.is_dir() {
            // A directory cannot be replaced by one rename: move the old one aside into the
            // staging directory, which is deleted afterwards.
            let old = staging.join(format!("{}.old", o.rel_path));
            std::fs::rename(&to, &old).with_context(|| format!("replacing {}", to.display()))?;
        }
        std::fs::rename(&from, &to).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

/// A spinner on a terminal, silence otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Progress { bar }
    }
    fn say(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }
    fn warn(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("cairn: warning: {msg}")),
            None => eprintln!("cairn: warning: {msg}"),
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
