//! The build: a loaded spec, its lock and a store in; output files and their attestations
//! out. This is the one entry point every front end calls ([`build`]); the CLI only turns
//! arguments into [`BuildOptions`] and prints the [`BuildOutput`].
//!
//! The stages run in order, each in its own module:
//! [`crate::lock::pin_for_build`] (every input pinned) → [`crate::assemble`] (a tree) →
//! [`crate::emit`] (the image files, into a staging directory) → [`crate::attest`] (SBOMs and
//! provenance of those files) → [`crate::sign`] (DSSE envelopes and a Sigstore bundle) →
//! [`publish`] (one rename per output, only when everything succeeded).
//!
//! The `verified-boot` format takes a different path after assembly ([`verified_boot`]):
//! its payload must carry the signed attestations of the root filesystem, so it is attested
//! and signed before the boot files are written.
//!
//! A build whose inputs are unchanged since an earlier one reuses its outputs from the
//! store, verified ([`cache`]); `BuildOptions::use_cache` turns that off.
//!
//! Stages never print: progress and warnings go through [`Progress`].

pub mod cache;
mod publish;
mod spec_file;
pub mod verified_boot;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::assemble::{self, AssembleError, AssembleOptions};
use crate::attest::facts::{BuildContext, build_facts};
use crate::attest::sbom::{cyclonedx, spdx};
use crate::attest::{BuildFacts, provenance, sbom_statement, to_json_bytes};
use crate::digest::Digest;
use crate::emit::{self, EmitError, Output};
use crate::lock::{self, LockError, LockMode, Lockfile, PinRequest};
use crate::output_name::OutputName;
use crate::sign::attestations::{AttestationSignError, SignedAttestations, sign_statements};
use crate::sign::keys::SigningKey;
use crate::source_date::SourceDate;
use crate::store::Store;

pub use publish::{PublishError, publish_files};
pub use spec_file::{LoadedSpec, SpecFileError};
pub use verified_boot::{VerifiedBootError, VerifiedBootOptions};

/// An output format of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A format written from the tree alone (tar, kernel+initrd, OCI).
    Image(emit::Format),
    /// `<name>-kernel`, `<name>-cmdline`, `<name>-initrd.img` (the verifier initramfs) and
    /// `<name>-payload.img`, see [`verified_boot`].
    VerifiedBoot,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Image(format) => format.fmt(f),
            Format::VerifiedBoot => f.write_str("verified-boot"),
        }
    }
}

impl FromStr for Format {
    type Err = EmitError;
    /// `verified-boot`, or any [`emit::Format`].
    fn from_str(s: &str) -> Result<Format, EmitError> {
        match s {
            "verified-boot" => Ok(Format::VerifiedBoot),
            _ => s.parse().map(Format::Image),
        }
    }
}

/// Reports what the build is doing. The CLI shows a spinner; a library user may ignore it.
pub trait Progress {
    /// A stage started.
    fn stage(&self, what: &str);
    /// Something the user should know that does not stop the build.
    fn warn(&self, message: &str);
}

/// A [`Progress`] that reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// What to build and where.
pub struct BuildOptions<'a> {
    /// Base name of every output (`NAME.tar`, `NAME-kernel`…).
    pub name: OutputName,
    /// Not empty; `verified-boot` only alone.
    pub formats: Vec<Format>,
    /// Created if missing.
    pub output_dir: PathBuf,
    pub lock_mode: LockMode,
    /// `SOURCE_DATE_EPOCH` as the caller parsed it, if set.
    pub env_source_date: Option<SourceDate>,
    /// Signs the provenance and SBOM; required by `verified-boot`.
    pub sign_key: Option<&'a SigningKey>,
    /// The SLSA builder id recorded in the provenance.
    pub builder_id: String,
    pub max_unpacked_size: u64,
    pub max_expansion_ratio: u64,
    pub verified_boot: VerifiedBootOptions,
    /// Directories outside the spec's own that `files[].source` may read from.
    pub allow_source_outside: Vec<PathBuf>,
    /// Reuse the outputs of an identical earlier build from the store, and file this
    /// build's outputs there (see [`cache`]).
    pub use_cache: bool,
}

/// One attestation file as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// What a build wrote into the output directory.
pub struct BuildOutput {
    /// Every published output (file name relative to the output directory, digest, size)
    /// in the order written.
    pub outputs: Vec<Output>,
    /// The facts the attestations were made from; their subjects are the attested outputs.
    /// `None` when the outputs were reused from the cache (the attestation documents
    /// carry the same facts).
    pub facts: Option<BuildFacts>,
    /// The attestation files: SPDX, CycloneDX, the provenance statement, and when signed
    /// `NAME.intoto.jsonl` and `NAME.sigstore.json`.
    pub documents: Vec<Document>,
    /// The signed envelopes, when a key was given.
    pub signed: Option<SignedAttestations>,
    /// Whether the build cache was used, and how.
    pub cache: CacheUse,
}

/// What the build cache did for a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Not consulted: `--no-cache`, `verified-boot`, or inputs it cannot key.
    Off,
    /// No usable entry under this key: built, and filed under it (unless filing failed,
    /// which the build reported as a warning).
    Built(Digest),
    /// The outputs were reused from the entry under this key.
    Reused(Digest),
}

/// The attestation files of every build, in the order written; a signed build adds
/// `.intoto.jsonl` and `.sigstore.json` after them.
const UNSIGNED_DOCUMENTS: [&str; 3] = [".spdx.json", ".cdx.json", ".provenance.json"];

/// Why a build failed. A stale lock under `--locked` is [`LockError::Stale`] inside
/// [`BuildError::Pin`]: a verdict, not an input error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("building {spec}: {source}")]
    Pin { spec: String, source: Box<LockError> },
    #[error("--format verified-boot cannot be combined with other formats")]
    VerifiedBootNotAlone,
    #[error("--format verified-boot needs --sign-key: the payload must be signed")]
    VerifiedBootUnsigned,
    #[error("assembling {spec}: {source}")]
    Assemble { spec: String, source: Box<AssembleError> },
    #[error("writing outputs of {spec}: {source}")]
    Emit { spec: String, source: EmitError },
    #[error("writing the verified-boot outputs of {spec}: {source}")]
    VerifiedBoot { spec: String, source: Box<VerifiedBootError> },
    #[error("signing the attestations of {spec}: {source}")]
    Sign { spec: String, source: AttestationSignError },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Publish(#[from] PublishError),
}

/// Builds `spec` from pinned inputs only (the lock, else `@sha256:` references in the spec)
/// and publishes the outputs into `opts.output_dir`. Never touches the network.
pub fn build(
    spec: &LoadedSpec,
    lock: Option<&Lockfile>,
    store: &Store,
    opts: &BuildOptions<'_>,
    progress: &dyn Progress,
) -> Result<BuildOutput, BuildError> {
    let spec_name = spec.path.display().to_string();
    let lock_name = spec.lock_path().display().to_string();
    let request = PinRequest {
        spec: &spec.spec,
        spec_digest: &spec.digest,
        sources: lock::SourceRoots {
            spec_dir: spec.dir(),
            allowed_outside: &opts.allow_source_outside,
        },
        lock,
        mode: opts.lock_mode,
        env_source_date: opts.env_source_date,
        spec_name: &spec_name,
        lock_name: &lock_name,
    };
    let inputs = lock::pin_for_build(&request, store)
        .map_err(|e| BuildError::Pin { spec: spec_name.clone(), source: Box::new(e) })?;

    let verified_boot = opts.formats.contains(&Format::VerifiedBoot);
    if verified_boot && opts.formats.len() != 1 {
        return Err(BuildError::VerifiedBootNotAlone);
    }
    let vb_key = match (verified_boot, opts.sign_key) {
        (true, None) => return Err(BuildError::VerifiedBootUnsigned),
        (true, Some(key)) => Some(key),
        (false, _) => None,
    };
    let cache_key = if opts.use_cache && !verified_boot {
        progress.stage("looking up the build cache");
        cache::key(spec, lock, &inputs, opts)
    } else {
        None
    };
    if let Some(key) = &cache_key
        && let Some(out) = reuse(key, store, opts, progress)?
    {
        return Ok(out);
    }
    progress.stage(&format!("assembling {spec_name}"));
    let assemble_opts = AssembleOptions {
        max_unpacked_size: opts.max_unpacked_size,
        max_expansion_ratio: opts.max_expansion_ratio,
    };
    let mut assembly =
        assemble::assemble(&spec.spec, &spec.text, &inputs, store, &assemble_opts)
            .map_err(|e| BuildError::Assemble { spec: spec_name.clone(), source: Box::new(e) })?;
    for s in &assembly.skipped {
        progress.warn(&format!("left out a device node or FIFO: {s}"));
    }

    let staging = publish::staging_dir(&opts.output_dir)?;
    publish::ensure_space(staging.path(), &opts.output_dir, &assembly.tree)?;
    progress.stage("writing outputs");
    let ctx = BuildContext {
        name: opts.name.as_str(),
        spec_path: &spec.file_name(),
        spec_digest: spec.digest,
        formats: opts.formats.iter().map(Format::to_string).collect(),
        builder_id: &opts.builder_id,
    };
    let out = match vb_key {
        Some(key) => {
            let vb = verified_boot::Request {
                ctx: &ctx,
                inputs: &inputs,
                key,
                options: &opts.verified_boot,
                staging: staging.path(),
            };
            verified_boot::write_outputs(&vb, &mut assembly).map_err(|e| {
                BuildError::VerifiedBoot { spec: spec_name.clone(), source: Box::new(e) }
            })?
        }
        None => {
            let formats: Vec<emit::Format> = opts
                .formats
                .iter()
                .filter_map(|f| match f {
                    Format::Image(f) => Some(*f),
                    Format::VerifiedBoot => None,
                })
                .collect();
            let emit_err = |source| BuildError::Emit { spec: spec_name.clone(), source };
            let mut outputs = emit::emit(
                &assembly.tree,
                &formats,
                staging.path(),
                &opts.name,
                assembly.source_date,
            )
            .map_err(emit_err)?;
            let facts = build_facts(&ctx, &inputs, &assembly.package_dbs, &outputs);
            let (documents, signed) = attest(&facts, opts.sign_key)
                .map_err(|source| BuildError::Sign { spec: spec_name.clone(), source })?;
            for doc in &documents {
                outputs.push(write_document(staging.path(), doc)?);
            }
            if let Some(key) = &cache_key {
                // The unsigned outputs: every build signs for itself.
                let unsigned = outputs.len() - (documents.len() - UNSIGNED_DOCUMENTS.len());
                progress.stage("filing the outputs in the build cache");
                let filed = outputs.get(..unsigned).unwrap_or_default();
                if let Err(e) = cache::save(store, key, staging.path(), filed) {
                    progress.warn(&format!("could not file the outputs in the build cache: {e}"));
                }
            }
            let cache = cache_key.map_or(CacheUse::Off, CacheUse::Built);
            BuildOutput { outputs, facts: Some(facts), documents, signed, cache }
        }
    };
    publish::publish(staging.path(), &opts.output_dir, &out.outputs)?;
    Ok(out)
}

/// The outputs filed under `key`, restored into a staging directory, re-signed when the
/// build has a key, and published; `None` when there is no usable entry (a broken one is
/// reported as a warning and has been removed).
fn reuse(
    key: &Digest,
    store: &Store,
    opts: &BuildOptions<'_>,
    progress: &dyn Progress,
) -> Result<Option<BuildOutput>, BuildError> {
    let staging = publish::staging_dir(&opts.output_dir)?;
    let rebuild = |e: cache::CacheError| {
        progress.warn(&format!("the build cache entry {key} is unusable, rebuilding: {e}"));
    };
    let cache::Restored { mut outputs, in_place } =
        match cache::restore(store, key, staging.path(), &opts.output_dir) {
            Ok(Some(restored)) => restored,
            Ok(None) => return Ok(None),
            Err(e) => {
                rebuild(e);
                return Ok(None);
            }
        };
    progress.stage("reusing cached outputs");
    let name = opts.name.as_str();
    let restored = cache::documents(staging.path(), name).and_then(|documents| {
        let signed = match opts.sign_key {
            Some(k) => Some(cache::resign(&documents, k)?),
            None => None,
        };
        Ok((documents, signed))
    });
    let (mut documents, signed) = match restored {
        Ok(r) => r,
        Err(e) => {
            rebuild(e);
            store.lock().ok().map(|l| store.remove_cache_entry(key, &l));
            return Ok(None);
        }
    };
    if let Some(s) = &signed {
        for (suffix, bytes) in
            [(".intoto.jsonl", &s.intoto_jsonl), (".sigstore.json", &s.sigstore_json)]
        {
            let doc = Document { file_name: format!("{name}{suffix}"), bytes: bytes.clone() };
            outputs.push(write_document(staging.path(), &doc)?);
            documents.push(doc);
        }
    }
    let moved: Vec<Output> =
        outputs.iter().filter(|o| !in_place.contains(&o.rel_path)).cloned().collect();
    publish::publish(staging.path(), &opts.output_dir, &moved)?;
    Ok(Some(BuildOutput { outputs, facts: None, documents, signed, cache: CacheUse::Reused(*key) }))
}

/// The attestation files of `facts`: the SPDX and CycloneDX SBOMs and the in-toto
/// statement carrying the SLSA provenance, then, with a key, the signed envelopes
/// (`NAME.intoto.jsonl`) and their Sigstore bundles (`NAME.sigstore.json`).
pub fn attest(
    facts: &BuildFacts,
    key: Option<&SigningKey>,
) -> Result<(Vec<Document>, Option<SignedAttestations>), AttestationSignError> {
    let name = &facts.name;
    let doc = |suffix: &str, bytes| Document { file_name: format!("{name}{suffix}"), bytes };
    let spdx = spdx::document(facts);
    let provenance = provenance::provenance_statement(facts);
    let mut documents = vec![
        doc(".spdx.json", to_json_bytes(&spdx)),
        doc(".cdx.json", to_json_bytes(&cyclonedx::document(facts))),
        doc(".provenance.json", to_json_bytes(&provenance)),
    ];
    let Some(key) = key else { return Ok((documents, None)) };
    let signed = sign_statements(&provenance, &sbom_statement(facts, &spdx), key)?;
    documents.push(doc(".intoto.jsonl", signed.intoto_jsonl.clone()));
    documents.push(doc(".sigstore.json", signed.sigstore_json.clone()));
    Ok((documents, Some(signed)))
}

/// Writes one document into `dir` and describes it as an output.
fn write_document(dir: &Path, doc: &Document) -> Result<Output, BuildError> {
    let path = dir.join(&doc.file_name);
    crate::atomic::write_atomic(&path, &doc.bytes)
        .map_err(|source| BuildError::Write { path, source })?;
    Ok(Output {
        rel_path: doc.file_name.clone(),
        digest: Digest::of(&doc.bytes),
        size: doc.bytes.len() as u64,
    })
}
