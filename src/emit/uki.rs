//! Unified kernel images: a pinned systemd EFI stub with the kernel, initramfs, command
//! line, os-release and uname added as PE sections (the UAPI UKI specification).
//!
//! The stub (`linuxx64.efi.stub` from Debian's `systemd-boot-efi`, a pinned component) is
//! an EFI application that, when the firmware starts it, finds these sections in its own
//! image and boots the kernel with them. One signature over the whole PE then covers the
//! kernel, the initramfs and the command line together (which is what makes a command
//! line carrying a dm-verity root hash trustworthy).
//!
//! cairn adds the sections itself instead of calling `objcopy` or `ukify`, so the bytes
//! are a function of the inputs alone:
//!
//! - the stub's headers are parsed with the `object` crate; its sections and their data
//!   are kept as they are, new section headers go into the room the stub leaves after its
//!   section table (an error if there is none: the stub must not be re-laid out);
//! - new sections follow the stub's last one, in the order given, each at a 4 KiB-aligned
//!   virtual address and a `FileAlignment`-aligned file offset, zero-padded;
//! - `SizeOfImage`, `SizeOfInitializedData` and the number of sections are updated and the
//!   PE checksum recomputed; the time stamp stays the stub's (Debian's is 0);
//! - a stub that already carries a signature is refused: adding sections would break it.

use std::io::{self, Read, Seek, SeekFrom, Write};

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

/// Section alignment of added sections: a page, whatever the stub's own alignment.
const PAGE: u32 = 4096;
/// Characteristics of an added section: initialized, readable data.
const DATA_SECTION: u32 = 0x0000_0040 | 0x4000_0000; // IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
/// Size of one section header.
const SECTION_HEADER_LEN: usize = 40;

/// Why a UKI could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("the EFI stub is not a 64-bit PE image: {0}")]
    Parse(#[from] object::read::Error),
    #[error(
        "the EFI stub is already signed; use the unsigned stub (systemd-boot-efi's linuxx64.efi.stub)"
    )]
    SignedStub,
    #[error("the EFI stub has no room for {needed} more section headers (room for {room})")]
    NoRoom { needed: usize, room: usize },
    #[error("UKI section name {0:?} must be 1 to 8 bytes")]
    BadName(String),
    #[error("the EFI stub already has a {0} section")]
    Duplicate(String),
    #[error("section {name}: its content was {actual} bytes, {declared} declared")]
    ContentSize { name: String, declared: u64, actual: u64 },
    #[error("the UKI does not fit the PE format's 32-bit sizes")]
    TooLarge,
    #[error("reading the content of section {name}: {source}")]
    Read { name: String, source: io::Error },
    #[error("writing the UKI: {0}")]
    Write(#[source] io::Error),
}

/// A section to add.
pub struct UkiSection<'a> {
    /// `.linux`, `.initrd`, `.cmdline`, `.osrel`, `.uname`, …
    pub name: &'a str,
    pub len: u64,
    pub content: &'a mut dyn Read,
}

/// Where the added sections landed (for tests and the attestations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UkiLayout {
    /// `(name, virtual address, file offset, length)` of each added section.
    pub sections: Vec<(String, u32, u32, u32)>,
    /// The UKI's length in bytes.
    pub len: u64,
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// Little-endian field writers into the header buffer.
fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Header offsets the assembly edits, read from the parsed stub.
struct StubLayout {
    /// Offset of the COFF header's NumberOfSections.
    number_of_sections: usize,
    /// Offset of the optional header.
    optional: usize,
    /// Offset just past the last section header.
    table_end: usize,
    size_of_headers: usize,
    file_alignment: u32,
    /// End of the stub's last section: virtual (rounded to a page) and in the file.
    next_va: u64,
    next_offset: u64,
    size_of_initialized_data: u32,
}

fn stub_layout(stub: &[u8], names: &[&str]) -> Result<StubLayout, UkiError> {
    let file = PeFile64::parse(stub)?;
    let nt = file.nt_headers();
    let opt = nt.optional_header();
    if file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_SECURITY)
        .is_some_and(|d| d.size.get(object::LittleEndian) != 0)
    {
        return Err(UkiError::SignedStub);
    }
    let nt_offset = file.dos_header().nt_headers_offset() as usize;
    let coff = nt_offset + 4;
    let optional = coff + 20;
    let table =
        optional + nt.file_header().size_of_optional_header.get(object::LittleEndian) as usize;
    let sections = file.section_table();
    let table_end = table + sections.len() * SECTION_HEADER_LEN;
    let (mut next_va, mut next_offset) = (0u64, 0u64);
    for s in sections.iter() {
        let name = s.name;
        let name = std::str::from_utf8(&name).unwrap_or("").trim_end_matches('\0');
        if names.contains(&name) {
            return Err(UkiError::Duplicate(name.to_string()));
        }
        let (va, vsize) = s.pe_address_range();
        let le = object::LittleEndian;
        let (off, fsize) = (s.pointer_to_raw_data.get(le), s.size_of_raw_data.get(le));
        next_va = next_va.max(u64::from(va) + u64::from(vsize));
        next_offset = next_offset.max(u64::from(off) + u64::from(fsize));
    }
    let size_of_headers = opt.size_of_headers() as usize;
    let room = size_of_headers.saturating_sub(table_end) / SECTION_HEADER_LEN;
    if room < names.len() {
        return Err(UkiError::NoRoom { needed: names.len(), room });
    }
    Ok(StubLayout {
        number_of_sections: coff + 2,
        optional,
        table_end,
        size_of_headers,
        file_alignment: opt.file_alignment(),
        next_va: align(next_va, u64::from(PAGE)),
        next_offset: align(
            next_offset.max(size_of_headers as u64),
            u64::from(opt.file_alignment()),
        ),
        size_of_initialized_data: opt.size_of_initialized_data(),
    })
}

/// Optional-header field offsets (PE32+).
const OPT_SIZE_OF_INITIALIZED_DATA: usize = 8;
const OPT_SIZE_OF_IMAGE: usize = 56;
const OPT_CHECKSUM: usize = 64;

/// Writes the UKI to `out` (an empty file or buffer): the stub with `sections` added.
pub fn write_uki<W: Read + Write + Seek>(
    stub: &[u8],
    sections: &mut [UkiSection<'_>],
    out: &mut W,
) -> Result<UkiLayout, UkiError> {
    if let Some(bad) = sections.iter().find(|s| s.name.is_empty() || s.name.len() > 8) {
        return Err(UkiError::BadName(bad.name.to_string()));
    }
    let names: Vec<&str> = sections.iter().map(|s| s.name).collect();
    let layout = stub_layout(stub, &names)?;
    let file_alignment = u64::from(layout.file_alignment);

    // The stub up to the end of its last section's data, unchanged except the headers.
    let stub_end = (layout.next_offset as usize).min(stub.len());
    let mut head = stub[..stub_end].to_vec();
    head.resize(layout.next_offset as usize, 0);

    let mut placed = Vec::with_capacity(sections.len());
    let (mut va, mut offset) = (layout.next_va, layout.next_offset);
    let mut initialized = u64::from(layout.size_of_initialized_data);
    for (i, s) in sections.iter().enumerate() {
        let raw = align(s.len, file_alignment);
        let too_large = |v: u64| u32::try_from(v).map_err(|_| UkiError::TooLarge);
        let header_at = layout.table_end + i * SECTION_HEADER_LEN;
        let h = &mut head[header_at..header_at + SECTION_HEADER_LEN];
        h.fill(0);
        h[..s.name.len()].copy_from_slice(s.name.as_bytes());
        put_u32(h, 8, too_large(s.len)?); // VirtualSize
        put_u32(h, 12, too_large(va)?); // VirtualAddress
        put_u32(h, 16, too_large(raw)?); // SizeOfRawData
        put_u32(h, 20, too_large(offset)?); // PointerToRawData
        put_u32(h, 36, DATA_SECTION);
        placed.push((s.name.to_string(), too_large(va)?, too_large(offset)?, too_large(s.len)?));
        initialized += raw;
        va = align(va + s.len.max(1), u64::from(PAGE));
        offset += raw;
    }
    let count =
        u16::from_le_bytes([head[layout.number_of_sections], head[layout.number_of_sections + 1]]);
    put_u16(&mut head, layout.number_of_sections, count + sections.len() as u16);
    let opt = layout.optional;
    put_u32(
        &mut head,
        opt + OPT_SIZE_OF_INITIALIZED_DATA,
        u32::try_from(initialized).map_err(|_| UkiError::TooLarge)?,
    );
    put_u32(&mut head, opt + OPT_SIZE_OF_IMAGE, u32::try_from(va).map_err(|_| UkiError::TooLarge)?);
    put_u32(&mut head, opt + OPT_CHECKSUM, 0);
    debug_assert!(layout.table_end + sections.len() * SECTION_HEADER_LEN <= layout.size_of_headers);

    out.seek(SeekFrom::Start(0)).map_err(UkiError::Write)?;
    let mut sum = PeChecksum::default();
    out.write_all(&head).map_err(UkiError::Write)?;
    sum.update(&head);
    let mut buf = vec![0u8; 64 * 1024];
    for s in sections.iter_mut() {
        let read_err = |source| UkiError::Read { name: s.name.to_string(), source };
        let mut left = s.len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = s.content.read(&mut buf[..want]).map_err(read_err)?;
            if n == 0 {
                return Err(UkiError::ContentSize {
                    name: s.name.to_string(),
                    declared: s.len,
                    actual: s.len - left,
                });
            }
            out.write_all(&buf[..n]).map_err(UkiError::Write)?;
            sum.update(&buf[..n]);
            left -= n as u64;
        }
        if s.content.read(&mut buf[..1]).map_err(read_err)? != 0 {
            return Err(UkiError::ContentSize {
                name: s.name.to_string(),
                declared: s.len,
                actual: s.len + 1,
            });
        }
        let pad = (align(s.len, file_alignment) - s.len) as usize;
        let zeros = vec![0u8; pad];
        out.write_all(&zeros).map_err(UkiError::Write)?;
        sum.update(&zeros);
    }
    let len = offset;
    let checksum = sum.finish(len);
    out.seek(SeekFrom::Start((opt + OPT_CHECKSUM) as u64)).map_err(UkiError::Write)?;
    out.write_all(&checksum.to_le_bytes()).map_err(UkiError::Write)?;
    out.seek(SeekFrom::Start(len)).map_err(UkiError::Write)?;
    out.flush().map_err(UkiError::Write)?;
    Ok(UkiLayout { sections: placed, len })
}

/// The PE image checksum (the Windows `CheckSumMappedFile` algorithm): a ones'-complement
/// style sum of the file's 16-bit words with the checksum field taken as zero, plus the
/// file's length. Fed in order; the field is zero in what we feed.
#[derive(Default)]
struct PeChecksum {
    sum: u64,
    /// A byte left over from an odd-length update (the low half of the next word).
    odd: Option<u8>,
}

impl PeChecksum {
    fn update(&mut self, mut bytes: &[u8]) {
        if let Some(lo) = self.odd.take() {
            match bytes.split_first() {
                Some((&hi, rest)) => {
                    self.add(u16::from_le_bytes([lo, hi]));
                    bytes = rest;
                }
                None => {
                    self.odd = Some(lo);
                    return;
                }
            }
        }
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            self.add(u16::from_le_bytes([w[0], w[1]]));
        }
        self.odd = words.remainder().first().copied();
    }

    fn add(&mut self, word: u16) {
        self.sum += u64::from(word);
        self.sum = (self.sum & 0xffff) + (self.sum >> 16);
    }

    fn finish(mut self, len: u64) -> u32 {
        if let Some(lo) = self.odd.take() {
            self.add(u16::from(lo));
        }
        let folded = (self.sum & 0xffff) + (self.sum >> 16);
        (folded as u32).wrapping_add(len as u32)
    }
}

/// Recomputes the checksum of a whole PE image in memory (tests, and re-checking a
/// signed image).
pub fn pe_checksum(image: &[u8]) -> Result<u32, UkiError> {
    let file = PeFile64::parse(image)?;
    let at = file.dos_header().nt_headers_offset() as usize + 24 + OPT_CHECKSUM;
    let mut sum = PeChecksum::default();
    sum.update(&image[..at]);
    sum.update(&[0, 0, 0, 0]);
    sum.update(&image[at + 4..]);
    Ok(sum.finish(image.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Tool, efi_stub};
    use std::io::Cursor;
    use std::process::Command;

    fn uki(stub: &[u8], kernel: &[u8], cmdline: &[u8]) -> (Vec<u8>, UkiLayout) {
        let (mut k, mut c, mut o) = (kernel, cmdline, &b"ID=cairn\n"[..]);
        let mut sections = [
            UkiSection { name: ".osrel", len: o.len() as u64, content: &mut o },
            UkiSection { name: ".cmdline", len: c.len() as u64, content: &mut c },
            UkiSection { name: ".linux", len: k.len() as u64, content: &mut k },
        ];
        let mut out = Cursor::new(Vec::new());
        let layout = write_uki(stub, &mut sections, &mut out).expect("uki");
        (out.into_inner(), layout)
    }

    #[test]
    fn checksum_matches_a_word_sum_by_hand() {
        let mut c = PeChecksum::default();
        c.update(&[1, 0]);
        c.update(&[2]);
        c.update(&[0, 3]);
        assert_eq!(c.finish(5), 1 + 2 + 3 + 5);
    }

    #[test]
    fn sections_are_added_after_the_stub() {
        let Some(stub) = efi_stub("emit::uki::sections_are_added_after_the_stub") else { return };
        // The algorithm reproduces the checksum the stub's own linker wrote.
        let stub_file = PeFile64::parse(&stub[..]).expect("parse stub");
        let stub_sum = stub_file.nt_headers().optional_header().check_sum();
        assert_eq!(pe_checksum(&stub).expect("checksum"), stub_sum);
        let kernel: Vec<u8> = (0..100_001u32).map(|i| (i % 251) as u8).collect();
        let (a, layout) = uki(&stub, &kernel, b"root=x ro");
        let (b, _) = uki(&stub, &kernel, b"root=x ro");
        assert!(a == b, "same inputs, same bytes");
        assert_eq!(a.len() as u64, layout.len);
        let (_, va, off, len) = layout.sections[2].clone();
        assert_eq!(va % PAGE, 0);
        assert_eq!(&a[off as usize..(off + len) as usize], &kernel[..]);
        // Our checksum agrees with a whole-file recomputation.
        let file = PeFile64::parse(&a[..]).expect("parse");
        let stored = file.nt_headers().optional_header().check_sum();
        assert_eq!(stored, pe_checksum(&a).expect("checksum"));

        let objdump = Tool::external("objdump", "apt-get install binutils");
        let Some(dir) = objdump.scratch("emit::uki::sections_are_added_after_the_stub") else {
            return;
        };
        let path = dir.path().join("uki.efi");
        std::fs::write(&path, &a).expect("write");
        let out = Command::new("objdump").arg("-h").arg(&path).output().expect("objdump");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        for (name, va, off, len) in &layout.sections {
            let line =
                text.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).expect(name);
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(u64::from_str_radix(cols[2], 16).ok(), Some(u64::from(*len)), "{line}");
            assert_eq!(u64::from_str_radix(cols[3], 16).ok(), Some(u64::from(*va)), "{line}");
            assert_eq!(u64::from_str_radix(cols[5], 16).ok(), Some(u64::from(*off)), "{line}");
        }
    }

    #[test]
    fn names_and_room_are_checked() {
        let Some(stub) = efi_stub("emit::uki::names_and_room_are_checked") else { return };
        let mut empty: &[u8] = b"";
        let mut s = [UkiSection { name: ".toolongname", len: 0, content: &mut empty }];
        assert!(matches!(
            write_uki(&stub, &mut s, &mut Cursor::new(Vec::new())),
            Err(UkiError::BadName(_))
        ));
        let mut e2: &[u8] = b"";
        let mut s = [UkiSection { name: ".sbat", len: 0, content: &mut e2 }];
        assert!(matches!(
            write_uki(&stub, &mut s, &mut Cursor::new(Vec::new())),
            Err(UkiError::Duplicate(_))
        ));
        assert!(matches!(
            write_uki(b"MZ not a pe", &mut [], &mut Cursor::new(Vec::new())),
            Err(UkiError::Parse(_))
        ));
    }
}
