//! Deterministic fixtures for tests, not part of cairn's interface: tar archives written
//! header by header, gzip and zstd layers, and OCI image layouts (as files in memory, a
//! directory or an OCI archive). The one builder the unit tests in `src/` and the
//! integration tests in `tests/` share, so that every hand-made input is written the
//! same way and the same bytes come out on every machine.
//!
//! It also reads cpio newc archives strictly, and holds the one rule for a test whose tool is missing ([`Tool`]).
//!
//! Everything here builds in memory and panics on misuse (a name too long for a ustar
//! header): a fixture that cannot be built is a broken test, not an input error.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::Command;

use serde_json::json;
use sha2::Digest as _;

/// Media type of an uncompressed OCI layer.
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip-compressed OCI layer.
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd-compressed OCI layer.
pub const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A tar archive built header by header, so that hostile names, types and sizes reach cairn
/// exactly as written (the `tar` crate refuses to write most of them). Owner 0:0, mtime 0.
#[derive(Default, Clone)]
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn new() -> RawTar {
        RawTar(Vec::new())
    }

    /// A tar of regular files, and directories for names ending in `/`, in the given order.
    pub fn of(files: &[(&str, &[u8])]) -> Vec<u8> {
        files
            .iter()
            .fold(
                RawTar::new(),
                |t, (name, data)| {
                    if name.ends_with('/') { t.dir(name) } else { t.file(name, data) }
                },
            )
            .finish()
    }

    /// Appends one ustar header for `name` of type `kind` and the data; the header's size
    /// field says `claimed` bytes whatever `data` holds.
    pub fn raw(
        mut self,
        name: &[u8],
        kind: u8,
        link: &[u8],
        mode: u32,
        claimed: u64,
        data: &[u8],
    ) -> RawTar {
        assert!(name.len() <= 100 && link.len() <= 100, "RawTar takes names of up to 100 bytes");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{claimed:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field read as spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// An entry whose size field tells the truth; directories 0755, everything else 0644.
    pub fn entry(self, name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> RawTar {
        let mode = if kind == b'5' { 0o755 } else { 0o644 };
        self.raw(name, kind, link, mode, data.len() as u64, data)
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name.as_bytes(), b'0', b"", data)
    }

    pub fn dir(self, name: &str) -> RawTar {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.raw(name.as_bytes(), b'2', target.as_bytes(), 0o777, 0, b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name.as_bytes(), b'1', target.as_bytes(), b"")
    }

    /// A PAX extended header (`x`) setting `key` for the next entry.
    pub fn pax(self, key: &str, value: &[u8]) -> RawTar {
        // A record is "LEN key=value\n" where LEN counts its own digits too.
        let body_len = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body_len + 1;
        while (len.to_string().len() + body_len) != len {
            len = len.to_string().len() + body_len;
        }
        let mut record = format!("{len} {key}=").into_bytes();
        record.extend_from_slice(value);
        record.push(b'\n');
        self.entry(b"PaxHeaders/entry", b'x', b"", &record)
    }

    /// A GNU long name (`L`) entry naming the next entry `name`.
    pub fn gnu_long_name(self, name: &[u8]) -> RawTar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(b"././@LongLink", b'L', b"", &data)
    }

    /// The archive with its two zero end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }

    /// The bytes so far, without end blocks (for truncated archives).
    pub fn unfinished(self) -> Vec<u8> {
        self.0
    }
}

/// A tar of every regular file under `dir` (paths relative to it, sorted; directories are
/// implied by the paths, as in an OCI archive).
pub fn tar_dir(dir: &Path) -> io::Result<Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files)?;
    Ok(files.iter().fold(RawTar::new(), |t, (name, data)| t.file(name, data)).finish())
}

/// gzip at level 1, with flate2's fixed header (no name, mtime 0): deterministic.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// zstd at level 3.
pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("compressing in memory")
}

/// One layer blob of an [`OciLayout`].
#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    /// sha256 hex of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    pub fn tar(tar: Vec<u8>) -> Layer {
        Layer { diff_id: sha256_hex(&tar), blob: tar, media_type: MT_LAYER_TAR }
    }

    pub fn gzip(tar: &[u8]) -> Layer {
        Layer::gzipped(gzip(tar), sha256_hex(tar))
    }

    pub fn zstd(tar: &[u8]) -> Layer {
        Layer { blob: zstd(tar), media_type: MT_LAYER_ZSTD, diff_id: sha256_hex(tar) }
    }

    /// A gzip layer from already-compressed bytes and the digest of what they expand to.
    pub fn gzipped(blob: Vec<u8>, diff_id: String) -> Layer {
        Layer { blob, media_type: MT_LAYER_GZIP, diff_id }
    }
}

/// An OCI image layout holding one linux/amd64 image, tagged `latest`, as its files
/// (relative path → bytes). The JSON is written with `serde_json` (keys sorted).
pub struct OciLayout {
    pub files: BTreeMap<String, Vec<u8>>,
    /// sha256 hex of the image manifest.
    pub manifest: String,
}

impl OciLayout {
    pub fn new(layers: &[Layer]) -> OciLayout {
        let mut files = BTreeMap::new();
        let mut put = |bytes: Vec<u8>| -> String {
            let hex = sha256_hex(&bytes);
            files.insert(format!("blobs/sha256/{hex}"), bytes);
            hex
        };
        let diff_ids: Vec<String> =
            layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect();
        let config = json_bytes(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }));
        let config_len = config.len();
        let config_hex = put(config);
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.media_type,
                    "digest": format!("sha256:{}", put(l.blob.clone())),
                    "size": l.blob.len(),
                })
            })
            .collect();
        let manifest = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_hex}"),
                "size": config_len,
            },
            "layers": layer_descs,
        }));
        let manifest_len = manifest.len();
        let manifest_hex = put(manifest);
        let index = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_hex}"),
                "size": manifest_len,
                "annotations": { "org.opencontainers.image.ref.name": "latest" },
            }],
        }));
        files.insert("index.json".into(), index);
        files.insert("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
        OciLayout { files, manifest: manifest_hex }
    }

    /// Writes the layout into `dir` (created).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        for (rel, bytes) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// The layout as an OCI archive (a tar of its files, sorted by path).
    pub fn archive(&self) -> Vec<u8> {
        self.files.iter().fold(RawTar::new(), |t, (name, data)| t.file(name, data)).finish()
    }
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serializes")
}

/// One member of a cpio newc archive, as [`parse_newc`] read it.
#[derive(Debug, PartialEq, Eq)]
pub struct CpioEntry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub data: Vec<u8>,
}

/// A strict cpio newc reader (what cairn's initramfs writer must produce): checks the magic,
/// the zero device and check fields, the padding, and that the trailer ends the archive.
pub fn parse_newc(bytes: &[u8]) -> Vec<CpioEntry> {
    let mut pos = 0usize;
    let mut out = Vec::new();
    loop {
        let h = &bytes[pos..pos + 110];
        assert_eq!(&h[..6], b"070701", "magic at {pos}");
        let field = |i: usize| {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).expect("hex header field");
            u32::from_str_radix(s, 16).expect("hex header field")
        };
        let (size, namesize) = (field(6) as usize, field(11) as usize);
        assert_eq!((field(7), field(8), field(9), field(10), field(12)), (0, 0, 0, 0, 0));
        let name_start = pos + 110;
        let name_bytes = &bytes[name_start..name_start + namesize];
        assert_eq!(name_bytes.last(), Some(&0));
        let name = String::from_utf8(name_bytes[..namesize - 1].to_vec()).expect("UTF-8 name");
        let data_start = (name_start + namesize).next_multiple_of(4);
        assert!(bytes[name_start + namesize..data_start].iter().all(|&b| b == 0));
        let data = bytes[data_start..data_start + size].to_vec();
        pos = (data_start + size).next_multiple_of(4);
        assert!(bytes[data_start + size..pos].iter().all(|&b| b == 0));
        if name == "TRAILER!!!" {
            assert_eq!(pos, bytes.len(), "bytes after the trailer");
            return out;
        }
        out.push(CpioEntry {
            name,
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            nlink: field(4),
            mtime: field(5),
            data,
        });
    }
}

/// Runs `program` with `args` and `input` on its stdin, and returns its output. The input
/// comes from a temporary file, so a large input cannot deadlock against the output.
pub fn pipe_through(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    input: &[u8],
) -> std::process::Output {
    use std::io::{Seek, SeekFrom};
    let mut stdin = tempfile::tempfile().expect("a temporary file for a test tool's input");
    stdin.write_all(input).expect("writing a test tool's input");
    stdin.seek(SeekFrom::Start(0)).expect("rewinding a test tool's input");
    Command::new(program).args(args).stdin(stdin).output().expect("running a test tool")
}

/// Whether `program` can be run (found on PATH).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Something a test needs from the machine: a program, or a set of packages. When it is
/// missing the test skips loudly, except where a skip would hide a gap: under `CI=true`, or
/// with the tool's own switch (`CAIRN_REQUIRE_EXTERNAL=1`, `CAIRN_REQUIRE_QEMU=1`) set, a
/// missing tool fails the test, naming what installs it.
pub struct Tool {
    pub name: &'static str,
    /// What installs it, e.g. `apt-get install cpio`.
    pub install: &'static str,
    /// The `CAIRN_REQUIRE_*` variable that makes its absence a failure outside CI too.
    pub switch: Option<&'static str>,
}

/// Whether a missing tool must fail rather than skip: `CI=true`, or `switch=1`.
fn missing_is_failure(switch: Option<&str>) -> bool {
    let set = |var: &str, values: &[&str]| {
        std::env::var(var).is_ok_and(|v| values.contains(&v.to_ascii_lowercase().as_str()))
    };
    set("CI", &["true", "1"]) || switch.is_some_and(|s| set(s, &["1"]))
}

impl Tool {
    /// A checker program whose absence fails under `CAIRN_REQUIRE_EXTERNAL=1` (as CI sets).
    pub const fn external(name: &'static str, install: &'static str) -> Tool {
        Tool { name, install, switch: Some("CAIRN_REQUIRE_EXTERNAL") }
    }

    /// For a test that writes a file and runs this tool on it: a scratch directory when
    /// the tool is found (see [`Tool::found`]), `None` (after the skip note) when not.
    pub fn scratch(&self, test: &str) -> Option<tempfile::TempDir> {
        if !self.found(test) {
            return None;
        }
        Some(tempfile::tempdir().expect("a scratch directory for the test"))
    }

    /// Whether the program is on PATH (or, for an absolute name, is a file); if not, see
    /// [`Tool::missing`].
    pub fn found(&self, test: &str) -> bool {
        let ok = if self.name.starts_with('/') {
            Path::new(self.name).is_file()
        } else {
            have(self.name)
        };
        if !ok {
            self.missing(test, "not installed");
        }
        ok
    }

    /// `probe` decides whether the tool works; if not, see [`Tool::missing`].
    pub fn works(&self, test: &str, probe: &mut Command) -> bool {
        let ok = probe.output().is_ok_and(|o| o.status.success());
        if !ok {
            self.missing(test, &format!("{probe:?} failed"));
        }
        ok
    }

    /// `test` cannot use the tool (`why`): a panic under `CI=true` or the tool's switch,
    /// else a loud skip note (shown with `--nocapture`, and in the output of failed tests).
    /// The caller returns after it.
    pub fn missing(&self, test: &str, why: &str) {
        let (name, install) = (self.name, self.install);
        let under = match self.switch {
            Some(s) => format!("CI=true or {s}=1"),
            None => "CI=true".to_string(),
        };
        assert!(
            !missing_is_failure(self.switch),
            "{test}: {name} is missing ({why}) and {under} makes that a failure; install: {install}"
        );
        eprintln!("\n*** SKIPPED: {test}: {name} is missing ({why}); install: {install} ***\n");
    }
}

/// Debian's systemd EFI stub (`systemd-boot-efi`), or the file `CAIRN_TEST_EFI_STUB` names,
/// for the UKI tests; `None` after the skip note (a failure under CI) when it is missing.
pub fn efi_stub(test: &str) -> Option<Vec<u8>> {
    let path = std::env::var_os("CAIRN_TEST_EFI_STUB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/systemd/boot/efi/linuxx64.efi.stub".into());
    let stub = std::fs::read(&path).ok();
    if stub.is_none() {
        Tool::external("linuxx64.efi.stub", "apt-get install systemd-boot-efi")
            .missing(test, &format!("{} not found", path.display()));
    }
    stub
}
