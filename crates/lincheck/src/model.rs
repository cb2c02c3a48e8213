//! The sequential specification of one key, in two forms.
//!
//! - [`apply`] is the reference: a plain function from a state and an operation to the next state
//!   and the output a correct store gives. The simulator and the explanations use it, and the
//!   tests hold the fast form to it.
//! - [`Model`] is the form the search runs millions of times: every value is interned to a
//!   [`StateId`], every entry is compiled once to a [`Step`], and a step compares ids instead of
//!   strings, so the memoization cache can key on `(linearized set, state id)`.
//!
//! Values made by appends are never built as strings: the search may make millions of them, each
//! as long as the key's whole value. A value is known by its [`Fingerprint`] (length and two
//! polynomial hashes), which an append extends in constant time. NB: two different values with
//! the same fingerprint would be taken for one; with 122 bits of hash that takes about 2^61
//! distinct values, far beyond any search's budget.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::history::{Entry, Operation, Outcome, Output};

/// The state of one key in the reference model: `None` is absent.
pub(crate) type KeyState = Option<String>;

/// Runs `operation` on `state` as a correct sequential store would: returns the next state and the
/// output it answers. For a compare-and-swap that does not swap, `current` is the value found;
/// when it swaps, `current` is `None`.
pub(crate) fn apply(state: Option<&str>, operation: &Operation) -> (KeyState, Output) {
    match operation {
        Operation::Get { .. } => {
            let value = state.map(str::to_owned);
            (value.clone(), Output::Get { value })
        }
        Operation::Put { value, .. } => (Some(value.clone()), Output::Put),
        Operation::Delete { .. } => (
            None,
            Output::Delete {
                existed: state.is_some(),
            },
        ),
        Operation::Append { suffix, .. } => {
            let next = format!("{}{}", state.unwrap_or(""), suffix);
            let length = u64::try_from(next.len()).expect("a value's length fits in u64");
            (
                Some(next),
                Output::Append {
                    length: Some(length),
                },
            )
        }
        Operation::Cas { expect, value, .. } => {
            if state == expect.as_deref() {
                (
                    Some(value.clone()),
                    Output::Cas {
                        swapped: true,
                        current: None,
                    },
                )
            } else {
                let current = state.map(str::to_owned);
                (
                    current.clone(),
                    Output::Cas {
                        swapped: false,
                        current,
                    },
                )
            }
        }
    }
}

/// Whether an output a store reported is one the reference model allows, given the output the
/// model computed. An unreported append length and the `current` of a successful swap are not
/// compared.
pub(crate) fn output_matches(reported: &Output, expected: &Output) -> bool {
    match (reported, expected) {
        (Output::Get { value: reported }, Output::Get { value: expected }) => reported == expected,
        (Output::Put, Output::Put) => true,
        (Output::Delete { existed: reported }, Output::Delete { existed: expected }) => {
            reported == expected
        }
        (Output::Append { length: reported }, Output::Append { length: expected }) => {
            reported.is_none() || reported == expected
        }
        (
            Output::Cas {
                swapped: reported_swapped,
                current: reported_current,
            },
            Output::Cas {
                swapped: expected_swapped,
                current: expected_current,
            },
        ) => {
            reported_swapped == expected_swapped
                && (*reported_swapped || reported_current == expected_current)
        }
        _ => false,
    }
}

/// Runs `entry` on `state` in the reference model, as the checker would linearize it: returns the
/// next state, or `None` when the entry's reported output contradicts the state. An unknown entry
/// always applies; a failed one never has effect.
pub(crate) fn apply_entry(state: Option<&str>, entry: &Entry) -> Option<KeyState> {
    match &entry.outcome {
        Outcome::Failed { .. } => Some(state.map(str::to_owned)),
        Outcome::Unknown { .. } => Some(apply(state, &entry.operation).0),
        Outcome::Ok { output } => {
            let (next, expected) = apply(state, &entry.operation);
            output_matches(output, &expected).then_some(next)
        }
    }
}

/// An interned value of the key. [`ABSENT`] is the absent key; every other id names a string.
pub(crate) type StateId = u32;

/// The absent key.
pub(crate) const ABSENT: StateId = 0;

/// A multiply-rotate hasher in the style of rustc's FxHash. The cache hashes a bitset on every
/// step, and SipHash's resistance to crafted keys buys nothing for keys the checker makes itself.
/// It has no random seed, which keeps every run identical.
#[derive(Default)]
pub(crate) struct FastHasher {
    hash: u64,
}

const FAST_HASH_MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FAST_HASH_MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(
                chunk.try_into().expect("chunks of 8 bytes"),
            ));
        }
        let mut tail = [0u8; 8];
        let remainder = chunks.remainder();
        tail[..remainder.len()].copy_from_slice(remainder);
        // The tail's length goes in too, so "a" and "a\0" hash apart.
        self.add(u64::from_le_bytes(tail) ^ ((remainder.len() as u64) << 59));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_u32(&mut self, word: u32) {
        self.add(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The build-hasher of [`FastHasher`], for `HashMap`/`HashSet`.
pub(crate) type FastBuildHasher = BuildHasherDefault<FastHasher>;

/// Whether `bytes` might be a concatenation of some of `pieces`: it is empty or starts with one.
/// Looking one piece ahead only keeps this cheap on long values; it is an over-approximation.
fn might_split_into(bytes: &[u8], pieces: &[&str]) -> bool {
    bytes.is_empty()
        || pieces
            .iter()
            .any(|piece| !piece.is_empty() && bytes.starts_with(piece.as_bytes()))
}

/// Whether some of `pieces`, each at most once, have lengths adding up to `total_bytes` (subset
/// sum, by dynamic programming over a bitset of reachable totals).
fn is_subset_sum(total_bytes: u64, pieces: &[&str]) -> bool {
    let Ok(total_bytes) = usize::try_from(total_bytes) else {
        return false;
    };
    let pieces_bytes: usize = pieces.iter().map(|piece| piece.len()).sum();
    if total_bytes > pieces_bytes {
        return false;
    }
    let mut reachable = vec![false; total_bytes + 1];
    reachable[0] = true;
    for piece in pieces {
        for sum in (piece.len()..=total_bytes).rev() {
            reachable[sum] |= reachable[sum - piece.len()];
        }
    }
    reachable[total_bytes]
}

/// What linearizing one entry does, compiled from its operation and outcome with every value
/// interned. `None` in an observation means the outcome is unknown, so the output is unchecked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// A get that answered: the state must be `expected`.
    Read { expected: StateId },
    /// A put: the state becomes `value`.
    Write { value: StateId },
    /// A delete: the state must be present iff `existed`; it becomes absent.
    Delete { existed: Option<bool> },
    /// An append: the state's length plus the suffix's must be `length_bytes` when reported.
    Append {
        suffix: String,
        suffix_fingerprint: Fingerprint,
        length_bytes: Option<u64>,
    },
    /// A compare-and-swap: swaps iff the state is `expect`; a reported `observed` must agree.
    Cas {
        expect: StateId,
        value: StateId,
        observed: Option<CasObserved>,
    },
    /// A get whose outcome is unknown: it has no effect and nothing to check.
    Nothing,
    /// The output's kind does not match the operation's: no state allows it.
    Impossible,
}

impl Step {
    /// Whether the step sets the state without looking at it: a put, or a delete whose answer is
    /// unknown.
    pub(crate) fn is_blind_write(&self) -> bool {
        matches!(self, Step::Write { .. } | Step::Delete { existed: None })
    }
}

/// What a compare-and-swap reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CasObserved {
    /// It swapped.
    Swapped,
    /// It did not swap, and found `current`.
    Kept { current: StateId },
}

/// Bytes an interned value costs beyond its text: two pointers to it, its hash table slot, the
/// reference counts, roughly.
const VALUE_OVERHEAD_BYTES: u64 = 64;

/// Bytes a memoized append costs in its hash table, roughly.
const MEMO_ENTRY_BYTES: u64 = 24;

/// The Mersenne prime 2^61 - 1, the modulus of the fingerprints' hashes.
const MODULUS: u64 = (1 << 61) - 1;

/// The two hash bases: fixed (so runs are reproducible), odd, and far apart.
const BASES: [u64; 2] = [0x0f3a_5b7c_9d2e_4f61, 0x1b87_3e29_c5d1_a6f3];

fn add_modulo(left: u64, right: u64) -> u64 {
    let sum = left + right;
    if sum >= MODULUS {
        sum - MODULUS
    } else {
        sum
    }
}

fn multiply_modulo(left: u64, right: u64) -> u64 {
    let product = u128::from(left) * u128::from(right);
    let folded = (product as u64 & MODULUS) + (product >> 61) as u64;
    // `folded` is below 2 * MODULUS + 1, so at most two subtractions reduce it.
    let once = if folded >= MODULUS {
        folded - MODULUS
    } else {
        folded
    };
    if once >= MODULUS {
        once - MODULUS
    } else {
        once
    }
}

/// What identifies a value without its text: its length and, for each base `B`, the polynomial
/// hash `sum(byte_i + 1) * B^(length - 1 - i)` modulo [`MODULUS`], with `B^length` kept so two
/// fingerprints concatenate in constant time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Fingerprint {
    length_bytes: u64,
    hashes: [u64; 2],
    powers: [u64; 2],
}

impl Fingerprint {
    /// The empty value's.
    const EMPTY: Fingerprint = Fingerprint {
        length_bytes: 0,
        hashes: [0, 0],
        powers: [1, 1],
    };

    /// The fingerprint of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Fingerprint {
        let mut fingerprint = Fingerprint::EMPTY;
        for &byte in bytes {
            for (lane, base) in BASES.into_iter().enumerate() {
                fingerprint.hashes[lane] = add_modulo(
                    multiply_modulo(fingerprint.hashes[lane], base),
                    u64::from(byte) + 1,
                );
                fingerprint.powers[lane] = multiply_modulo(fingerprint.powers[lane], base);
            }
        }
        fingerprint.length_bytes = bytes.len() as u64;
        fingerprint
    }

    /// The fingerprint of `self`'s value followed by `suffix`'s.
    fn then(self, suffix: Fingerprint) -> Fingerprint {
        let mut joined = Fingerprint {
            length_bytes: self.length_bytes + suffix.length_bytes,
            ..self
        };
        for lane in 0..2 {
            joined.hashes[lane] = add_modulo(
                multiply_modulo(self.hashes[lane], suffix.powers[lane]),
                suffix.hashes[lane],
            );
            joined.powers[lane] = multiply_modulo(self.powers[lane], suffix.powers[lane]);
        }
        joined
    }
}

/// The interned sequential model of one key.
///
/// Invariant: `fingerprints.len() == texts.len() == ids.len() + 1`; [`ABSENT`] has the empty
/// fingerprint (an absent key's length counts as 0 for appends) and is not in `ids`, so the
/// present empty value gets an id of its own.
#[derive(Debug)]
pub(crate) struct Model {
    fingerprints: Vec<Fingerprint>,
    /// The text of each value that came from an entry (a put, a read, a swap); `None` for values
    /// only ever made by appends.
    texts: Vec<Option<Rc<str>>>,
    ids: HashMap<Fingerprint, StateId, FastBuildHasher>,
    /// For values that came from entries and were asked about: the hashes of each prefix.
    prefix_hashes: HashMap<StateId, Vec<[u64; 2]>, FastBuildHasher>,
    /// An estimate of the memory the values and memos take, for the search's memory limit.
    bytes_held: u64,
    /// Memoized append results, keyed by (state, entry index), since the search retries the same
    /// append from the same state many times and building the string is the expensive part.
    appended: HashMap<(StateId, u32), StateId, FastBuildHasher>,
}

impl Model {
    /// A model that knows only the absent state.
    pub(crate) fn new() -> Model {
        Model {
            fingerprints: vec![Fingerprint::EMPTY],
            texts: vec![None],
            ids: HashMap::default(),
            prefix_hashes: HashMap::default(),
            bytes_held: 0,
            appended: HashMap::default(),
        }
    }

    /// The id of `text`, interning it when new.
    pub(crate) fn intern(&mut self, text: &str) -> StateId {
        let id = self.intern_fingerprint(Fingerprint::of(text.as_bytes()));
        if self.texts[id as usize].is_none() {
            self.texts[id as usize] = Some(Rc::from(text));
            self.bytes_held += text.len() as u64;
        }
        id
    }

    fn intern_fingerprint(&mut self, fingerprint: Fingerprint) -> StateId {
        if let Some(&id) = self.ids.get(&fingerprint) {
            return id;
        }
        let id =
            StateId::try_from(self.fingerprints.len()).expect("fewer than 2^32 distinct values");
        self.fingerprints.push(fingerprint);
        self.texts.push(None);
        self.ids.insert(fingerprint, id);
        self.bytes_held += VALUE_OVERHEAD_BYTES;
        debug_assert_eq!(self.fingerprints.len(), self.ids.len() + 1);
        id
    }

    /// The id of an optional value: [`ABSENT`] for `None`.
    pub(crate) fn intern_option(&mut self, text: Option<&str>) -> StateId {
        text.map_or(ABSENT, |text| self.intern(text))
    }

    /// An estimate of the bytes the interned values and memos hold.
    pub(crate) fn bytes_held(&self) -> u64 {
        self.bytes_held
    }

    /// The text of a value that came from an entry; `None` for [`ABSENT`] and for values made
    /// only by appends.
    pub(crate) fn text(&self, id: StateId) -> Option<&str> {
        self.texts[id as usize].as_deref()
    }

    fn length_bytes(&self, id: StateId) -> u64 {
        self.fingerprints[id as usize].length_bytes
    }

    /// Compiles an entry into the step the search runs. Failed entries must be dropped first.
    pub(crate) fn compile(&mut self, entry: &Entry) -> Step {
        let output = match &entry.outcome {
            Outcome::Ok { output } => Some(output),
            Outcome::Unknown { .. } => None,
            Outcome::Failed { .. } => {
                panic!("invariant failed_entries_dropped: entry {}", entry.id)
            }
        };
        match (&entry.operation, output) {
            (Operation::Get { .. }, None) => Step::Nothing,
            (Operation::Get { .. }, Some(Output::Get { value })) => Step::Read {
                expected: self.intern_option(value.as_deref()),
            },
            (Operation::Put { value, .. }, None | Some(Output::Put)) => Step::Write {
                value: self.intern(value),
            },
            (Operation::Delete { .. }, None) => Step::Delete { existed: None },
            (Operation::Delete { .. }, Some(Output::Delete { existed })) => Step::Delete {
                existed: Some(*existed),
            },
            (Operation::Append { suffix, .. }, None) => Step::Append {
                suffix: suffix.clone(),
                suffix_fingerprint: Fingerprint::of(suffix.as_bytes()),
                length_bytes: None,
            },
            (Operation::Append { suffix, .. }, Some(Output::Append { length })) => Step::Append {
                suffix: suffix.clone(),
                suffix_fingerprint: Fingerprint::of(suffix.as_bytes()),
                length_bytes: *length,
            },
            (Operation::Cas { expect, value, .. }, output) => {
                let expect = self.intern_option(expect.as_deref());
                let value = self.intern(value);
                let observed = match output {
                    None => None,
                    Some(Output::Cas { swapped: true, .. }) => Some(CasObserved::Swapped),
                    Some(Output::Cas {
                        swapped: false,
                        current,
                    }) => Some(CasObserved::Kept {
                        current: self.intern_option(current.as_deref()),
                    }),
                    Some(_) => return Step::Impossible,
                };
                Step::Cas {
                    expect,
                    value,
                    observed,
                }
            }
            (_, Some(_)) => Step::Impossible,
        }
    }

    /// Whether `step` might accept some state reached from `base` by appending some of
    /// `suffixes`, each at most once, in some order. An over-approximation (it may say yes
    /// wrongly, never no wrongly), used to cut a run of unknown entries that no answered entry
    /// could follow. Blind writes say no: the canonical form forbids them after a run.
    pub(crate) fn could_accept_after_appends(
        &mut self,
        base: StateId,
        step: &Step,
        suffixes: &[&str],
    ) -> bool {
        let mut can_reach = |target: StateId| self.could_reach_by_appends(base, target, suffixes);
        match step {
            Step::Read { expected } => can_reach(*expected),
            Step::Append {
                suffix,
                length_bytes: Some(length_bytes),
                ..
            } => {
                let fixed_bytes = self.length_bytes(base) + suffix.len() as u64;
                length_bytes
                    .checked_sub(fixed_bytes)
                    .is_some_and(|extra_bytes| is_subset_sum(extra_bytes, suffixes))
            }
            Step::Append {
                length_bytes: None, ..
            } => true,
            Step::Delete {
                existed: Some(false),
            } => base == ABSENT,
            Step::Delete {
                existed: Some(true) | None,
            } => true,
            Step::Cas {
                expect,
                observed: Some(CasObserved::Swapped),
                ..
            } => can_reach(*expect),
            Step::Cas {
                observed: Some(CasObserved::Kept { current }),
                ..
            } => can_reach(*current),
            Step::Cas { observed: None, .. } | Step::Nothing => true,
            Step::Write { .. } | Step::Impossible => false,
        }
    }

    /// Whether appending some of `suffixes` to `base` might give `target`: `target` starts with
    /// `base` (an absent key counts as empty, but only an absent key stays absent) and the rest
    /// splits into suffixes. Letting a suffix be used twice keeps this a cheap over-approximation.
    pub(crate) fn could_reach_by_appends(
        &mut self,
        base: StateId,
        target: StateId,
        suffixes: &[&str],
    ) -> bool {
        if target == ABSENT {
            return base == ABSENT;
        }
        let base_length = self.length_bytes(base) as usize;
        let target_length = self.length_bytes(target) as usize;
        if base_length > target_length || !self.starts_with(target, base) {
            return false;
        }
        let target_text = self
            .text(target)
            .expect("precondition: targets come from entries");
        might_split_into(&target_text.as_bytes()[base_length..], suffixes)
    }

    /// Whether value `target`, which came from an entry, starts with value `base`: compares
    /// `base`'s fingerprint with that of `target`'s prefix, from prefix hashes computed once per
    /// target.
    fn starts_with(&mut self, target: StateId, base: StateId) -> bool {
        let base_fingerprint = self.fingerprints[base as usize];
        let length = base_fingerprint.length_bytes as usize;
        if !self.prefix_hashes.contains_key(&target) {
            let text = self.texts[target as usize]
                .clone()
                .expect("targets come from entries");
            let mut hashes = Vec::with_capacity(text.len() + 1);
            let mut running = Fingerprint::EMPTY;
            hashes.push(running.hashes);
            for &byte in text.as_bytes() {
                running = running.then(Fingerprint::of(&[byte]));
                hashes.push(running.hashes);
            }
            self.bytes_held += hashes.len() as u64 * 16;
            self.prefix_hashes.insert(target, hashes);
        }
        self.prefix_hashes[&target].get(length) == Some(&base_fingerprint.hashes)
    }

    /// Linearizes the step of entry `entry_index` on `state`: the next state, or `None` when the
    /// step's reported output contradicts `state`.
    pub(crate) fn step(
        &mut self,
        state: StateId,
        entry_index: u32,
        step: &Step,
    ) -> Option<StateId> {
        match step {
            Step::Read { expected } => (state == *expected).then_some(state),
            Step::Write { value } => Some(*value),
            Step::Delete { existed } => match existed {
                Some(existed) if *existed != (state != ABSENT) => None,
                _ => Some(ABSENT),
            },
            Step::Append {
                suffix,
                suffix_fingerprint,
                length_bytes,
            } => {
                if let Some(length_bytes) = length_bytes {
                    if self.length_bytes(state) + suffix.len() as u64 != *length_bytes {
                        return None;
                    }
                }
                if let Some(&next) = self.appended.get(&(state, entry_index)) {
                    return Some(next);
                }
                let fingerprint = self.fingerprints[state as usize].then(*suffix_fingerprint);
                let next = self.intern_fingerprint(fingerprint);
                self.appended.insert((state, entry_index), next);
                self.bytes_held += MEMO_ENTRY_BYTES;
                Some(next)
            }
            Step::Cas {
                expect,
                value,
                observed,
            } => {
                let swaps = state == *expect;
                match observed {
                    None => Some(if swaps { *value } else { state }),
                    Some(CasObserved::Swapped) => swaps.then_some(*value),
                    Some(CasObserved::Kept { current }) => {
                        (!swaps && state == *current).then_some(state)
                    }
                }
            }
            Step::Nothing => Some(state),
            Step::Impossible => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::SplitMix64;

    fn random_text(random: &mut SplitMix64) -> Option<String> {
        match random.below(4) {
            0 => None,
            1 => Some(String::new()),
            2 => Some("a".to_owned()),
            _ => Some("ab".to_owned()),
        }
    }

    fn random_operation(random: &mut SplitMix64) -> Operation {
        let key = "k".to_owned();
        let text = random_text(random).unwrap_or_default();
        match random.below(5) {
            0 => Operation::Get { key },
            1 => Operation::Put { key, value: text },
            2 => Operation::Delete { key },
            3 => Operation::Append { key, suffix: text },
            _ => Operation::Cas {
                key,
                expect: random_text(random),
                value: text,
            },
        }
    }

    fn random_output(random: &mut SplitMix64) -> Output {
        match random.below(5) {
            0 => Output::Get {
                value: random_text(random),
            },
            1 => Output::Put,
            2 => Output::Delete {
                existed: random.below(2) == 0,
            },
            3 => Output::Append {
                length: (random.below(3) != 0).then(|| random.below(5)),
            },
            _ => Output::Cas {
                swapped: random.below(2) == 0,
                current: random_text(random),
            },
        }
    }

    /// The compiled, interned step accepts exactly what the reference model accepts and moves to
    /// the same state, over every small combination of state, operation and reported output.
    #[test]
    fn compiled_step_agrees_with_reference_model() {
        let mut random = SplitMix64::new(7);
        for _ in 0..20_000 {
            let state = random_text(&mut random);
            let operation = random_operation(&mut random);
            let outcome = if random.below(5) == 0 {
                Outcome::Unknown {
                    reason: "test".into(),
                }
            } else {
                Outcome::Ok {
                    output: random_output(&mut random),
                }
            };
            let entry = Entry::sketch(operation, outcome);
            let expected = apply_entry(state.as_deref(), &entry);

            let mut model = Model::new();
            let step = model.compile(&entry);
            let state_id = model.intern_option(state.as_deref());
            let next = model.step(state_id, 0, &step);
            let expected_id = expected
                .as_ref()
                .map(|value| model.intern_option(value.as_deref()));
            assert_eq!(
                next, expected_id,
                "entry {entry:?} from state {state:?} to {expected:?}"
            );
        }
    }

    #[test]
    fn might_split_into_looks_at_the_first_piece() {
        assert!(might_split_into(b"", &[]));
        assert!(might_split_into(b"+1;+2;", &["+2;", "+1;"]));
        assert!(!might_split_into(b"+3;+1;", &["+2;", "+1;"]));
    }

    #[test]
    fn subset_sum_uses_each_piece_once() {
        assert!(is_subset_sum(0, &[]));
        assert!(is_subset_sum(5, &["ab", "xyz"]));
        assert!(!is_subset_sum(4, &["ab", "xyz"]));
        assert!(!is_subset_sum(4, &["ab"]));
    }

    #[test]
    fn appended_values_meet_the_same_value_interned_from_text() {
        let mut model = Model::new();
        let suffix_entry = Entry::sketch(
            Operation::Append {
                key: "k".into(),
                suffix: "cd".into(),
            },
            Outcome::Unknown {
                reason: "test".into(),
            },
        );
        let step = model.compile(&suffix_entry);
        let start = model.intern("ab");
        let appended = model
            .step(start, 0, &step)
            .expect("an unknown append always applies");
        assert_eq!(model.text(appended), None, "no text is built for an append");
        assert_eq!(model.intern("abcd"), appended);
        assert_eq!(model.text(appended), Some("abcd"));
        let from_absent = model.step(ABSENT, 0, &step).expect("applies");
        assert_eq!(model.intern("cd"), from_absent);
        assert_ne!(model.intern("dc"), from_absent);
    }

    #[test]
    fn fingerprints_concatenate() {
        let whole = Fingerprint::of(b"hello, world");
        let joined = Fingerprint::of(b"hello").then(Fingerprint::of(b", world"));
        assert_eq!(whole, joined);
        assert_eq!(Fingerprint::EMPTY.then(whole), whole);
        assert_ne!(Fingerprint::of(b"ab"), Fingerprint::of(b"ba"));
        assert_eq!(multiply_modulo(MODULUS - 1, MODULUS - 1), 1);
    }

    #[test]
    fn absent_and_empty_are_different_states() {
        let mut model = Model::new();
        let empty = model.intern("");
        assert_ne!(empty, ABSENT);
        assert_eq!(model.text(empty), Some(""));
        assert_eq!(model.text(ABSENT), None);
    }

    #[test]
    fn append_to_absent_counts_as_empty() {
        let (next, output) = apply(
            None,
            &Operation::Append {
                key: "k".into(),
                suffix: "xy".into(),
            },
        );
        assert_eq!(next.as_deref(), Some("xy"));
        assert_eq!(output, Output::Append { length: Some(2) });
    }

    #[test]
    fn fast_hasher_separates_tails_of_different_lengths() {
        let hash = |bytes: &[u8]| {
            let mut hasher = FastHasher::default();
            hasher.write(bytes);
            hasher.finish()
        };
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
    }
}
