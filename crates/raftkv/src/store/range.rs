//! Key ranges as etcd names them: a start key and an end, `[key, range_end)`.
//!
//! etcd's API gives a range as two byte strings: `range_end` empty selects the key alone,
//! `"\0"` every key from `key` on, anything else the keys `k` with `key <= k < range_end` in
//! byte order. raftkv's keys are UTF-8 text, whose byte order is the order the store keeps them
//! in, but an end need not be text (the end of the prefix `"a\u{7f}"`, say, or any `"\xff..."`
//! a client computes), so the end is kept as bytes.

use bytes::Bytes;

/// Where a [`KeyRange`] ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    /// The range is the start key alone.
    Single,
    /// Every key from the start on.
    Unbounded,
    /// Keys before this one, in byte order (exclusive).
    Before(Bytes),
}

/// The keys `start <= k < end` (or `start` alone), in byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key of the range.
    pub start: String,
    /// Where it ends.
    pub end: RangeEnd,
}

/// Why a range in etcd's form is not one raftkv can select.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRangeError {
    /// The start key is not UTF-8 (raftkv's keys are text).
    #[error("raftkv: keys are UTF-8 text; this key is not")]
    KeyNotUtf8,
}

impl KeyRange {
    /// The key `key` alone.
    pub fn single(key: impl Into<String>) -> KeyRange {
        KeyRange {
            start: key.into(),
            end: RangeEnd::Single,
        }
    }

    /// Every key starting with `prefix` (the empty prefix: every key).
    pub fn prefix(prefix: impl Into<String>) -> KeyRange {
        let start = prefix.into();
        let end = match prefix_end(start.as_bytes()) {
            Some(end) => RangeEnd::Before(end),
            None => RangeEnd::Unbounded,
        };
        KeyRange { start, end }
    }

    /// The range etcd's `key` and `range_end` name (see the module's documentation).
    pub fn from_etcd(key: &[u8], range_end: &[u8]) -> Result<KeyRange, KeyRangeError> {
        let start = std::str::from_utf8(key)
            .map_err(|_| KeyRangeError::KeyNotUtf8)?
            .to_owned();
        let end = match range_end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            end => RangeEnd::Before(Bytes::copy_from_slice(end)),
        };
        Ok(KeyRange { start, end })
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &str) -> bool {
        match &self.end {
            RangeEnd::Single => key == self.start,
            RangeEnd::Unbounded => key >= self.start.as_str(),
            RangeEnd::Before(end) => key >= self.start.as_str() && key.as_bytes() < &end[..],
        }
    }

    /// Whether no key can be in the range (an end at or before the start).
    pub fn is_empty(&self) -> bool {
        matches!(&self.end, RangeEnd::Before(end) if &end[..] <= self.start.as_bytes())
    }

    /// Whether the range is every key starting with its start key (as `--prefix` asks).
    pub fn is_prefix(&self) -> bool {
        match (&self.end, prefix_end(self.start.as_bytes())) {
            (RangeEnd::Before(end), Some(expected)) => *end == expected,
            (RangeEnd::Unbounded, None) => true,
            _ => false,
        }
    }
}

/// The smallest byte string after every string starting with `prefix`: the prefix with its
/// last byte below 0xff raised by one and what follows it dropped (etcd's `GetPrefixRangeEnd`);
/// `None` when there is none (every byte 0xff, or the empty prefix): the range is unbounded.
pub fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let last = prefix.iter().rposition(|&byte| byte < 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(Bytes::from(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_forms_select_a_key_every_key_from_one_on_or_a_range() {
        let single = KeyRange::from_etcd(b"a", b"").expect("utf-8");
        assert!(single.contains("a") && !single.contains("ab"));
        let from = KeyRange::from_etcd(b"b", b"\0").expect("utf-8");
        assert!(!from.contains("a") && from.contains("b") && from.contains("zzz"));
        let range = KeyRange::from_etcd(b"b", b"d").expect("utf-8");
        assert!(range.contains("b") && range.contains("cz") && !range.contains("d"));
        assert_eq!(
            KeyRange::from_etcd(b"\xff", b""),
            Err(KeyRangeError::KeyNotUtf8)
        );
    }

    #[test]
    fn a_prefix_range_ends_after_every_key_with_the_prefix() {
        let prefix = KeyRange::prefix("foo");
        assert_eq!(prefix.end, RangeEnd::Before(Bytes::from_static(b"fop")));
        assert!(prefix.contains("foo") && prefix.contains("foo/bar") && !prefix.contains("fop"));
        assert!(prefix.is_prefix());
        assert_eq!(KeyRange::prefix("").end, RangeEnd::Unbounded);
        assert!(KeyRange::prefix("").contains(""));
        assert!(!KeyRange::from_etcd(b"\0", b"\0")
            .expect("utf-8")
            .is_prefix());
        assert_eq!(prefix_end(b"a\xff\xff"), Some(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff"), None);
    }

    #[test]
    fn an_end_at_or_before_the_start_selects_nothing() {
        assert!(KeyRange::from_etcd(b"b", b"a").expect("utf-8").is_empty());
        assert!(KeyRange::from_etcd(b"b", b"b").expect("utf-8").is_empty());
        assert!(!KeyRange::from_etcd(b"b", b"c").expect("utf-8").is_empty());
    }
}
