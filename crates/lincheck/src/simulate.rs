//! A deterministic simulator of clients on a correct store, for testing checkers and measuring
//! their speed: the histories it makes are linearizable by construction.
//!
//! ```text
//!   plan:   each client, one operation at a time: invoke ── effect ── complete
//!           (a failed operation has no effect; an unknown one may take effect, even after
//!           the client gave up)
//!   apply:  every planned operation in effect-time order on one sequential map,
//!           which decides each answer
//! ```
//!
//! One seed fixes everything, so a failing history can be rebuilt from the seed alone.

use std::collections::BTreeMap;

use crate::history::{Entry, History, Operation, Outcome, Output};
use crate::model::apply;

/// The SplitMix64 generator (Steele, Lea & Flood, 2014): tiny, fast, and good enough to drive a
/// simulation. Not for anything that needs unpredictability.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose every output follows from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound`, nearly uniform (the bias is below 2^-32 for bounds under 2^32).
    ///
    /// # Panics
    /// When `bound` is zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "precondition: a non-empty range");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// The relative weights of the operation kinds a simulated client picks from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationMix {
    /// Weight of gets.
    pub get: u32,
    /// Weight of puts.
    pub put: u32,
    /// Weight of deletes.
    pub delete: u32,
    /// Weight of appends.
    pub append: u32,
    /// Weight of compare-and-swaps.
    pub cas: u32,
}

impl Default for OperationMix {
    /// Reads a third of the time, the rest spread over the writes.
    fn default() -> OperationMix {
        OperationMix {
            get: 35,
            put: 20,
            delete: 10,
            append: 20,
            cas: 15,
        }
    }
}

/// What to simulate. Every choice follows from `seed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationOptions {
    /// The seed of every random choice.
    pub seed: u64,
    /// How many operations in all.
    pub operations: usize,
    /// How many keys (`k0`, `k1`, ...) the operations spread over.
    pub keys: usize,
    /// How many clients run concurrently, each one operation at a time.
    pub clients: usize,
    /// How often each kind of operation is picked.
    pub mix: OperationMix,
    /// Percent of operations whose outcome is unknown; half of them take effect.
    pub unknown_percent: u32,
    /// Percent of operations that fail without effect.
    pub failed_percent: u32,
    /// A client waits up to this long between operations.
    pub think_ns_max: u64,
    /// An operation takes up to this long from invocation to completion.
    pub latency_ns_max: u64,
}

impl Default for SimulationOptions {
    /// 1,000 operations of 5 clients over 4 keys, a few unknown and failed.
    fn default() -> SimulationOptions {
        SimulationOptions {
            seed: 0,
            operations: 1_000,
            keys: 4,
            clients: 5,
            mix: OperationMix::default(),
            unknown_percent: 3,
            failed_percent: 3,
            think_ns_max: 200_000,
            latency_ns_max: 2_000_000,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Put,
    Delete,
    Append,
    Cas,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Unknown,
    Failed,
}

/// An operation planned in time, before the store decides its answer.
struct Planned {
    client: u64,
    key: usize,
    kind: Kind,
    invoke_ns: u64,
    complete_ns: u64,
    /// When it takes effect; `None` when it never does.
    effect_ns: Option<u64>,
    class: Class,
}

fn pick_kind(random: &mut SplitMix64, mix: &OperationMix) -> Kind {
    let weights = [
        (Kind::Get, mix.get),
        (Kind::Put, mix.put),
        (Kind::Delete, mix.delete),
        (Kind::Append, mix.append),
        (Kind::Cas, mix.cas),
    ];
    let total: u64 = weights.iter().map(|&(_, weight)| u64::from(weight)).sum();
    assert!(total > 0, "precondition: some operation kind has weight");
    let mut roll = random.below(total);
    for (kind, weight) in weights {
        if roll < u64::from(weight) {
            return kind;
        }
        roll -= u64::from(weight);
    }
    unreachable!("the roll is below the total weight")
}

/// Simulates `options.clients` clients running `options.operations` operations on a correct
/// sequential store. Entries come out in id order (ids `0..operations`). Put values (`v<id>`),
/// append suffixes (`+<id>;`) and swap values (`c<id>`) are unique, so a mutated history can be
/// made provably wrong.
pub fn simulate(options: &SimulationOptions) -> History {
    assert!(options.keys > 0, "precondition: at least one key");
    assert!(options.clients > 0, "precondition: at least one client");
    assert!(options.unknown_percent + options.failed_percent <= 100);
    let mut random = SplitMix64::new(options.seed);
    let latency_ns_max = options.latency_ns_max.max(1);

    let mut free_ns = vec![0u64; options.clients];
    let mut planned = Vec::with_capacity(options.operations);
    for _ in 0..options.operations {
        // The client free soonest goes next, so clients interleave as they would in real time.
        let (client, &free) = free_ns
            .iter()
            .enumerate()
            .min_by_key(|&(client, &free)| (free, client))
            .expect("at least one client");
        let invoke_ns = free + random.below(options.think_ns_max + 1);
        let latency_ns = 1 + random.below(latency_ns_max);
        let complete_ns = invoke_ns + latency_ns;
        let roll = random.below(100);
        let class = if roll < u64::from(options.failed_percent) {
            Class::Failed
        } else if roll < u64::from(options.failed_percent + options.unknown_percent) {
            Class::Unknown
        } else {
            Class::Ok
        };
        let effect_ns = match class {
            Class::Ok => Some(invoke_ns + random.below(latency_ns + 1)),
            // A timed-out request may still be applied long after the client gave up.
            Class::Unknown => random
                .percent(50)
                .then(|| invoke_ns + random.below(3 * latency_ns + 1)),
            Class::Failed => None,
        };
        planned.push(Planned {
            client: client as u64,
            key: random.below(options.keys as u64) as usize,
            kind: pick_kind(&mut random, &options.mix),
            invoke_ns,
            complete_ns,
            effect_ns,
            class,
        });
        free_ns[client] = complete_ns;
    }

    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&id| (planned[id].effect_ns.unwrap_or(u64::MAX), id));
    let mut store: BTreeMap<usize, String> = BTreeMap::new();
    let mut entries: Vec<Option<Entry>> = vec![None; planned.len()];
    for id in order {
        let plan = &planned[id];
        let state = store.get(&plan.key).cloned();
        let operation = make_operation(plan, id, state.as_deref(), &mut random);
        let outcome = match plan.effect_ns {
            Some(_) => {
                let (next, output) = apply(state.as_deref(), &operation);
                match next {
                    Some(value) => store.insert(plan.key, value),
                    None => store.remove(&plan.key),
                };
                match plan.class {
                    Class::Ok => Outcome::Ok { output },
                    _ => Outcome::Unknown {
                        reason: "simulated timeout".to_owned(),
                    },
                }
            }
            None if plan.class == Class::Failed => Outcome::Failed {
                reason: "simulated rejection".to_owned(),
            },
            None => Outcome::Unknown {
                reason: "simulated timeout".to_owned(),
            },
        };
        entries[id] = Some(Entry {
            id: id as u64,
            client: plan.client,
            operation,
            invoke_ns: plan.invoke_ns,
            complete_ns: plan.complete_ns,
            outcome,
        });
    }
    History {
        entries: entries
            .into_iter()
            .map(|entry| entry.expect("every id applied"))
            .collect(),
    }
}

/// The shape of [`unknown_deletes_history`]'s final read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalRead {
    /// The first put is concurrent with everything, so it may take effect last and the final
    /// read of its value is linearizable.
    Linearizable,
    /// The first put completes before any other entry is invoked, so its value is overwritten
    /// long before the final read returns it: not linearizable.
    Overwritten,
}

/// A one-key history that is hard for a search that forgets failures or tells interchangeable
/// unknown entries apart: `unknown_deletes` deletes whose outcome is unknown, all invoked at the
/// start and concurrent with everything, then one client that alternates `put(v<i>)` with a get
/// that finds the key absent (each such get needs a delete of its own after the put),
/// `unknown_deletes` times, and finally reads `v0`, the value of a put made at the start (see
/// [`FinalRead`]). `3 * unknown_deletes + 2` entries on key `k`.
///
/// With `n` deletes, the search meets the `i`-th get after any `i - 1` of them: a search that
/// forgets failures walks the orders (about `n!`), one that remembers them exactly still meets
/// `2^n` sets of used deletes, and one that uses identical unknown entries in invocation order
/// meets `n + 1`.
pub fn unknown_deletes_history(unknown_deletes: usize, final_read: FinalRead) -> History {
    let key = "k".to_owned();
    let pairs = unknown_deletes as u64;
    // The writer's operations take 1,000 ns slots from 1,000 ns on; the final read is last.
    let final_read_ns = 1_000 * (pairs + 1);
    let end_ns = final_read_ns + 1_000;
    let mut entries = Vec::with_capacity(3 * unknown_deletes + 2);
    let mut push =
        |client: u64, operation: Operation, invoke_ns: u64, complete_ns: u64, outcome| {
            entries.push(Entry {
                id: entries.len() as u64,
                client,
                operation,
                invoke_ns,
                complete_ns,
                outcome,
            });
        };
    let first_put_complete_ns = match final_read {
        FinalRead::Linearizable => end_ns,
        FinalRead::Overwritten => 5,
    };
    push(
        0,
        Operation::Put {
            key: key.clone(),
            value: "v0".to_owned(),
        },
        0,
        first_put_complete_ns,
        Outcome::Ok {
            output: Output::Put,
        },
    );
    for delete in 0..pairs {
        push(
            2 + delete,
            Operation::Delete { key: key.clone() },
            10 + delete,
            end_ns,
            Outcome::Unknown {
                reason: "timed out".to_owned(),
            },
        );
    }
    for pair in 1..=pairs {
        let start_ns = 1_000 * pair;
        push(
            1,
            Operation::Put {
                key: key.clone(),
                value: format!("v{pair}"),
            },
            start_ns,
            start_ns + 100,
            Outcome::Ok {
                output: Output::Put,
            },
        );
        push(
            1,
            Operation::Get { key: key.clone() },
            start_ns + 200,
            start_ns + 300,
            Outcome::Ok {
                output: Output::Get { value: None },
            },
        );
    }
    push(
        1,
        Operation::Get { key },
        final_read_ns,
        final_read_ns + 100,
        Outcome::Ok {
            output: Output::Get {
                value: Some("v0".to_owned()),
            },
        },
    );
    History { entries }
}

/// The operation of a plan. A compare-and-swap expects the current value most of the time, so
/// that swaps actually happen; the simulation may peek since it plays the client too.
fn make_operation(
    plan: &Planned,
    id: usize,
    state: Option<&str>,
    random: &mut SplitMix64,
) -> Operation {
    let key = format!("k{}", plan.key);
    match plan.kind {
        Kind::Get => Operation::Get { key },
        Kind::Put => Operation::Put {
            key,
            value: format!("v{id}"),
        },
        Kind::Delete => Operation::Delete { key },
        Kind::Append => Operation::Append {
            key,
            suffix: format!("+{id};"),
        },
        Kind::Cas => {
            let expect = match random.below(10) {
                0..=5 => state.map(str::to_owned),
                6..=7 => None,
                _ => Some(format!("v{}", random.below(id as u64 + 1))),
            };
            Operation::Cas {
                key,
                expect,
                value: format!("c{id}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_history() {
        let options = SimulationOptions {
            seed: 42,
            operations: 300,
            ..SimulationOptions::default()
        };
        assert_eq!(simulate(&options), simulate(&options));
        let other = SimulationOptions {
            seed: 43,
            ..options.clone()
        };
        assert_ne!(simulate(&options), simulate(&other));
    }

    #[test]
    fn clients_issue_one_operation_at_a_time() {
        let options = SimulationOptions {
            seed: 5,
            operations: 500,
            ..SimulationOptions::default()
        };
        let history = simulate(&options);
        assert_eq!(history.len(), 500);
        history
            .validate()
            .expect("a simulated history is well formed");
        let mut last_complete_ns: BTreeMap<u64, u64> = BTreeMap::new();
        let mut by_invoke: Vec<&Entry> = history.entries.iter().collect();
        by_invoke.sort_by_key(|entry| (entry.invoke_ns, entry.id));
        for entry in by_invoke {
            let previous = last_complete_ns.insert(entry.client, entry.complete_ns);
            assert!(previous.is_none_or(|complete_ns| complete_ns <= entry.invoke_ns));
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut random = SplitMix64::new(1);
        for bound in 1..200 {
            assert!(random.below(bound) < bound);
        }
    }
}
