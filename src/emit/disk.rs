//! GPT disk images with fixed GUIDs: the container of the `raw-efi` output.
//!
//! A disk is a protective MBR, a GPT (primary at the start, backup at the end, written by
//! the `gptman` crate, which coreos-installer also uses), and the partitions' bytes at
//! 1 MiB-aligned offsets. Nothing in it is random: the disk GUID and each partition's GUID
//! are the caller's (derived from the content, see [`Guid::derived`]), partitions are laid
//! out in the order given, and every gap is zeros. Partition types follow the UAPI
//! Discoverable Partitions Specification, so firmware finds the EFI system partition and
//! tools such as `systemd-dissect` recognise the root and its verity partition.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

/// Sector size of the disk image (what QEMU's virtio-blk and OVMF use by default).
pub const SECTOR: u64 = 512;
/// Partition alignment and the space before the first partition (as sfdisk, systemd-repart).
pub const ALIGN: u64 = 1 << 20;

/// Why a disk image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("partition {name:?}: its content was {actual} bytes, {declared} declared")]
    ContentSize { name: String, declared: u64, actual: u64 },
    #[error("writing the GPT: {0}")]
    Gpt(#[from] gptman::Error),
    #[error("writing the disk image: {0}")]
    Write(#[source] io::Error),
    #[error("reading the content of partition {name:?}: {source}")]
    Read { name: String, source: io::Error },
    #[error("a GPT holds at most 128 partitions, got {0}")]
    TooManyPartitions(usize),
}

/// A GUID in its on-disk (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses the canonical text form (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`): the first
    /// three fields are stored little-endian on disk, the last two as written.
    pub const fn parse(text: &str) -> Guid {
        let t = text.as_bytes();
        assert!(t.len() == 36, "a GUID is 36 characters");
        // Text positions of the 16 bytes, in on-disk order.
        const POS: [usize; 16] = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            out[i] = (nibble(t[POS[i]]) << 4) | nibble(t[POS[i] + 1]);
            i += 1;
        }
        Guid(out)
    }

    /// A version-4-shaped GUID taken from a SHA-256 of `label` and `parts` (the variant
    /// and version bits set as RFC 9562 asks, so tools show it as a normal random GUID).
    pub fn derived(label: &str, parts: &[&[u8]]) -> Guid {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        let d: [u8; 32] = h.finalize().into();
        Guid::from_uuid_bytes(&d[..16])
    }

    /// The first 16 bytes of `bytes` read as a UUID (big-endian text order), version 4.
    /// systemd's convention: the verity root hash's first 128 bits name the root
    /// partition, its last 128 bits the verity partition.
    pub fn from_uuid_bytes(bytes: &[u8]) -> Guid {
        let mut u = [0u8; 16];
        u.copy_from_slice(&bytes[..16]);
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        // Text order to on-disk order.
        Guid([
            u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13],
            u[14], u[15],
        ])
    }
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

/// The canonical upper-case text form.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Partition types of the Discoverable Partitions Specification (x86-64).
pub mod types {
    use super::Guid;
    /// EFI system partition.
    pub const ESP: Guid = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    /// Root filesystem, x86-64.
    pub const ROOT_X86_64: Guid = Guid::parse("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    /// dm-verity hash data of the x86-64 root.
    pub const ROOT_VERITY_X86_64: Guid = Guid::parse("2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5");
}

/// GPT attribute bit 60: the partition is read-only (the DPS's flag for the root).
pub const ATTR_READ_ONLY: u64 = 1 << 60;

/// One partition to write: its table entry and its content's length.
pub struct Partition<'a> {
    pub name: &'a str,
    pub type_guid: Guid,
    pub guid: Guid,
    pub attributes: u64,
    /// The content's exact length; the partition is this rounded up to [`ALIGN`].
    pub len: u64,
    pub content: &'a mut dyn Read,
}

/// Where a partition landed on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    pub guid: Guid,
    /// Byte offset of the partition on the disk.
    pub offset: u64,
    /// The partition's size in bytes (a multiple of [`ALIGN`]).
    pub size: u64,
}

/// The disk's total size for partitions of these lengths: 1 MiB before the first,
/// each rounded up to 1 MiB, and 1 MiB at the end for the backup GPT.
pub fn disk_size(lens: &[u64]) -> u64 {
    ALIGN + lens.iter().map(|l| l.div_ceil(ALIGN).max(1) * ALIGN).sum::<u64>() + ALIGN
}

/// Writes the disk image to `out` (which must be empty or a new file): the protective MBR,
/// the partitions' contents in order, and the primary and backup GPT.
pub fn write_disk<W: Read + Write + Seek>(
    out: &mut W,
    disk_guid: Guid,
    partitions: &mut [Partition<'_>],
) -> Result<Vec<Placed>, DiskError> {
    if partitions.len() > 128 {
        return Err(DiskError::TooManyPartitions(partitions.len()));
    }
    let lens: Vec<u64> = partitions.iter().map(|p| p.len).collect();
    let total = disk_size(&lens);

    // Lay the contents down first (zeros in every gap), then the tables over them.
    let mut placed = Vec::with_capacity(partitions.len());
    let mut offset = ALIGN;
    out.seek(SeekFrom::Start(0)).map_err(DiskError::Write)?;
    write_zeros(out, ALIGN)?;
    for p in partitions.iter_mut() {
        let size = p.len.div_ceil(ALIGN).max(1) * ALIGN;
        let copied = io::copy(&mut p.content.take(p.len), out)
            .map_err(|source| DiskError::Read { name: p.name.to_string(), source })?;
        if copied != p.len {
            return Err(DiskError::ContentSize {
                name: p.name.to_string(),
                declared: p.len,
                actual: copied,
            });
        }
        let mut probe = [0u8; 1];
        if p.content
            .read(&mut probe)
            .map_err(|source| DiskError::Read { name: p.name.to_string(), source })?
            != 0
        {
            return Err(DiskError::ContentSize {
                name: p.name.to_string(),
                declared: p.len,
                actual: p.len + 1,
            });
        }
        write_zeros(out, size - p.len)?;
        placed.push(Placed { name: p.name.to_string(), guid: p.guid, offset, size });
        offset += size;
    }
    write_zeros(out, total - offset)?;

    let mut gpt = gptman::GPT::new_from(out, SECTOR, disk_guid.0)?;
    for (i, (p, at)) in partitions.iter().zip(&placed).enumerate() {
        gpt[i as u32 + 1] = gptman::GPTPartitionEntry {
            partition_type_guid: p.type_guid.0,
            unique_partition_guid: p.guid.0,
            starting_lba: at.offset / SECTOR,
            ending_lba: (at.offset + at.size) / SECTOR - 1,
            attribute_bits: p.attributes,
            partition_name: p.name.into(),
        };
    }
    gpt.write_into(out)?;
    gptman::GPT::write_protective_mbr_into(out, SECTOR)?;
    out.flush().map_err(DiskError::Write)?;
    Ok(placed)
}

fn write_zeros<W: Write>(out: &mut W, mut n: u64) -> Result<(), DiskError> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k]).map_err(DiskError::Write)?;
        n -= k as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Tool;
    use std::io::Cursor;
    use std::process::Command;

    fn disk(a: &[u8], b: &[u8]) -> (Vec<u8>, Vec<Placed>) {
        let (mut ra, mut rb) = (a, b);
        let mut parts = [
            Partition {
                name: "esp",
                type_guid: types::ESP,
                guid: Guid::derived("esp", &[a]),
                attributes: 0,
                len: a.len() as u64,
                content: &mut ra,
            },
            Partition {
                name: "root-x86-64",
                type_guid: types::ROOT_X86_64,
                guid: Guid::derived("root", &[b]),
                attributes: ATTR_READ_ONLY,
                len: b.len() as u64,
                content: &mut rb,
            },
        ];
        let mut out = Cursor::new(Vec::new());
        let placed =
            write_disk(&mut out, Guid::derived("disk", &[a, b]), &mut parts).expect("disk");
        (out.into_inner(), placed)
    }

    #[test]
    fn guid_text_round_trips_in_mixed_endian() {
        let esp = types::ESP;
        assert_eq!(esp.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(esp.0[..4], [0x28, 0x73, 0x2A, 0xC1]);
        let g = Guid::from_uuid_bytes(&[0xAB; 16]);
        let text = g.to_string();
        assert_eq!(&text[14..15], "4", "version 4: {text}");
        assert_eq!(Guid::parse(&text), g);
    }

    #[test]
    fn layout_is_aligned_and_deterministic() {
        let (one, placed) = disk(&[1u8; 1000], &[2u8; 3 << 20]);
        let (two, _) = disk(&[1u8; 1000], &[2u8; 3 << 20]);
        assert!(one == two, "same content, same bytes");
        assert_eq!(one.len() as u64, disk_size(&[1000, 3 << 20]));
        assert_eq!(placed[0].offset, ALIGN);
        assert_eq!(placed[0].size, ALIGN);
        assert_eq!(placed[1].offset, 2 * ALIGN);
        assert_eq!(placed[1].size, 3 * ALIGN);
        assert_eq!(&one[ALIGN as usize..ALIGN as usize + 1000], &[1u8; 1000][..]);
        assert!(one[ALIGN as usize + 1000..2 * ALIGN as usize].iter().all(|&b| b == 0));
        assert_eq!(&one[510..512], &[0x55, 0xAA], "protective MBR signature");
        assert_eq!(&one[512..520], b"EFI PART");
        let (other, _) = disk(&[1u8; 1000], &[3u8; 3 << 20]);
        assert!(one[512..1024] != other[512..1024], "another root, another table");
    }

    #[test]
    fn short_content_is_refused() {
        let mut short: &[u8] = &[0u8; 10];
        let mut parts = [Partition {
            name: "p",
            type_guid: types::ESP,
            guid: Guid([1; 16]),
            attributes: 0,
            len: 20,
            content: &mut short,
        }];
        let err = write_disk(&mut Cursor::new(Vec::new()), Guid([2; 16]), &mut parts);
        assert!(matches!(err, Err(DiskError::ContentSize { declared: 20, actual: 10, .. })));
    }

    /// sfdisk reads the table we wrote as we meant it, and sgdisk's verifier finds no
    /// problem (CRCs, backup header, overlaps).
    #[test]
    fn sfdisk_and_sgdisk_agree() {
        let sfdisk = Tool { name: "sfdisk", install: "apt-get install fdisk", switch: None };
        let sgdisk = Tool { name: "sgdisk", install: "apt-get install gdisk", switch: None };
        if !sfdisk.found("emit::disk::sfdisk_and_sgdisk_agree")
            || !sgdisk.found("emit::disk::sfdisk_and_sgdisk_agree")
        {
            return;
        }
        let (bytes, placed) = disk(&[1u8; 1000], &[2u8; 3 << 20]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk.img");
        std::fs::write(&path, &bytes).expect("write");
        let out = Command::new("sfdisk").arg("--json").arg(&path).output().expect("sfdisk");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sfdisk json");
        let table = &json["partitiontable"];
        assert_eq!(table["label"], "gpt");
        assert_eq!(
            table["id"],
            Guid::derived("disk", &[&[1u8; 1000], &[2u8; 3 << 20]]).to_string()
        );
        let parts = table["partitions"].as_array().expect("partitions");
        assert_eq!(parts.len(), 2);
        for (p, at) in parts.iter().zip(&placed) {
            assert_eq!(p["start"], at.offset / SECTOR);
            assert_eq!(p["size"], at.size / SECTOR);
            assert_eq!(p["uuid"], at.guid.to_string());
            assert_eq!(p["name"], at.name);
        }
        assert_eq!(parts[0]["type"], types::ESP.to_string());
        assert_eq!(parts[1]["type"], types::ROOT_X86_64.to_string());
        assert_eq!(parts[1]["attrs"], "GUID:60");

        let out = Command::new("sgdisk").arg("--verify").arg(&path).output().expect("sgdisk");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("No problems found"), "{text}");
    }
}
