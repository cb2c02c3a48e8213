//! The linearizability search for one key: Wing & Gong's backtracking with Lowe's memoization,
//! laid out as in Porcupine (Athalye), plus a dominance rule for unknown entries.
//!
//! ```text
//!   answered list, by time:  call(a) call(b) ret(a) call(c) ret(b) ret(c)
//!   unknown list, by invoke: call(u) call(w)
//!
//!   walk the answered list from its head:
//!     at a call:   if the model accepts the entry in the current state and the next
//!                  configuration is not known to fail, push (entry, state), lift the entry's
//!                  events out of the list, restart at the head
//!     at a return: every answered candidate has been tried; now try the unknown entries
//!                  invoked no later than this return, newest first, the same way
//!   no candidate left: this configuration fails; record it, pop the last choice, put its
//!                  events back, and go on with the candidate after it
//!   nothing to pop: every order failed, the history is not linearizable
//! ```
//!
//! A configuration is the set of answered entries linearized (`A`), the set of unknown ones
//! linearized (`U`), and the model state `s`. Lowe's cache records configurations that failed, so
//! a second path reaching one is cut at once. It keeps every one, exactly: states are interned
//! (see [`crate::model`]), so a key is two bitsets and an id, and each bitset is stored without
//! its leading full and trailing empty words (in a long history `A` is all ones up to about the
//! current window), so a key is a few words however long the history. The step budget and a
//! memory limit ([`MEMORY_BYTES_MAX`], counted, not measured) bound it.
//!
//! An unknown entry has no return event: nothing forces it to be linearized, which is the same
//! as letting it take effect at any point after its invocation or never. The search therefore
//! succeeds as soon as every answered entry is linearized. Unknown entries multiply the
//! configurations, since each pending one may or may not be in `U`; three rules keep them in
//! check:
//! - dominance: `(A, U', s)` with `U' ⊆ U` can do all that `(A, U, s)` can (it may skip the
//!   extra unknown entries for ever, and they do not move the real-time window, having no
//!   return), so when the former failed, so does the latter. The cache keeps a few of the
//!   smallest failed `U` for each `(A, s)` to check this. Answered candidates are tried before
//!   unknown ones so that the smaller `U` tends to fail first and cover the rest.
//! - twins: unknown entries with the same step are used in the order they were invoked (see
//!   [`Compiled::previous_twin`]), so `n` unknown deletes count as `n + 1` sets, not `2^n`.
//! - a canonical form for runs of unknown entries between answered ones (see [`Run`]), and a run
//!   is abandoned as soon as no answered candidate could follow it (see `Search::run_can_end`).
//!
//! Known limit: many clients on one key with many unknown appends whose lengths and contents are
//! not pinned down by reads soon after can still make the search exponential; the step budget
//! and the memory limit then end it with [`KeyResult::BudgetExhausted`], never a wrong answer.
//!
//! Why recorded failures are sound: the search explores only canonical orders (twins in
//! invocation order, runs in canonical form), and every order can be rewritten into a canonical
//! one from the same configuration (each rule says how; the twin swaps keep every step, so they
//! keep the run rules). A configuration is recorded only when all its canonical successors were
//! rejected by the model, failed, or were known to fail from the cache. By induction on the
//! order of recording, every recorded configuration has no canonical completion, hence none.

use std::collections::{HashMap, HashSet};

use crate::history::Entry;
use crate::model::{FastBuildHasher, Model, StateId, Step, ABSENT};
use crate::report::KeyResult;

/// The failure cache and the interned values may hold at most about this many bytes before the
/// search gives up with [`KeyResult::BudgetExhausted`]; the step budget alone would let a wide
/// history, or one of long appended values, take many gigabytes. Counted from what is held, not
/// measured, so it is as deterministic as the steps.
const MEMORY_BYTES_MAX: u64 = 512 << 20;

/// Bytes of bookkeeping a cache entry costs beyond its words: the box's pointer and length, the
/// allocator's header and rounding, and the hash table's control byte and spare capacity,
/// roughly.
const CACHE_ENTRY_OVERHEAD_BYTES: u64 = 64;

/// Unknown-entry sets kept for one `(A, s)` to rule out their supersets: more are not kept
/// there (the exact part of the cache still has them), so that a check stays cheap.
const UNKNOWN_SETS_PER_KEY_MAX: usize = 32;

/// Bytes of bookkeeping one more unknown set for an `(A, s)` costs beyond its words.
const SET_OVERHEAD_BYTES: u64 = 32;

/// Marks the end of a list.
const NONE: usize = usize::MAX;

/// Each list's sentinel head node.
const HEAD: usize = 0;

/// What one search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SearchOutcome {
    /// The answer.
    pub(crate) result: KeyResult,
    /// Loop iterations used; never more than the budget.
    pub(crate) steps: u64,
    /// The most bytes the failure cache and the model's interned values held at once, estimated
    /// from what they hold (deterministic, like the steps).
    pub(crate) memory_bytes: u64,
    /// When traced: the indices (into the searched entries) of the longest sequence the search
    /// linearized, in order. Empty when not traced.
    pub(crate) longest_prefix: Vec<usize>,
}

/// A node of a doubly linked list that can lift entries out and put them back in reverse order
/// ("dancing links"), since a lifted node keeps its own links.
#[derive(Clone, Copy, Debug)]
struct Node {
    previous: usize,
    next: usize,
    /// Index into the compiled entries.
    entry: usize,
    /// For the answered list: whether this is the call (else the return). For the unknown list:
    /// always true.
    is_call: bool,
    /// The event's time: invocation for a call, completion for a return.
    time_ns: u64,
}

/// A doubly linked list of events with a sentinel head.
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    /// A list of `events` (time, is_call, entry), in the order given.
    fn new(events: &[(u64, bool, usize)]) -> EventList {
        let mut nodes = Vec::with_capacity(events.len() + 1);
        let head_next = if events.is_empty() { NONE } else { 1 };
        nodes.push(Node {
            previous: NONE,
            next: head_next,
            entry: NONE,
            is_call: false,
            time_ns: 0,
        });
        for (position, &(time_ns, is_call, entry)) in events.iter().enumerate() {
            let node = position + 1;
            let next = if node == events.len() { NONE } else { node + 1 };
            nodes.push(Node {
                previous: node - 1,
                next,
                entry,
                is_call,
                time_ns,
            });
        }
        EventList { nodes }
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn unlink(&mut self, node: usize) {
        let Node { previous, next, .. } = self.nodes[node];
        self.nodes[previous].next = next;
        if next != NONE {
            self.nodes[next].previous = previous;
        }
    }

    fn relink(&mut self, node: usize) {
        let Node { previous, next, .. } = self.nodes[node];
        self.nodes[previous].next = node;
        if next != NONE {
            self.nodes[next].previous = node;
        }
    }
}

/// Where a compiled entry's events are.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// An answered entry: bit `bit` of the answered set, nodes in the answered list.
    Answered {
        bit: usize,
        call_node: usize,
        return_node: usize,
    },
    /// An unknown entry: bit `bit` of the unknown set, a node in the unknown list.
    Unknown { bit: usize, node: usize },
}

/// A compiled entry.
#[derive(Debug)]
struct Compiled {
    /// Index into the searched entries, for reporting.
    source: usize,
    step: Step,
    place: Place,
    /// For an unknown entry: the unknown entry with the same step invoked last before it, its
    /// twin; [`NONE`] when there is none, and for answered entries. Twins are interchangeable:
    /// where a linearization uses a twin while an earlier-invoked one is unused or used later,
    /// swapping the two gives a linearization too, since the earlier one may take effect
    /// wherever the later one may (an unknown entry is bound only by its invocation) and the
    /// steps, hence the states, stay the same. So the search uses twins in the order they were
    /// invoked, which turns `n` interchangeable unknown entries from `2^n` sets into `n + 1`.
    previous_twin: usize,
}

/// Where the walk is: which list and node. The unknown list is walked backwards from the newest
/// entry invoked no later than the first return still in the answered list (one invoked after
/// it must wait for that entry) to the head.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    Answered(usize),
    Unknown { node: usize },
}

/// How many unknown entries were linearized since the last answered one, as far as the
/// canonical-form rules care. Each rule drops unknown entries from a linearization, which keeps
/// it valid (they are never required) and is never worse (fewer are used up):
///
/// - an unknown entry that leaves the state as it is can be dropped;
/// - a blind write (put, unknown delete) overwrites the run before it, which can be dropped: so
///   a blind write may not follow an unknown entry;
/// - an answered delete only sees whether the key is present, and one unknown entry suffices to
///   change that (the first of the run that did): so it may not follow two or more.
///
/// Every linearization can be rewritten to obey them, so searching only such orders is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    Empty = 0,
    One = 1,
    Several = 2,
}

impl Run {
    /// From the least restrictive to the most.
    const ALL: [Run; 3] = [Run::Empty, Run::One, Run::Several];

    fn after(self, is_unknown: bool) -> Run {
        match (is_unknown, self) {
            (false, _) => Run::Empty,
            (true, Run::Empty) => Run::One,
            (true, _) => Run::Several,
        }
    }

    /// Whether an entry with `step` may be linearized next.
    fn allows(self, step: &Step) -> bool {
        match self {
            Run::Empty => true,
            Run::One => !step.is_blind_write(),
            Run::Several => {
                !step.is_blind_write() && !matches!(step, Step::Delete { existed: Some(_) })
            }
        }
    }
}

/// One choice on the stack.
struct Frame {
    entry: usize,
    state_before: StateId,
    run_before: Run,
    /// Where to go on after this choice fails.
    resume: Cursor,
}

/// A set of entries as a bitset that knows its leading full words and its trailing empty ones,
/// so that its encoding in a cache key holds only the words in between. In a long history the
/// linearized set is all ones up to about the current window and all zeros after it, so a key
/// costs a few words however many entries the key's history has.
///
/// Invariant: `full_words` is the index of the first word that is not all ones (or the length),
/// and `used_words` is one past the last nonzero word (or 0), so `full_words <= used_words`.
#[derive(Debug)]
struct BitSet {
    words: Vec<u64>,
    full_words: usize,
    used_words: usize,
}

impl BitSet {
    /// An empty set of `bits` bits.
    fn new(bits: usize) -> BitSet {
        BitSet {
            words: vec![0; bits.div_ceil(64)],
            full_words: 0,
            used_words: 0,
        }
    }

    /// Sets or clears `bit`, which must flip.
    fn set(&mut self, bit: usize, value: bool) {
        let word = bit / 64;
        let mask = 1u64 << (bit % 64);
        debug_assert_eq!(
            self.words[word] & mask != 0,
            !value,
            "invariant: a bit flips each time"
        );
        if value {
            self.words[word] |= mask;
            self.used_words = self.used_words.max(word + 1);
            while self.full_words < self.words.len() && self.words[self.full_words] == u64::MAX {
                self.full_words += 1;
            }
        } else {
            self.words[word] &= !mask;
            self.full_words = self.full_words.min(word);
            while self.used_words > 0 && self.words[self.used_words - 1] == 0 {
                self.used_words -= 1;
            }
        }
        debug_assert!(self.full_words <= self.used_words);
    }

    /// The words up to the last nonzero one.
    fn used(&self) -> &[u64] {
        &self.words[..self.used_words]
    }

    /// Appends the set's encoding to `key`: a word with the number of leading full words and
    /// the number of words that follow, then those words. Equal sets encode equally, and the
    /// encoding says where it ends, so encodings can be concatenated.
    fn encode_into(&self, key: &mut Vec<u64>) {
        let middle = &self.words[self.full_words..self.used_words];
        key.push(self.full_words as u64 | ((middle.len() as u64) << 32));
        key.extend_from_slice(middle);
    }
}

/// The unknown sets recorded as failed for one `(A, s)`, kept free of supersets, each without its
/// trailing empty words.
enum UnknownSets {
    One(Box<[u64]>),
    Several(Vec<Box<[u64]>>),
}

/// Whether `smaller ⊆ larger`, for sets without trailing empty words.
fn is_subset(smaller: &[u64], larger: &[u64]) -> bool {
    smaller.len() <= larger.len()
        && smaller
            .iter()
            .zip(larger)
            .all(|(small, large)| small & !large == 0)
}

impl UnknownSets {
    /// Whether some recorded set is a subset of `unknown`.
    fn dominates(&self, unknown: &[u64]) -> bool {
        match self {
            UnknownSets::One(set) => is_subset(set, unknown),
            UnknownSets::Several(sets) => sets.iter().any(|set| is_subset(set, unknown)),
        }
    }

    /// Records `unknown` unless [`UNKNOWN_SETS_PER_KEY_MAX`] are kept already, dropping the
    /// recorded supersets it makes redundant (a set leaves only for a subset of it, which still
    /// rules it out). Returns whether it was kept, and how many sets were added net (may be
    /// negative), for the memory count.
    fn record(&mut self, unknown: &[u64]) -> (bool, isize) {
        match self {
            UnknownSets::One(set) => {
                if is_subset(unknown, set) {
                    *set = unknown.into();
                    (true, 0)
                } else {
                    let first = std::mem::take(set);
                    *self = UnknownSets::Several(vec![first, unknown.into()]);
                    (true, 1)
                }
            }
            UnknownSets::Several(sets) => {
                let before = sets.len();
                sets.retain(|set| !is_subset(unknown, set));
                let kept = sets.len() < UNKNOWN_SETS_PER_KEY_MAX;
                if kept {
                    sets.push(unknown.into());
                }
                (kept, sets.len() as isize - before as isize)
            }
        }
    }
}

/// The search's state.
struct Search {
    model: Model,
    compiled: Vec<Compiled>,
    answered: EventList,
    unknown: EventList,
    answered_count: usize,
    unknown_count: usize,
}

impl Search {
    /// Compiles the entries and builds the two lists. Failed entries and unknown gets are left
    /// out: neither can affect any other entry.
    fn new(entries: &[&Entry]) -> Search {
        let mut model = Model::new();
        let mut compiled = Vec::with_capacity(entries.len());
        // (time, is_return, compiled index): sorting by this puts a call before a return at the
        // same nanosecond, which makes such a pair concurrent. That is the permissive reading of
        // a tie: two clock reads that are equal cannot tell which event came first.
        let mut answered_events: Vec<(u64, bool, usize)> = Vec::new();
        let mut unknown_events: Vec<(u64, bool, usize)> = Vec::new();
        for (source, entry) in entries.iter().enumerate() {
            if entry.outcome.is_failed() {
                continue;
            }
            let step = model.compile(entry);
            if step == Step::Nothing {
                continue;
            }
            let index = compiled.len();
            if entry.outcome.is_ok() {
                answered_events.push((entry.invoke_ns, false, index));
                // An early completion is a recorder bug; clamping keeps the call before its
                // return, which the list walk relies on.
                answered_events.push((entry.complete_ns.max(entry.invoke_ns), true, index));
            } else {
                unknown_events.push((entry.invoke_ns, false, index));
            }
            let place = Place::Unknown {
                bit: NONE,
                node: NONE,
            };
            compiled.push(Compiled {
                source,
                step,
                place,
                previous_twin: NONE,
            });
        }
        answered_events.sort_unstable();
        unknown_events.sort_unstable();

        let mut answered_bits = vec![NONE; compiled.len()];
        let mut call_nodes = vec![NONE; compiled.len()];
        let mut answered_count = 0;
        for (position, &(_, is_return, index)) in answered_events.iter().enumerate() {
            let node = position + 1;
            if is_return {
                assert!(
                    call_nodes[index] < node,
                    "invariant: a call comes before its return"
                );
                compiled[index].place = Place::Answered {
                    bit: answered_bits[index],
                    call_node: call_nodes[index],
                    return_node: node,
                };
            } else {
                call_nodes[index] = node;
                answered_bits[index] = answered_count;
                answered_count += 1;
            }
        }
        // The last unknown entry seen with each step, in invocation order.
        let mut last_with_step: HashMap<&Step, usize> = HashMap::new();
        for (position, &(_, _, index)) in unknown_events.iter().enumerate() {
            compiled[index].place = Place::Unknown {
                bit: position,
                node: position + 1,
            };
        }
        let mut twins = vec![NONE; compiled.len()];
        for &(_, _, index) in &unknown_events {
            let twin = last_with_step.insert(&compiled[index].step, index);
            twins[index] = twin.unwrap_or(NONE);
        }
        drop(last_with_step);
        for (entry, twin) in compiled.iter_mut().zip(twins) {
            entry.previous_twin = twin;
        }
        // The lists hold calls as `is_call` and returns as not; the sort key held the opposite.
        let flip = |events: Vec<(u64, bool, usize)>| -> Vec<(u64, bool, usize)> {
            events
                .into_iter()
                .map(|(time_ns, is_return, index)| (time_ns, !is_return, index))
                .collect()
        };
        let unknown_count = unknown_events.len();
        Search {
            model,
            compiled,
            answered: EventList::new(&flip(answered_events)),
            unknown: EventList::new(&flip(unknown_events)),
            answered_count,
            unknown_count,
        }
    }

    /// Takes an entry's events out of its list (`lifted`), or puts them back in the reverse
    /// order, which is what lets the lists restore themselves.
    fn set_lifted(&mut self, entry: usize, lifted: bool) {
        let (list, call_node, return_node) = match self.compiled[entry].place {
            Place::Answered {
                call_node,
                return_node,
                ..
            } => (&mut self.answered, call_node, Some(return_node)),
            Place::Unknown { node, .. } => (&mut self.unknown, node, None),
        };
        if lifted {
            list.unlink(call_node);
            return_node.into_iter().for_each(|node| list.unlink(node));
        } else {
            return_node.into_iter().for_each(|node| list.relink(node));
            list.relink(call_node);
        }
    }

    fn run(mut self, steps_max: u64, trace: bool) -> SearchOutcome {
        let mut outcome = SearchOutcome {
            result: KeyResult::Linearizable,
            steps: 0,
            memory_bytes: 0,
            longest_prefix: Vec::new(),
        };
        let mut answered_remaining = self.answered_count;
        if answered_remaining == 0 {
            return outcome;
        }
        let mut answered_set = BitSet::new(self.answered_count);
        let mut unknown_set = BitSet::new(self.unknown_count);
        let mut cache = FailureCache::default();
        // The key of the configuration under consideration, built anew for each; kept here so
        // that a lookup allocates nothing.
        let mut key: Vec<u64> = Vec::new();
        let mut stack: Vec<Frame> = Vec::with_capacity(self.compiled.len());
        let mut state = ABSENT;
        // Unknown entries linearized since the last answered one, for the canonical-form rules.
        let mut run = Run::Empty;
        let mut cursor = Cursor::Answered(self.answered.first());

        loop {
            let memory_bytes = cache.bytes + self.model.bytes_held();
            outcome.memory_bytes = outcome.memory_bytes.max(memory_bytes);
            if outcome.steps == steps_max || memory_bytes >= MEMORY_BYTES_MAX {
                outcome.result = KeyResult::BudgetExhausted;
                return outcome;
            }
            outcome.steps += 1;
            // Pick the next candidate, or learn that there is none.
            let (candidate, next_cursor) = match cursor {
                Cursor::Answered(node) => {
                    // An answered entry not yet linearized has its return further on, so the
                    // walk meets a return before it runs off the end.
                    assert!(
                        node != NONE,
                        "invariant: the answered walk ends at a return"
                    );
                    let current = self.answered.nodes[node];
                    if !current.is_call {
                        // Newest first: an unknown entry that took effect usually did so soon
                        // after it was sent, so the recent ones are the likelier to be needed.
                        let mut newest = HEAD;
                        let mut probe = self.unknown.first();
                        while probe != NONE && self.unknown.nodes[probe].time_ns <= current.time_ns
                        {
                            newest = probe;
                            probe = self.unknown.nodes[probe].next;
                        }
                        cursor = Cursor::Unknown { node: newest };
                        continue;
                    }
                    (Some(current.entry), Cursor::Answered(current.next))
                }
                Cursor::Unknown { node } => {
                    if node == HEAD {
                        (None, cursor)
                    } else {
                        let Node {
                            previous, entry, ..
                        } = self.unknown.nodes[node];
                        (Some(entry), Cursor::Unknown { node: previous })
                    }
                }
            };

            let Some(entry) = candidate else {
                // Every candidate of this configuration failed: record it, then backtrack.
                let Some(frame) = stack.pop() else {
                    outcome.result = KeyResult::NotLinearizable;
                    return outcome;
                };
                cache.record(&answered_set, &unknown_set, state_word(state, run));
                self.set_bit(&mut answered_set, &mut unknown_set, frame.entry, false);
                state = frame.state_before;
                run = frame.run_before;
                self.set_lifted(frame.entry, false);
                if matches!(self.compiled[frame.entry].place, Place::Answered { .. }) {
                    answered_remaining += 1;
                }
                cursor = frame.resume;
                continue;
            };

            cursor = next_cursor;
            let compiled = &self.compiled[entry];
            let is_unknown = matches!(compiled.place, Place::Unknown { .. });
            if !run.allows(&compiled.step) {
                continue;
            }
            if is_unknown && !self.is_next_of_its_twins(&unknown_set, entry) {
                continue;
            }
            let entry_index = u32::try_from(entry).expect("fewer than 2^32 entries per key");
            let Some(next_state) = self
                .model
                .step(state, entry_index, &self.compiled[entry].step)
            else {
                continue;
            };
            if is_unknown && next_state == state {
                // Canonical form: an unknown entry that changes nothing is better left out.
                continue;
            }
            let next_run = run.after(is_unknown);
            if is_unknown && !self.run_can_end(next_state, next_run, entry) {
                continue;
            }
            self.set_bit(&mut answered_set, &mut unknown_set, entry, true);
            // The same configuration in a shorter run may do more, so its failure covers this.
            let answered_and_state = FailureCache::encode(&mut key, &answered_set, &unknown_set, 0);
            let known_to_fail = Run::ALL[..=next_run as usize].iter().any(|&shorter| {
                key[answered_and_state - 1] = state_word(next_state, shorter);
                cache.has_failed(&key, answered_and_state, &unknown_set)
            });
            if known_to_fail {
                self.set_bit(&mut answered_set, &mut unknown_set, entry, false);
                continue;
            }
            stack.push(Frame {
                entry,
                state_before: state,
                run_before: run,
                resume: cursor,
            });
            state = next_state;
            run = next_run;
            self.set_lifted(entry, true);
            if matches!(self.compiled[entry].place, Place::Answered { .. }) {
                answered_remaining -= 1;
                if answered_remaining == 0 {
                    return outcome;
                }
            }
            if trace && stack.len() > outcome.longest_prefix.len() {
                outcome.longest_prefix = stack
                    .iter()
                    .map(|frame| self.compiled[frame.entry].source)
                    .collect();
            }
            cursor = Cursor::Answered(self.answered.first());
        }
    }

    /// Whether unknown entry `entry` may be linearized given the unknown entries already
    /// linearized: only when its twin invoked just before it (if any) is among them. Twins are
    /// unknown entries with the same step; see [`Compiled::previous_twin`] for why using them in
    /// the order of invocation loses no linearization.
    fn is_next_of_its_twins(&self, unknown_set: &BitSet, entry: usize) -> bool {
        let twin = self.compiled[entry].previous_twin;
        if twin == NONE {
            return true;
        }
        let Place::Unknown { bit, .. } = self.compiled[twin].place else {
            panic!("invariant: a twin is an unknown entry");
        };
        unknown_set.words[bit / 64] & (1u64 << (bit % 64)) != 0
    }

    /// Whether a run of unknown entries that has reached `state` could still be followed by an
    /// answered entry. A run must end with one of the answered candidates now in the window (the
    /// window does not move while only unknown entries are linearized), and inside a run the
    /// state changes only by appends or by an unknown compare-and-swap setting its value (blind
    /// writes may not follow an unknown entry). So when no candidate could accept any state
    /// reachable that way, the run is a dead end, however long it grows.
    fn run_can_end(&mut self, state: StateId, run: Run, just_linearized: usize) -> bool {
        let mut deadline_ns = u64::MAX;
        let mut candidates = Vec::new();
        let mut node = self.answered.first();
        while node != NONE {
            let current = self.answered.nodes[node];
            if !current.is_call {
                deadline_ns = current.time_ns;
                break;
            }
            candidates.push(current.entry);
            node = current.next;
        }
        // The pending unknown compare-and-swaps, as (expect, value): each may reset the state to
        // its value, but only from a state equal to its expect.
        let mut swaps: Vec<(StateId, StateId)> = Vec::new();
        let mut suffixes: Vec<&str> = Vec::new();
        let mut node = self.unknown.first();
        while node != NONE && self.unknown.nodes[node].time_ns <= deadline_ns {
            let Node { next, entry, .. } = self.unknown.nodes[node];
            if entry != just_linearized {
                match &self.compiled[entry].step {
                    Step::Cas { expect, value, .. } => swaps.push((*expect, *value)),
                    Step::Append { suffix, .. } => suffixes.push(suffix),
                    _ => {}
                }
            }
            node = next;
        }
        // The states the run may pass through start with one of these bases. A swap adds its
        // value when some base could grow into its expect; repeat until nothing changes.
        let model = &mut self.model;
        let mut bases = vec![state];
        let mut grew = true;
        while grew {
            grew = false;
            for &(expect, value) in &swaps {
                if bases.contains(&value) {
                    continue;
                }
                if bases
                    .iter()
                    .any(|&base| model.could_reach_by_appends(base, expect, &suffixes))
                {
                    bases.push(value);
                    grew = true;
                }
            }
        }
        candidates.iter().any(|&entry| {
            let step = &self.compiled[entry].step;
            // A longer run allows less; `run` is the least it can be when it ends.
            run.allows(step)
                && bases
                    .iter()
                    .any(|&base| model.could_accept_after_appends(base, step, &suffixes))
        })
    }

    /// Sets or clears an entry's bit in the set it belongs to.
    fn set_bit(
        &self,
        answered_set: &mut BitSet,
        unknown_set: &mut BitSet,
        entry: usize,
        value: bool,
    ) {
        match self.compiled[entry].place {
            Place::Answered { bit, .. } => answered_set.set(bit, value),
            Place::Unknown { bit, .. } => unknown_set.set(bit, value),
        }
    }
}

/// The last word of a cache key: the state, and the run of unknown entries the configuration is
/// in (which restricts what may follow, so it is part of the configuration).
fn state_word(state: StateId, run: Run) -> u64 {
    u64::from(state) | ((run as u64) << 32)
}

/// Lowe's cache of configurations that failed, in two parts; every failed configuration is in
/// one or the other, or ruled out by a subset in the second, so no failure is forgotten.
///
/// - `dominating`: for each `(A, s)`, a few unknown sets `U` that failed, the smallest ones, since
///   a failed `(A, U', s)` also rules out every `(A, U, s)` with `U ⊇ U'` (see the module
///   comment). Only [`UNKNOWN_SETS_PER_KEY_MAX`] are kept, so that a check stays cheap.
/// - `exact`: the failed configurations for which there was no room there, exactly, keyed by the
///   linearized answered set, the state word and the linearized unknown set (each set encoded
///   without its leading full and trailing empty words, see [`BitSet::encode_into`]).
#[derive(Default)]
struct FailureCache {
    exact: HashSet<Box<[u64]>, FastBuildHasher>,
    dominating: HashMap<Box<[u64]>, UnknownSets, FastBuildHasher>,
    /// What the two parts hold, estimated (see [`CACHE_ENTRY_OVERHEAD_BYTES`]).
    bytes: u64,
}

impl FailureCache {
    /// Builds the exact key in `key`, and returns where its `(A, s)` part ends: the key is the
    /// answered set's encoding, the state word, then the unknown set's encoding.
    fn encode(
        key: &mut Vec<u64>,
        answered_set: &BitSet,
        unknown_set: &BitSet,
        state_word: u64,
    ) -> usize {
        key.clear();
        answered_set.encode_into(key);
        key.push(state_word);
        let answered_and_state = key.len();
        unknown_set.encode_into(key);
        answered_and_state
    }

    /// Whether the configuration of `key` (from [`FailureCache::encode`], which returned
    /// `answered_and_state`) is known to fail: recorded with the same or a smaller unknown set.
    fn has_failed(&self, key: &[u64], answered_and_state: usize, unknown_set: &BitSet) -> bool {
        self.dominating
            .get(&key[..answered_and_state])
            .is_some_and(|sets| sets.dominates(unknown_set.used()))
            // Most searches never fill the few sets of an `(A, s)`, so skip the hashing then.
            || (!self.exact.is_empty() && self.exact.contains(key))
    }

    /// Records that this configuration failed: among the few unknown sets of its `(A, s)` when
    /// there is room, else in the exact part (a set kept among the few needs no exact copy,
    /// since it leaves them only for a subset that still rules it out).
    fn record(&mut self, answered_set: &BitSet, unknown_set: &BitSet, state_word: u64) {
        let mut key = Vec::new();
        let answered_and_state =
            FailureCache::encode(&mut key, answered_set, unknown_set, state_word);
        let unknown = unknown_set.used();
        let unknown_bytes = unknown.len() as u64 * 8;
        let kept_among_few = match self.dominating.get_mut(&key[..answered_and_state]) {
            Some(sets) => {
                let (kept, added) = sets.record(unknown);
                let set_bytes = (unknown_bytes + SET_OVERHEAD_BYTES) as i64;
                self.bytes = self.bytes.saturating_add_signed(added as i64 * set_bytes);
                kept
            }
            None => {
                self.bytes +=
                    answered_and_state as u64 * 8 + unknown_bytes + CACHE_ENTRY_OVERHEAD_BYTES;
                self.dominating.insert(
                    key[..answered_and_state].into(),
                    UnknownSets::One(unknown.into()),
                );
                true
            }
        };
        if !kept_among_few {
            self.bytes += key.len() as u64 * 8 + CACHE_ENTRY_OVERHEAD_BYTES;
            // A configuration fails at most once: once recorded, no path enters it again.
            let inserted = self.exact.insert(key.into_boxed_slice());
            debug_assert!(inserted, "invariant: a configuration fails once");
        }
    }
}

/// Searches for a linearization of `entries`, which must all touch one key, in at most
/// `steps_max` steps. With `trace`, also records the longest linearized prefix (which costs a copy
/// of the stack each time it grows, so only explanations ask for it).
pub(crate) fn search(entries: &[&Entry], steps_max: u64, trace: bool) -> SearchOutcome {
    if let Some(first) = entries.first() {
        let key = first.key();
        assert!(
            entries.iter().all(|entry| entry.key() == key),
            "precondition: the entries of one search touch one key ({key:?})"
        );
    }
    let outcome = Search::new(entries).run(steps_max, trace);
    assert!(outcome.steps <= steps_max);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::SplitMix64;

    fn encoding(set: &BitSet) -> Vec<u64> {
        let mut key = Vec::new();
        set.encode_into(&mut key);
        key
    }

    /// The encoding depends on the set alone, not on how it was reached, tells different sets
    /// apart, and drops the leading full and trailing empty words.
    #[test]
    fn bitset_encoding_is_canonical_and_trimmed() {
        let bits = 300;
        let mut random = SplitMix64::new(11);
        let mut set = BitSet::new(bits);
        let mut model = vec![false; bits];
        let mut seen: HashMap<Vec<u64>, Vec<bool>> = HashMap::new();
        for _ in 0..20_000 {
            // Mostly fill from the front, as a search does, so that full words occur.
            let bit = if random.below(2) == 0 {
                random.below(bits as u64) as usize
            } else {
                model.iter().position(|&set| !set).unwrap_or(0)
            };
            model[bit] = !model[bit];
            set.set(bit, model[bit]);
            let key = encoding(&set);
            let full_words = (key[0] & 0xffff_ffff) as usize;
            let middle_words = (key[0] >> 32) as usize;
            assert_eq!(key.len(), 1 + middle_words);
            assert!(model[..full_words * 64].iter().all(|&set| set));
            assert!(model[((full_words + middle_words) * 64).min(bits)..]
                .iter()
                .all(|&set| !set));
            assert!(key[1..].first().is_none_or(|&word| word != u64::MAX));
            assert!(key[1..].last().is_none_or(|&word| word != 0));
            let previous = seen.insert(key, model.clone());
            assert!(previous.is_none_or(|previous| previous == model));
        }
        assert!(
            seen.keys().any(|key| key[0] & 0xffff_ffff > 0),
            "full words occurred"
        );
    }

    #[test]
    fn subsets_need_no_trailing_words() {
        assert!(is_subset(&[0b01], &[0b11, 0b1]));
        assert!(!is_subset(&[0b01, 0b1], &[0b11]));
        assert!(!is_subset(&[0b100], &[0b11]));
        assert!(is_subset(&[], &[]));
    }
}
