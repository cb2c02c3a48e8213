//! Damage to a stopped node's files, and what its next start must say about it.
//!
//! ```text
//!  newest segment ─► frames (walked by their length fields, as raft-wal writes them)
//!     flip a bit in a frame an intact frame follows ─► the node must refuse to start,
//!                                                      naming the file and the frame's offset
//!     cut the segment inside its last frame        ─► a torn tail: truncated at the frame's
//!                                                      offset (or a refusal naming the file)
//!  newest snapshot file ─► flip a bit, or cut it   ─► refusal naming the file and an offset
//!  fsync ledger (lied ranges) ─► zeroed            ─► the power loss a lying disk would cause
//! ```
//!
//! The walk knows only raft-wal's framing (a 32-byte segment header, then frames of a 12-byte
//! header whose first word is the payload length), not its checksums: it runs on files the
//! node wrote whole, before any damage.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Size of a segment's header.
const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a frame's header.
const FRAME_HEADER_BYTES: u64 = 12;

/// The damage done to a file, and what the node's next start must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The damaged file.
    pub path: PathBuf,
    /// What was done, for the timeline.
    pub detail: String,
    /// What the next start must do.
    pub expected: Expected,
}

/// What a node's start must show after its files were damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Refuse to start, naming the file and, when known, this offset.
    Refusal {
        /// The offset the error must name; `None` when any offset will do.
        offset: Option<u64>,
    },
    /// Truncate a torn tail at this offset and start; a refusal naming the file is allowed
    /// too (the cut may leave the log short of its commit index).
    TornTail {
        /// Where the cut frame starts.
        offset: u64,
    },
}

/// The newest segment of the log in `dir` (raft-wal names them by a 20-digit sequence).
pub fn newest_segment(dir: &Path) -> Option<PathBuf> {
    newest_matching(dir, |name| {
        name.strip_suffix(".wal")
            .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The newest snapshot file in `dir` (`snapshot-INDEX-TERM.snap`, zero-padded, so the
/// greatest name is the newest).
pub fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    newest_matching(dir, |name| {
        name.starts_with("snapshot-") && name.ends_with(".snap")
    })
}

fn newest_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(&matches))
        .map(|entry| entry.path())
        .max()
}

/// The frames of a segment's `contents`: (start, end) of each, in order, up to the first
/// header that is all zeros (preallocated space) or runs past the end.
pub fn frames(contents: &[u8]) -> Vec<(u64, u64)> {
    let mut frames = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + FRAME_HEADER_BYTES <= contents.len() as u64 {
        let header = &contents[offset as usize..(offset + FRAME_HEADER_BYTES) as usize];
        if header.iter().all(|&byte| byte == 0) {
            break;
        }
        let payload_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let end = offset + FRAME_HEADER_BYTES + u64::from(payload_len);
        if end > contents.len() as u64 {
            break;
        }
        frames.push((offset, end));
        offset = end;
    }
    frames
}

/// Damages the stopped node's data in `dir` in one of the ways the module lists, chosen by
/// `random`. `None` when the directory holds nothing to damage that way. Only with `lossy` a
/// cut inside the newest segment's last record: after `kill -9` that record was synced (and
/// may have been acknowledged), so truncating it as a torn write loses what Raft assumes kept.
pub fn damage(
    dir: &Path,
    lossy: bool,
    random: &mut Xoshiro256PlusPlus,
) -> std::io::Result<Option<Damage>> {
    let kinds: &[DamageKind] = if lossy {
        &[
            DamageKind::SegmentBitFlip,
            DamageKind::SegmentTornTail,
            DamageKind::SnapshotBitFlip,
            DamageKind::SnapshotCut,
        ]
    } else {
        &[
            DamageKind::SegmentBitFlip,
            DamageKind::SnapshotBitFlip,
            DamageKind::SnapshotCut,
        ]
    };
    // In random order, the first kind this directory offers something to damage for (a short
    // run has no snapshot yet, and a fresh segment may hold one record).
    let mut kinds = kinds.to_vec();
    kinds.shuffle(random);
    for kind in kinds {
        if let Some(damage) = damage_one(dir, kind, lossy, random)? {
            return Ok(Some(damage));
        }
    }
    Ok(None)
}

/// Damages `dir` in the way `kind` says; `None` when there is nothing to damage that way.
fn damage_one(
    dir: &Path,
    kind: DamageKind,
    lossy: bool,
    random: &mut Xoshiro256PlusPlus,
) -> std::io::Result<Option<Damage>> {
    match kind {
        DamageKind::SegmentBitFlip | DamageKind::SegmentTornTail => {
            let Some(path) = newest_segment(dir) else {
                return Ok(None);
            };
            let contents = std::fs::read(&path)?;
            let frames = frames(&contents);
            if kind == DamageKind::SegmentBitFlip && frames.len() >= 2 {
                // Any frame but the last: an intact frame follows, so no torn write explains it.
                let (start, end) = frames[random.gen_range(0..frames.len() - 1)];
                let byte = random.gen_range(start..end);
                let bit = random.gen_range(0..8u8);
                flip_bit(&path, byte, bit)?;
                return Ok(Some(Damage {
                    detail: format!(
                        "bit {bit} of byte {byte} flipped in {} (frame at {start}, {} frames)",
                        path.display(),
                        frames.len()
                    ),
                    path,
                    expected: Expected::Refusal {
                        offset: Some(start),
                    },
                }));
            }
            if !lossy {
                // A record followed by no intact record: damage there looks like a torn write.
                return Ok(None);
            }
            let Some(&(start, end)) = frames.last() else {
                return Ok(None);
            };
            let cut_at = random.gen_range(start + 1..end);
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(cut_at)?;
            Ok(Some(Damage {
                detail: format!(
                    "{} cut at byte {cut_at}, inside its last frame ({start}..{end})",
                    path.display()
                ),
                path,
                expected: Expected::TornTail { offset: start },
            }))
        }
        DamageKind::SnapshotBitFlip | DamageKind::SnapshotCut => {
            let Some(path) = newest_snapshot(dir) else {
                return Ok(None);
            };
            let length = std::fs::metadata(&path)?.len();
            if length < 2 {
                return Ok(None);
            }
            let detail = if kind == DamageKind::SnapshotBitFlip {
                let byte = random.gen_range(0..length);
                let bit = random.gen_range(0..8u8);
                flip_bit(&path, byte, bit)?;
                format!(
                    "bit {bit} of byte {byte} flipped in {} ({length} bytes)",
                    path.display()
                )
            } else {
                let cut_at = random.gen_range(1..length);
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(cut_at)?;
                format!("{} cut at byte {cut_at} of {length}", path.display())
            };
            Ok(Some(Damage {
                detail,
                path,
                expected: Expected::Refusal { offset: None },
            }))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DamageKind {
    SegmentBitFlip,
    SegmentTornTail,
    SnapshotBitFlip,
    SnapshotCut,
}

fn flip_bit(path: &Path, byte: u64, bit: u8) -> std::io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut value = [0u8];
    file.read_exact_at(&mut value, byte)?;
    value[0] ^= 1 << bit;
    file.write_all_at(&value, byte)
}

/// One range of a file a lied sync pretended to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiedRange {
    /// The file, as the node's `/proc/self/fd` named it.
    pub path: PathBuf,
    /// First byte written since the file's last real sync.
    pub start: u64,
    /// One past the last.
    pub end: u64,
}

/// Reads the fsync shim's ledger (lines `START END PATH`, see `raftkv-fsync-fault`);
/// malformed lines are skipped.
pub fn parse_ledger(text: &str) -> Vec<LiedRange> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let start = parts.next()?.parse().ok()?;
            let end = parts.next()?.parse().ok()?;
            let path = parts.next()?;
            (start < end && !path.is_empty()).then(|| LiedRange {
                path: path.into(),
                start,
                end,
            })
        })
        .collect()
}

/// What a simulated power loss did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Files whose unsynced bytes were lost.
    pub files: usize,
    /// Bytes zeroed.
    pub bytes: u64,
}

/// Simulates a power loss after lied syncs: every range of `ledger` (read, then removed) is
/// zeroed, within its file's present length, as if those pages never reached the disk (which
/// is what preallocated or new space reads as). Files gone since (renamed or deleted) are
/// passed over: directory operations are taken as durable.
pub fn lose_unsynced(ledger: &Path) -> std::io::Result<PowerLoss> {
    let text = match std::fs::read_to_string(ledger) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let mut loss = PowerLoss::default();
    let mut touched = std::collections::BTreeSet::new();
    for range in parse_ledger(&text) {
        let Ok(file) = OpenOptions::new().write(true).open(&range.path) else {
            continue;
        };
        let length = file.metadata()?.len();
        let end = range.end.min(length);
        if range.start >= end {
            continue;
        }
        zero(&file, range.start, end)?;
        loss.bytes += end - range.start;
        touched.insert(range.path);
    }
    loss.files = touched.len();
    match std::fs::remove_file(ledger) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    Ok(loss)
}

fn zero(file: &File, start: u64, end: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 64 * 1024];
    let mut at = start;
    while at < end {
        let length = (end - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..length], at)?;
        at += length as u64;
    }
    Ok(())
}

/// `text` without the ANSI colour sequences a log may carry.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `log` (what the node wrote since its restart) shows a refusal to start that names
/// `path` and, if given, `offset`: raft-wal's `corrupt write-ahead log: PATH at byte OFFSET`.
pub fn names_refusal(log: &str, path: &Path, offset: Option<u64>) -> bool {
    let expected = match offset {
        Some(offset) => format!(
            "corrupt write-ahead log: {} at byte {offset}:",
            path.display()
        ),
        None => format!("corrupt write-ahead log: {} at byte ", path.display()),
    };
    plain(log).contains(&expected)
}

/// Whether `log` shows the torn tail of `path` truncated at `offset` (raft-wal's warning).
pub fn names_torn_tail(log: &str, path: &Path, offset: u64) -> bool {
    plain(log).lines().any(|line| {
        line.contains("truncating a torn write")
            && line.contains(&path.display().to_string())
            && line
                .split_whitespace()
                .any(|field| field == format!("offset={offset}"))
    })
}

/// The refusal lines of `log`, for a report.
pub fn refusal_lines(log: &str) -> String {
    let lines: Vec<String> = plain(log)
        .lines()
        .filter(|line| line.contains("corrupt") || line.contains("cannot open"))
        .take(3)
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        let all = plain(log);
        let tail: Vec<&str> = all.lines().rev().take(3).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    } else {
        lines.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn segment(payload_lens: &[u32], zeros: usize) -> Vec<u8> {
        let mut contents = vec![7u8; SEGMENT_HEADER_BYTES as usize];
        for &len in payload_lens {
            contents.extend_from_slice(&len.to_le_bytes());
            contents.extend_from_slice(&[1u8; 8]);
            contents.extend(std::iter::repeat_n(9u8, len as usize));
        }
        contents.extend(std::iter::repeat_n(0u8, zeros));
        contents
    }

    #[test]
    fn frames_are_walked_by_their_lengths_up_to_the_zeros() {
        let contents = segment(&[5, 0, 20], 100);
        assert_eq!(frames(&contents), vec![(32, 49), (49, 61), (61, 93)]);
    }

    #[test]
    fn a_frame_that_runs_past_the_end_is_not_a_frame() {
        let mut contents = segment(&[5, 20], 0);
        contents.truncate(contents.len() - 1);
        assert_eq!(frames(&contents), vec![(32, 49)]);
    }

    #[test]
    fn a_ledger_reads_back_and_skips_what_is_malformed() {
        let text = "0 10 /d/a.wal\n5 5 /d/empty\nx 1 /d/bad\n20 30 /d/with space.snap\n";
        assert_eq!(
            parse_ledger(text),
            vec![
                LiedRange {
                    path: "/d/a.wal".into(),
                    start: 0,
                    end: 10
                },
                LiedRange {
                    path: "/d/with space.snap".into(),
                    start: 20,
                    end: 30
                },
            ]
        );
    }

    #[test]
    fn a_power_loss_zeroes_the_lied_ranges_within_the_file() {
        let dir = std::env::temp_dir().join(format!("chaos-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.wal");
        std::fs::write(&file, [1u8; 100]).unwrap();
        let ledger = dir.join("ledger");
        std::fs::write(
            &ledger,
            format!(
                "10 20 {0}\n90 200 {0}\n0 5 {1}\n",
                file.display(),
                dir.join("gone").display()
            ),
        )
        .unwrap();
        let loss = lose_unsynced(&ledger).unwrap();
        assert_eq!(
            loss,
            PowerLoss {
                files: 1,
                bytes: 20
            }
        );
        let contents = std::fs::read(&file).unwrap();
        assert_eq!(contents.len(), 100, "a power loss does not grow a file");
        assert!(contents[10..20].iter().all(|&b| b == 0));
        assert!(contents[90..].iter().all(|&b| b == 0));
        assert!(contents[..10]
            .iter()
            .chain(&contents[20..90])
            .all(|&b| b == 1));
        assert!(!ledger.exists(), "a ledger is used once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bit_flip_in_a_frame_before_the_last_expects_a_refusal_and_only_lossy_storage_cuts_the_last(
    ) {
        let dir = std::env::temp_dir().join(format!("chaos-flip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut torn_tails = [0, 0];
        for (lossy, seed) in [false, true]
            .into_iter()
            .flat_map(|l| (0..40).map(move |s| (l, s)))
        {
            let path = dir.join(format!("{:020}.wal", 1));
            let original = segment(&[5, 30, 8], 64);
            std::fs::write(&path, &original).unwrap();
            let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
            let Some(damage) = damage(&dir, lossy, &mut random).unwrap() else {
                continue; // nothing to damage (never here: the segment has three records)
            };
            let now = std::fs::read(&path).unwrap();
            match damage.expected {
                Expected::Refusal {
                    offset: Some(start),
                } => {
                    let changed: Vec<usize> =
                        (0..now.len()).filter(|&i| now[i] != original[i]).collect();
                    assert_eq!(changed.len(), 1, "seed {seed}: one byte changed");
                    assert!(
                        start == 32 || start == 49,
                        "seed {seed}: not the last frame"
                    );
                    assert!(changed[0] as u64 >= start && (changed[0] as u64) < 91);
                }
                Expected::TornTail { offset } => {
                    torn_tails[usize::from(lossy)] += 1;
                    assert_eq!(offset, 91, "seed {seed}: the last frame starts at 91");
                    assert!(
                        now.len() > 91 && now.len() < 111,
                        "seed {seed}: cut inside it"
                    );
                }
                other => panic!("seed {seed}: unexpected {other:?}"),
            }
        }
        // Synced data is cut only when the run asks for lossy storage.
        assert_eq!(torn_tails[0], 0, "no torn tail without lossy storage");
        assert!(
            torn_tails[1] > 0,
            "lossy storage cuts the last record sometimes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_and_torn_tails_are_recognised_through_colours() {
        let path = Path::new("/r/data-1/00000000000000000002.wal");
        let log = "\u{1b}[31mError\u{1b}[0m: cannot open the log: corrupt write-ahead log: \
                   /r/data-1/00000000000000000002.wal at byte 4096: payload checksum mismatch";
        assert!(names_refusal(log, path, Some(4096)));
        assert!(names_refusal(log, path, None));
        assert!(!names_refusal(log, path, Some(409)));
        let torn = "WARN raft_wal: truncating a torn write at the end of the log \
                    \u{1b}[3mpath\u{1b}[0m=/r/data-1/00000000000000000002.wal \u{1b}[3moffset\u{1b}[0m=77 bytes=5";
        assert!(names_torn_tail(torn, path, 77));
        assert!(!names_torn_tail(torn, path, 7));
    }
}
