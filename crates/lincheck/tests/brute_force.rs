//! The search against a brute force that tries every order: small one-key histories, many of
//! whose entries have unknown outcomes and do the same thing (the same put, delete or swap), so
//! that the search's cuts (the exact failure cache, identical unknown entries used in invocation
//! order, the canonical runs of unknown entries) are all exercised, must get the verdict that
//! trying every order gives.
//!
//! Every case prints its seed. `LINCHECK_SEED=<n>` starts from seed n, and `LINCHECK_SEEDS=<n>`
//! runs n seeds (default 3,000), e.g. `LINCHECK_SEEDS=100000 cargo test -p lincheck --test
//! brute_force`.

mod common;
use common::environment_number;
use lincheck::simulate::SplitMix64;
use lincheck::{check, CheckOptions, Entry, History, Operation, Outcome, Output, Verdict};

const SEEDS_DEFAULT: u64 = 3_000;

/// A sequential map of one key, written out again here so the test does not lean on the
/// checker's own model: the next state and the output.
fn apply(state: &Option<String>, operation: &Operation) -> (Option<String>, Output) {
    match operation {
        Operation::Get { .. } => (
            state.clone(),
            Output::Get {
                value: state.clone(),
            },
        ),
        Operation::Put { value, .. } => (Some(value.clone()), Output::Put),
        Operation::Delete { .. } => (
            None,
            Output::Delete {
                existed: state.is_some(),
            },
        ),
        Operation::Append { suffix, .. } => {
            let next = format!("{}{suffix}", state.as_deref().unwrap_or(""));
            let length = Some(next.len() as u64);
            (Some(next), Output::Append { length })
        }
        Operation::Cas { expect, value, .. } => {
            if state == expect {
                let output = Output::Cas {
                    swapped: true,
                    current: None,
                };
                (Some(value.clone()), output)
            } else {
                let output = Output::Cas {
                    swapped: false,
                    current: state.clone(),
                };
                (state.clone(), output)
            }
        }
    }
}

/// Whether the store could have answered `reported` where the sequential map answers `expected`.
fn allowed(reported: &Output, expected: &Output) -> bool {
    match (reported, expected) {
        (Output::Append { length: None }, Output::Append { .. }) => true,
        (Output::Cas { swapped: true, .. }, Output::Cas { swapped: true, .. }) => true,
        _ => reported == expected,
    }
}

/// Tries every order: an entry may go next when every answered entry that completed before its
/// invocation has gone; an unknown entry may also never go. Linearizable when some order takes
/// every answered entry.
fn brute_force(entries: &[Entry], done: &mut Vec<bool>, state: &Option<String>) -> bool {
    let answered_left = entries
        .iter()
        .zip(done.iter())
        .any(|(entry, &done)| !done && entry.outcome.is_ok());
    if !answered_left {
        return true;
    }
    for next in 0..entries.len() {
        if done[next] {
            continue;
        }
        let candidate = &entries[next];
        let must_wait = entries.iter().zip(done.iter()).any(|(other, &done)| {
            !done && other.outcome.is_ok() && other.complete_ns < candidate.invoke_ns
        });
        if must_wait {
            continue;
        }
        let (next_state, expected) = apply(state, &candidate.operation);
        if let Outcome::Ok { output } = &candidate.outcome {
            if !allowed(output, &expected) {
                continue;
            }
        }
        done[next] = true;
        let found = brute_force(entries, done, &next_state);
        done[next] = false;
        if found {
            return true;
        }
    }
    false
}

/// Few values, so that entries repeat each other.
fn random_value(random: &mut SplitMix64) -> String {
    ["a", "b"][random.below(2) as usize].to_owned()
}

fn random_operation(random: &mut SplitMix64) -> Operation {
    let key = "k".to_owned();
    match random.below(10) {
        0 | 1 => Operation::Get { key },
        2 | 3 => Operation::Put {
            key,
            value: random_value(random),
        },
        4..=6 => Operation::Delete { key },
        7 => Operation::Append {
            key,
            suffix: random_value(random),
        },
        _ => Operation::Cas {
            key,
            expect: (random.below(3) != 0).then(|| random_value(random)),
            value: random_value(random),
        },
    }
}

/// A history of 3 to 9 entries: effects in a random order on a correct store, each entry's
/// window around its effect, some outcomes unknown (half of those never took effect), and
/// half the time one answered output replaced by another of the same kind, which may or may
/// not break linearizability.
fn random_history(seed: u64) -> History {
    let mut random = SplitMix64::new(seed);
    let count = 3 + random.below(7) as usize;
    let mut state: Option<String> = None;
    let mut entries = Vec::with_capacity(count);
    for position in 0..count as u64 {
        let operation = random_operation(&mut random);
        let effect_ns = 100 * (position + 1);
        let invoke_ns = effect_ns - random.below(250).min(effect_ns);
        let complete_ns = effect_ns + random.below(250);
        let unknown = random.below(100) < 45;
        let takes_effect = !unknown || random.below(2) == 0;
        let (next, output) = apply(&state, &operation);
        if takes_effect {
            state = next;
        }
        let outcome = if unknown {
            Outcome::Unknown {
                reason: "timed out".to_owned(),
            }
        } else {
            Outcome::Ok { output }
        };
        entries.push(Entry {
            id: position,
            client: position,
            operation,
            invoke_ns,
            complete_ns,
            outcome,
        });
    }
    if random.below(2) == 0 {
        let answered: Vec<usize> = (0..count)
            .filter(|&index| entries[index].outcome.is_ok())
            .collect();
        if !answered.is_empty() {
            let index = answered[random.below(answered.len() as u64) as usize];
            let mutated = match &entries[index].operation {
                Operation::Get { .. } => Output::Get {
                    value: (random.below(3) != 0).then(|| random_value(&mut random)),
                },
                Operation::Put { .. } => Output::Put,
                Operation::Delete { .. } => Output::Delete {
                    existed: random.below(2) == 0,
                },
                Operation::Append { .. } => Output::Append {
                    length: Some(random.below(5)),
                },
                Operation::Cas { .. } => Output::Cas {
                    swapped: random.below(2) == 0,
                    current: (random.below(3) != 0).then(|| random_value(&mut random)),
                },
            };
            entries[index].outcome = Outcome::Ok { output: mutated };
        }
    }
    History { entries }
}

#[test]
fn search_agrees_with_trying_every_order() {
    let first = environment_number("LINCHECK_SEED").unwrap_or(1);
    let count = environment_number("LINCHECK_SEEDS").unwrap_or(SEEDS_DEFAULT);
    println!(
        "seeds {first}..{} (LINCHECK_SEED, LINCHECK_SEEDS)",
        first + count
    );
    let (mut linearizable, mut not_linearizable) = (0u64, 0u64);
    for seed in first..first + count {
        let history = random_history(seed);
        let expected = brute_force(&history.entries, &mut vec![false; history.len()], &None);
        let report = check(&history, &CheckOptions::default());
        let verdict_matches = match &report.verdict {
            Verdict::Linearizable => expected,
            Verdict::NotLinearizable(_) => !expected,
            Verdict::Unknown { .. } => false,
        };
        assert!(
            verdict_matches,
            "seed {seed} (LINCHECK_SEED={seed} LINCHECK_SEEDS=1): every order says linearizable = \
             {expected}, the checker says {:?}\n{history:#?}",
            report.verdict
        );
        if expected {
            linearizable += 1;
        } else {
            not_linearizable += 1;
        }
    }
    println!("{linearizable} linearizable, {not_linearizable} not");
    // Both answers must be common, or the comparison says little.
    if count >= 1_000 {
        assert!(linearizable * 10 > count && not_linearizable * 10 > count);
    }
}
