//! A state machine of our own — a bank whose accounts only ever pass money between them — run
//! by every peer of a simulated cluster under crashes, partitions and lossy links, with one
//! call. The simulator checks that every replica reaches the same state at every index, that a
//! snapshot restores the state it was taken from, and that `apply` is deterministic; the bank
//! checks its own rule (the total never changes) in `apply`.
//!
//! Run it: `cargo run -p raft-examples --bin simulate`. A failure names its seed; run again
//! with `RAFT_SIM_SEED=<seed>` to replay exactly that run (`RAFT_SIM_SEEDS=<n>` runs more).

use raft_node::{Bytes, Index};
use raft_sim::rand::Rng;
use raft_sim::{check_state_machine, CheckOptions, SimRng, StateMachine};

const ACCOUNTS: usize = 8;
const OPENING_BALANCE: u64 = 1_000;

/// Balances by account number. A command is a transfer: from, to, and an amount (8 bytes,
/// little endian); one the payer cannot cover is refused, as a bank would.
struct Bank {
    balances: [u64; ACCOUNTS],
}

impl Default for Bank {
    fn default() -> Bank {
        Bank {
            balances: [OPENING_BALANCE; ACCOUNTS],
        }
    }
}

impl StateMachine for Bank {
    fn apply(&mut self, _index: Index, command: &[u8]) {
        let [from, to, amount @ ..] = command else {
            panic!("a transfer of {} bytes", command.len());
        };
        let amount = u64::from_le_bytes(amount.try_into().expect("an 8-byte amount"));
        let (from, to) = (usize::from(*from), usize::from(*to));
        if self.balances[from] >= amount {
            self.balances[from] -= amount;
            self.balances[to] += amount;
        }
        let total: u64 = self.balances.iter().sum();
        assert_eq!(
            total,
            OPENING_BALANCE * ACCOUNTS as u64,
            "money appeared or vanished"
        );
    }

    fn snapshot(&self) -> Bytes {
        self.balances
            .iter()
            .flat_map(|balance| balance.to_le_bytes())
            .collect()
    }

    fn restore(&mut self, _index: Index, snapshot: &[u8]) -> Result<(), String> {
        if snapshot.len() != ACCOUNTS * 8 {
            return Err(format!("a snapshot of {} bytes", snapshot.len()));
        }
        for (balance, bytes) in self.balances.iter_mut().zip(snapshot.chunks(8)) {
            *balance = u64::from_le_bytes(bytes.try_into().expect("chunks of 8"));
        }
        Ok(())
    }

    // `fingerprint` is left to its default, a hash of `snapshot`: the encoding is canonical.

    fn random_command(rng: &mut SimRng) -> Bytes {
        let mut transfer = vec![
            rng.gen_range(0..ACCOUNTS as u8),
            rng.gen_range(0..ACCOUNTS as u8),
        ];
        transfer.extend_from_slice(&rng.gen_range(0..=500u64).to_le_bytes());
        Bytes::from(transfer)
    }
}

fn main() {
    println!("simulating a bank of {ACCOUNTS} accounts on clusters of 3, 5 or 7 peers");
    // Each seed: 5 virtual seconds of faults and requests, then every fault healed and a
    // command that every peer must apply.
    let options = CheckOptions::new("simulate").with_seeds(100);
    // Panics with the seed, the broken check and the last events if anything goes wrong.
    let report = check_state_machine::<Bank>(&options);
    println!("{report}");
    println!(
        "every replica agreed with the reference replica at every index, and the bank held \
         {} throughout",
        OPENING_BALANCE * ACCOUNTS as u64
    );
}
