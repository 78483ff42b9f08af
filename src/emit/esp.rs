//! EFI system partitions: a FAT filesystem holding the boot loader, written reproducibly.
//!
//! The firmware of a `raw-efi` disk loads `EFI/BOOT/BOOTX64.EFI` (the removable-media
//! path, so no NVRAM boot entry is needed) from a FAT filesystem. The `fatfs` crate
//! formats and fills it; what would otherwise vary is fixed here:
//!
//! - the volume id is the caller's (derived from the content), the label is fixed;
//! - every directory entry's creation, modification and access time is the source date
//!   (a FAT date cannot be before 1980, so earlier dates are clamped to 1980-01-01);
//! - files are written in the order given into a freshly zeroed image, so cluster
//!   allocation is the same every time;
//! - the size is a function of the files' sizes ([`esp_size`]);
//! - names are upper-case 8.3 names only, written without long-name entries (fatfs's
//!   `alloc` feature is off: with it, 0.3.6 also writes long-name entries for `.` and
//!   `..`, which `fsck.fat` reports as damage). The firmware's paths are all 8.3 anyway.

use std::io::{self, Read, Seek, SeekFrom, Write};

use fatfs::{Date, DateTime, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};

use crate::source_date::SourceDate;

/// Why an EFI system partition could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("writing {path} into the EFI system partition: {source}")]
    File { path: String, source: io::Error },
    #[error("formatting the EFI system partition: {0}")]
    Format(#[source] io::Error),
    #[error(
        "EFI system partition path {0:?} must be relative, `/`-separated, each name an upper-case 8.3 name"
    )]
    BadPath(String),
}

/// One file to place on the partition.
pub struct EspFile<'a> {
    /// Path inside the partition, e.g. `EFI/BOOT/BOOTX64.EFI`.
    pub path: &'a str,
    pub len: u64,
    pub content: &'a mut dyn Read,
}

/// The partition size for files of these lengths: their 4 KiB clusters, room for
/// directories, FAT tables and slack, rounded up to 1 MiB, at least 16 MiB. fatfs picks
/// the FAT type from the size (FAT16 for most UKIs; UEFI firmware reads FAT12, 16 and 32),
/// so it too is a function of the content.
pub fn esp_size(lens: &[u64]) -> u64 {
    const MIB: u64 = 1 << 20;
    let clusters: u64 = lens.iter().map(|l| l.div_ceil(4096).max(1)).sum();
    let content = clusters * 4096;
    let with_slack = content + content / 8 + 4 * MIB;
    with_slack.div_ceil(MIB).max(16) * MIB
}

/// An upper-case 8.3 name: 1-8 characters, optionally a dot and 1-3 more, from the
/// letters, digits and `_-~` (a safe subset of what FAT short names allow).
fn is_short_name(name: &str) -> bool {
    let ok = |part: &str, max: usize| {
        (1..=max).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"_-~".contains(&b))
    };
    match name.split_once('.') {
        Some((base, ext)) => ok(base, 8) && ok(ext, 3),
        None => ok(name, 8),
    }
}

/// A time provider that always answers with one instant.
#[derive(Debug)]
struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// The source date as a FAT date and time (UTC, 2-second resolution, 1980..=2107).
fn fat_time(date: SourceDate) -> DateTime {
    let secs = i64::try_from(date.secs()).unwrap_or(i64::MAX);
    let civil = jiff::Timestamp::from_second(secs)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).datetime())
        .ok();
    match civil {
        Some(dt) if (1980..=2107).contains(&dt.year()) => DateTime {
            date: Date { year: dt.year() as u16, month: dt.month() as u16, day: dt.day() as u16 },
            time: Time {
                hour: dt.hour() as u16,
                min: dt.minute() as u16,
                sec: (dt.second() as u16) & !1,
                millis: 0,
            },
        },
        Some(dt) if dt.year() > 2107 => DateTime {
            date: Date { year: 2107, month: 12, day: 31 },
            time: Time { hour: 23, min: 59, sec: 58, millis: 0 },
        },
        _ => DateTime {
            date: Date { year: 1980, month: 1, day: 1 },
            time: Time { hour: 0, min: 0, sec: 0, millis: 0 },
        },
    }
}

/// Formats `disk` (already sized to [`esp_size`] and zeroed, positioned at 0) as FAT and
/// writes the files, creating their directories.
pub fn write_esp<D: Read + Write + Seek>(
    disk: &mut D,
    volume_id: u32,
    date: SourceDate,
    files: &mut [EspFile<'_>],
) -> Result<(), EspError> {
    if let Some(bad) = files.iter().find(|f| !f.path.split('/').all(is_short_name)) {
        return Err(EspError::BadPath(bad.path.to_string()));
    }
    disk.seek(SeekFrom::Start(0)).map_err(EspError::Format)?;
    let format = FormatVolumeOptions::new().volume_id(volume_id).volume_label(*b"CAIRN-ESP  ");
    fatfs::format_volume(&mut *disk, format).map_err(EspError::Format)?;
    disk.seek(SeekFrom::Start(0)).map_err(EspError::Format)?;
    // fatfs keeps a `&'static` time provider; one small value per partition written.
    let clock: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_time(date))));
    let options = FsOptions::new().time_provider(clock).update_accessed_date(false);
    let fs = FileSystem::new(&mut *disk, options).map_err(EspError::Format)?;
    for f in files.iter_mut() {
        let err = |source| EspError::File { path: f.path.to_string(), source };
        let mut dir = fs.root_dir();
        let (parents, name) = match f.path.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, f.path),
        };
        for comp in parents.into_iter().flat_map(|p| p.split('/')) {
            dir = match dir.open_dir(comp) {
                Ok(d) => d,
                Err(_) => dir.create_dir(comp).map_err(err)?,
            };
        }
        let mut file = dir.create_file(name).map_err(err)?;
        file.truncate().map_err(err)?;
        let copied = io::copy(&mut f.content.take(f.len), &mut file).map_err(err)?;
        if copied != f.len {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{copied} bytes, {} expected", f.len),
            )));
        }
        file.flush().map_err(err)?;
    }
    fs.unmount().map_err(EspError::Format)?;
    disk.flush().map_err(EspError::Format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Tool;
    use std::io::Cursor;
    use std::process::Command;

    fn esp(uki: &[u8], date: u64) -> Vec<u8> {
        let mut content = uki;
        let mut other: &[u8] = b"x";
        let mut files = [
            EspFile { path: "EFI/BOOT/BOOTX64.EFI", len: uki.len() as u64, content: &mut content },
            EspFile { path: "LOADER/ENTRIES.SRL", len: 1, content: &mut other },
        ];
        let size = esp_size(&[uki.len() as u64, 1]);
        let mut disk = Cursor::new(vec![0u8; size as usize]);
        write_esp(&mut disk, 0x1234_5678, SourceDate::new(date).expect("date"), &mut files)
            .expect("esp");
        disk.into_inner()
    }

    #[test]
    fn same_input_same_bytes_and_dates_from_the_source_date() {
        let uki: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let a = esp(&uki, 1_700_000_000);
        assert!(a == esp(&uki, 1_700_000_000));
        assert!(a != esp(&uki, 1_700_000_002), "the date reaches the bytes");
        // Read it back with fatfs.
        let mut disk = Cursor::new(a);
        let fs = FileSystem::new(&mut disk, FsOptions::new()).expect("mount");
        assert_eq!(fs.volume_id(), 0x1234_5678);
        let mut back = Vec::new();
        let mut f = fs.root_dir().open_file("EFI/BOOT/BOOTX64.EFI").expect("open");
        f.read_to_end(&mut back).expect("read");
        assert!(back == uki);
        let entry = fs
            .root_dir()
            .open_dir("EFI/BOOT")
            .expect("dir")
            .iter()
            .filter_map(Result::ok)
            .find(|e| e.short_file_name_as_bytes() == b"BOOTX64.EFI")
            .expect("entry");
        let m = entry.modified();
        assert_eq!((m.date.year, m.date.month, m.date.day), (2023, 11, 14));
        assert_eq!((m.time.hour, m.time.min, m.time.sec), (22, 13, 20));
    }

    #[test]
    fn dates_outside_fat_range_are_clamped() {
        assert_eq!(fat_time(SourceDate::new(0).expect("date")).date.year, 1980);
        assert_eq!(fat_time(SourceDate::new(315_532_799).expect("date")).date.year, 1980);
        let t = fat_time(SourceDate::new(315_532_801).expect("date"));
        assert_eq!((t.date.year, t.time.sec), (1980, 0), "2-second resolution");
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut c: &[u8] = b"";
        for path in
            ["EFI/../X", "", "EFI//X", "efi/boot/bootx64.efi", "EFI/LONGERNAME.EFI", "A.EFIX"]
        {
            let mut files = [EspFile { path, len: 0, content: &mut c }];
            let mut disk = Cursor::new(vec![0u8; esp_size(&[0]) as usize]);
            assert!(
                matches!(
                    write_esp(&mut disk, 1, SourceDate::new(0).expect("date"), &mut files),
                    Err(EspError::BadPath(_))
                ),
                "{path:?}"
            );
        }
    }

    /// dosfstools' checker finds nothing to repair.
    #[test]
    fn fsck_fat_accepts_it() {
        let fsck = Tool::external("fsck.fat", "apt-get install dosfstools");
        let Some(dir) = fsck.scratch("emit::esp::fsck_fat_accepts_it") else { return };
        let path = dir.path().join("esp.img");
        std::fs::write(&path, esp(&[7u8; 10_000], 1_700_000_000)).expect("write");
        let out = Command::new("fsck.fat").args(["-n", "-v"]).arg(&path).output().expect("fsck");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("Expected") && !text.contains("Bad "), "{text}");
        assert!(text.contains("files, "), "{text}");
    }
}
