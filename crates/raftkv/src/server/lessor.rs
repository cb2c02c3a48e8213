//! The lessor: the leader's deadlines of leases, and the lease clock they are measured on.
//! Clock-free like the store: every call takes the monotonic `now` it happens at, so the rules
//! below are tested without a cluster or a real clock; `leases` drives it.
//!
//! ```text
//!  Noop of term T applied while leading in T ─► promote: deadline = P + (remaining or TTL) + ET
//!  grant applied ─► deadline = now + TTL           revoke applied ─► dropped
//!  keepalive(ids) ─► deadline = max(deadline, now + TTL); "clear the checkpoint first" list
//!  scan (every 100 ms) ─► expired: deadline ≤ now ─► revoking (keepalives answer 0) ─► revoke
//!                     ─► every checkpoint interval: remaining of each lease used up by 1 s+
//!  leadership lost (term or role changed) ─► demote: every deadline dropped
//! ```
//!
//! Lease time only runs slower than real time, never faster: the [`LeaseClock`] credits at
//! most [`STEP_MAX`] per observation, so a forward jump of the clock, a paused process or a
//! starved thread cannot expire a lease early, and a backward step credits nothing. A lease can
//! therefore expire late (by the stall), never early. Deadlines live only on the promoted
//! leader; a new leader starts them afresh from the store's TTLs and checkpoints, one
//! election timeout later than they could have ended under the previous leader (see
//! `docs/leases.md` for the proof sketch).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the promoted leader looks for expired leases.
pub(super) const SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// Most lease time credited by one observation of the clock: two scan intervals. The leader
/// observes the clock at least every scan interval, so a longer gap is a stall or a jump of
/// the clock, which must not count as lease time.
pub(super) const STEP_MAX: Duration = Duration::from_millis(200);

/// Most revokes by expiry in flight at once; the rest are proposed by later scans.
pub(super) const REVOKES_IN_FLIGHT_MAX: usize = 1000;

/// Most checkpoints in one log entry.
pub(super) const CHECKPOINTS_PER_ENTRY_MAX: usize = 1000;

/// A lease is checkpointed once this much of its TTL is used up (shorter use changes little
/// for a new leader, which adds an election timeout anyway).
const CHECKPOINT_USED_MIN: Duration = Duration::from_secs(1);

/// Time as the lessor counts it: the monotonic clock's progress, credited in steps of at
/// most [`STEP_MAX`] and never backwards. Lease time is a [`Duration`] since the clock began.
#[derive(Clone, Debug)]
pub(super) struct LeaseClock {
    step_max: Duration,
    last_seen: Option<Instant>,
    elapsed: Duration,
}

impl LeaseClock {
    /// A clock crediting at most `step_max` per observation.
    pub(super) fn new(step_max: Duration) -> LeaseClock {
        LeaseClock {
            step_max,
            last_seen: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Lease time at `now`: advanced by the monotonic time since the previous observation,
    /// at most `step_max`; by nothing when `now` is earlier (a clock stepped back).
    pub(super) fn observe(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last_seen {
            self.elapsed += now.saturating_duration_since(last).min(self.step_max);
        }
        // A clock stepped back is followed from where it is now: real time passing after the
        // step is credited again, and the step itself never was.
        self.last_seen = Some(now);
        self.elapsed
    }
}

/// Where a lease the promoted leader holds stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Kept alive until its deadline.
    Live,
    /// Past its deadline: a revoke is proposed (or will be, if `proposed` is false); keepalives
    /// answer 0 for it.
    Revoking {
        /// Whether a revoke proposal is in flight.
        proposed: bool,
    },
}

/// One lease on the promoted leader.
#[derive(Clone, Debug)]
struct Held {
    ttl: Duration,
    /// Lease time at which it expires unless kept alive.
    deadline: Duration,
    standing: Standing,
    /// The store holds a checkpointed remaining TTL of it (a new leader would use that).
    checkpoint_stored: bool,
    /// Checkpoints with a remaining TTL proposed and not yet applied.
    checkpoints_in_flight: u32,
}

impl Held {
    /// Whether a keepalive must clear a checkpoint through the log before it is answered: a
    /// short checkpoint in the store or on its way there must not outlive the keepalive.
    fn checkpointed(&self) -> bool {
        self.checkpoint_stored || self.checkpoints_in_flight > 0
    }
}

/// A lease as the store records it, for a promotion: id, granted TTL in seconds, and the
/// checkpointed remaining TTL in milliseconds, if any.
pub(super) type StoredLease = (u64, u64, Option<u64>);

/// What a keepalive must do and answer, from [`Lessor::keep_alive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeepAlivePlan {
    /// The term the lessor was promoted in when the keepalive was received: the answer may be
    /// given only if the node still leads, promoted, in it after confirming with a quorum.
    pub term: u64,
    /// Each id asked, in order, with the TTL in seconds it was renewed for (0: missing or
    /// being revoked).
    pub answers: Vec<(u64, u64)>,
    /// Leases whose checkpoint must be cleared through the log before the answer.
    pub clear: Vec<u64>,
}

/// The deadlines of every lease while this node is the promoted leader; nothing otherwise.
#[derive(Debug)]
pub(super) struct Lessor {
    clock: LeaseClock,
    /// The longest election timeout: a new leader's grace for every lease.
    election_timeout: Duration,
    /// The term this node leads in and has applied its own no-op of; `None`: not promoted.
    promoted_term: Option<u64>,
    leases: HashMap<u64, Held>,
    /// Revoke proposals in flight.
    revokes_in_flight: usize,
    /// Lease time of the last checkpoint round (or of the promotion).
    last_checkpoint_round: Duration,
}

fn seconds_up(duration: Duration) -> u64 {
    let whole = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

fn milliseconds_up(duration: Duration) -> u64 {
    let nanos = duration.as_nanos();
    u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

impl Lessor {
    /// A lessor not promoted, measuring time on a clock of at most [`STEP_MAX`] per step;
    /// `election_timeout` is the longest an election timeout can be.
    pub(super) fn new(election_timeout: Duration) -> Lessor {
        Lessor::with_clock(election_timeout, LeaseClock::new(STEP_MAX))
    }

    fn with_clock(election_timeout: Duration, clock: LeaseClock) -> Lessor {
        Lessor {
            clock,
            election_timeout,
            promoted_term: None,
            leases: HashMap::new(),
            revokes_in_flight: 0,
            last_checkpoint_round: Duration::ZERO,
        }
    }

    /// The term this node is promoted in, if it is.
    pub(super) fn promoted_term(&self) -> Option<u64> {
        self.promoted_term
    }

    /// Leases this lessor holds deadlines of (0 unless promoted).
    #[cfg(test)]
    pub(super) fn leases_held(&self) -> usize {
        self.leases.len()
    }

    /// Advances the lease clock to `now` (the scan calls it every [`SCAN_INTERVAL`], so that
    /// real time keeps being credited between requests).
    pub(super) fn observe(&mut self, now: Instant) -> Duration {
        self.clock.observe(now)
    }

    /// Promotes the lessor in `term`: this node leads in it and has applied its own no-op, so
    /// every entry of earlier terms. Every lease in `stored` gets the deadline P + (its
    /// checkpointed remaining TTL, or its TTL) + an election timeout, P the lease time now.
    pub(super) fn promote(&mut self, term: u64, now: Instant, stored: &[StoredLease]) {
        let promoted_at = self.clock.observe(now);
        self.leases.clear();
        self.revokes_in_flight = 0;
        self.last_checkpoint_round = promoted_at;
        self.promoted_term = Some(term);
        for &(id, ttl_seconds, remaining_ms) in stored {
            let ttl = Duration::from_secs(ttl_seconds);
            let remaining = remaining_ms.map_or(ttl, Duration::from_millis);
            self.leases.insert(
                id,
                Held {
                    ttl,
                    deadline: promoted_at
                        .saturating_add(remaining)
                        .saturating_add(self.election_timeout),
                    standing: Standing::Live,
                    checkpoint_stored: remaining_ms.is_some(),
                    checkpoints_in_flight: 0,
                },
            );
        }
    }

    /// Leadership was lost (or was never there): nothing is decided here any more.
    pub(super) fn demote(&mut self) {
        self.promoted_term = None;
        self.leases.clear();
        self.revokes_in_flight = 0;
    }

    /// A grant of `id` was applied: it runs for its TTL from now.
    pub(super) fn granted(&mut self, id: u64, ttl_seconds: u64, now: Instant) {
        if self.promoted_term.is_none() {
            return;
        }
        let now = self.clock.observe(now);
        let ttl = Duration::from_secs(ttl_seconds);
        self.leases.insert(
            id,
            Held {
                ttl,
                deadline: now.saturating_add(ttl),
                standing: Standing::Live,
                checkpoint_stored: false,
                checkpoints_in_flight: 0,
            },
        );
    }

    /// A revoke of `id` (by a client or by expiry) was applied: the lease is gone.
    pub(super) fn revoked(&mut self, id: u64) {
        if let Some(held) = self.leases.remove(&id) {
            if held.standing == (Standing::Revoking { proposed: true }) {
                self.revokes_in_flight -= 1;
            }
        }
    }

    /// A revoke by expiry of `id` ended without being seen applied (refused, not committed,
    /// timed out): the lease stays revoking (it may still be applied, so keepalives keep
    /// answering 0), and a later scan proposes it again.
    pub(super) fn revoke_ended(&mut self, id: u64) {
        if let Some(held) = self.leases.get_mut(&id) {
            if held.standing == (Standing::Revoking { proposed: true }) {
                held.standing = Standing::Revoking { proposed: false };
                self.revokes_in_flight -= 1;
            }
        }
    }

    /// A checkpoint of `id` to `remaining_ms` (0: cleared) was applied.
    pub(super) fn checkpoint_applied(&mut self, id: u64, remaining_ms: u64) {
        if let Some(held) = self.leases.get_mut(&id) {
            if remaining_ms == 0 {
                held.checkpoint_stored = false;
            } else {
                held.checkpoints_in_flight = held.checkpoints_in_flight.saturating_sub(1);
                held.checkpoint_stored = true;
            }
        }
    }

    /// A checkpoint round's entry for `ids` ended without being seen applied: they are no
    /// longer on their way (if it is applied after all, [`Lessor::checkpoint_applied`] marks
    /// them stored then).
    pub(super) fn checkpoints_ended(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some(held) = self.leases.get_mut(id) {
                held.checkpoints_in_flight = held.checkpoints_in_flight.saturating_sub(1);
            }
        }
    }

    /// Renews each of `ids` for its TTL from `now`, the moment the keepalive was received.
    /// `None` when not promoted (the keepalive is refused as "not the leader yet").
    pub(super) fn keep_alive(&mut self, ids: &[u64], now: Instant) -> Option<KeepAlivePlan> {
        let term = self.promoted_term?;
        let now = self.clock.observe(now);
        let mut answers = Vec::with_capacity(ids.len());
        let mut clear = Vec::new();
        for &id in ids {
            let ttl_seconds = match self.leases.get_mut(&id) {
                Some(held) if held.standing == Standing::Live => {
                    held.deadline = held.deadline.max(now.saturating_add(held.ttl));
                    if held.checkpointed() {
                        clear.push(id);
                    }
                    held.ttl.as_secs()
                }
                _ => 0,
            };
            answers.push((id, ttl_seconds));
        }
        clear.sort_unstable();
        clear.dedup();
        Some(KeepAlivePlan {
            term,
            answers,
            clear,
        })
    }

    /// The seconds left of `id` before it expires unless renewed (rounded up; 0 when it is
    /// being revoked), or `None` when this lessor does not hold it.
    pub(super) fn time_to_live(&mut self, id: u64, now: Instant) -> Option<u64> {
        let now = self.clock.observe(now);
        let held = self.leases.get(&id)?;
        Some(match held.standing {
            Standing::Live => seconds_up(held.deadline.saturating_sub(now)),
            Standing::Revoking { .. } => 0,
        })
    }

    /// The leases past their deadline at `now`, to revoke: each is marked revoking and
    /// counted in flight, at most [`REVOKES_IN_FLIGHT_MAX`] at once (the rest wait for a
    /// later scan). Revokes that ended unseen are proposed again first.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<u64> {
        if self.promoted_term.is_none() {
            return Vec::new();
        }
        let now = self.clock.observe(now);
        let room = REVOKES_IN_FLIGHT_MAX.saturating_sub(self.revokes_in_flight);
        let mut due: Vec<(bool, Duration, u64)> = self
            .leases
            .iter()
            .filter_map(|(&id, held)| match held.standing {
                Standing::Revoking { proposed: false } => Some((false, held.deadline, id)),
                Standing::Live if held.deadline <= now => Some((true, held.deadline, id)),
                _ => None,
            })
            .collect();
        // Revokes to propose again first, then the longest expired.
        due.sort_unstable();
        due.truncate(room);
        for (_, _, id) in &due {
            if let Some(held) = self.leases.get_mut(id) {
                held.standing = Standing::Revoking { proposed: true };
            }
        }
        self.revokes_in_flight += due.len();
        due.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Every `interval` of lease time, the checkpoints to propose: the remaining TTL (in
    /// milliseconds, rounded up, at least 1) of each live lease that used more than a second
    /// of its TTL, in id order; each is marked in flight. Empty between rounds, when not
    /// promoted, or when `interval` is zero (checkpoints off).
    pub(super) fn checkpoints_due(&mut self, now: Instant, interval: Duration) -> Vec<(u64, u64)> {
        if self.promoted_term.is_none() || interval.is_zero() {
            return Vec::new();
        }
        let now = self.clock.observe(now);
        if now < self.last_checkpoint_round.saturating_add(interval) {
            return Vec::new();
        }
        self.last_checkpoint_round = now;
        let mut due: Vec<(u64, u64)> = self
            .leases
            .iter_mut()
            .filter(|(_, held)| held.standing == Standing::Live)
            .filter_map(|(&id, held)| {
                let remaining = held.deadline.saturating_sub(now);
                if remaining.saturating_add(CHECKPOINT_USED_MIN) >= held.ttl {
                    return None;
                }
                held.checkpoints_in_flight += 1;
                Some((id, milliseconds_up(remaining).max(1)))
            })
            .collect();
        due.sort_unstable();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ELECTION_TIMEOUT: Duration = Duration::from_millis(600);

    fn ms(milliseconds: u64) -> Duration {
        Duration::from_millis(milliseconds)
    }

    /// A lessor whose clock starts at `start`, promoted in term 3 with `stored`.
    fn promoted(start: Instant, stored: &[StoredLease]) -> Lessor {
        let mut lessor = Lessor::new(ELECTION_TIMEOUT);
        lessor.observe(start);
        lessor.promote(3, start, stored);
        lessor
    }

    /// Steps the lessor's clock from `from` to `to` the way the scan does (every 100 ms).
    fn scan_through(lessor: &mut Lessor, from: Instant, to: Instant) {
        let mut at = from;
        while at < to {
            at = (at + SCAN_INTERVAL).min(to);
            lessor.observe(at);
        }
    }

    #[test]
    fn the_clock_credits_real_steps_caps_a_jump_and_never_runs_backward() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(STEP_MAX);
        assert_eq!(clock.observe(start), Duration::ZERO);
        assert_eq!(clock.observe(start + ms(100)), ms(100));
        assert_eq!(clock.observe(start + ms(250)), ms(250));
        // A jump of an hour (or a process paused for one) counts as one capped step.
        let jumped = start + Duration::from_secs(3600);
        assert_eq!(clock.observe(jumped), ms(250) + STEP_MAX);
        // A step back credits nothing; time after it is credited again from there.
        let back = start + ms(300);
        assert_eq!(clock.observe(back), ms(450));
        assert_eq!(clock.observe(back + ms(100)), ms(550));
    }

    #[test]
    fn a_clock_jump_forward_never_expires_a_lease_early() {
        let start = Instant::now();
        let mut lessor = promoted(start, &[]);
        lessor.granted(7, 10, start);
        // The clock jumps a day ahead: one step of lease time, not a day.
        let jumped = start + Duration::from_secs(86_400);
        assert!(lessor.expired(jumped).is_empty());
        assert_eq!(lessor.time_to_live(7, jumped), Some(10));
        // Only ten seconds of scans after the jump expire it, and not one before.
        let mut at = jumped;
        let mut scans: u32 = 0;
        while lessor.expired(at).is_empty() {
            at += SCAN_INTERVAL;
            scans += 1;
            assert!(scans <= 100, "expired after ten seconds of scans");
        }
        // The jump credited STEP_MAX, so the lease lasted TTL − STEP_MAX of real scans after
        // it, and TTL of lease time in all.
        assert_eq!(u128::from(scans), (ms(10_000) - STEP_MAX).as_millis() / 100);
    }

    #[test]
    fn promotion_extends_each_lease_by_its_remaining_ttl_and_an_election_timeout() {
        let start = Instant::now();
        let mut lessor = promoted(start, &[(1, 10, None), (2, 60, Some(4_000))]);
        assert_eq!(lessor.promoted_term(), Some(3));
        assert_eq!(lessor.leases_held(), 2);
        // Lease 2 was checkpointed with 4 s left: it lasts 4 s + ET; lease 1 its TTL + ET.
        let before_two = start + ms(4_000) + ELECTION_TIMEOUT - ms(1);
        scan_through(&mut lessor, start, before_two);
        assert!(lessor.expired(before_two).is_empty());
        let two = before_two + ms(1);
        assert_eq!(lessor.expired(two), vec![2]);
        let before_one = start + ms(10_000) + ELECTION_TIMEOUT - ms(1);
        scan_through(&mut lessor, two, before_one);
        assert!(lessor.expired(before_one).is_empty());
        assert_eq!(lessor.expired(before_one + ms(1)), vec![1]);
    }

    #[test]
    fn nothing_is_decided_unless_promoted_and_demotion_drops_every_deadline() {
        let start = Instant::now();
        let mut lessor = Lessor::new(ELECTION_TIMEOUT);
        lessor.granted(1, 5, start);
        assert_eq!(lessor.keep_alive(&[1], start), None, "not promoted");
        assert!(lessor.expired(start + ms(100)).is_empty());
        assert_eq!(lessor.leases_held(), 0);
        lessor.promote(4, start, &[(1, 5, None)]);
        lessor.demote();
        assert_eq!(lessor.promoted_term(), None);
        assert_eq!(lessor.leases_held(), 0);
        assert_eq!(lessor.keep_alive(&[1], start), None);
        assert_eq!(lessor.time_to_live(1, start), None);
    }

    #[test]
    fn a_keepalive_renews_for_the_full_ttl_from_its_receipt_and_never_shortens() {
        let start = Instant::now();
        let mut lessor = promoted(start, &[]);
        lessor.granted(5, 10, start);
        let received = start + ms(3_000);
        scan_through(&mut lessor, start, received);
        let plan = lessor.keep_alive(&[5, 6], received).expect("promoted");
        assert_eq!(plan.term, 3);
        assert_eq!(plan.answers, vec![(5, 10), (6, 0)], "6 does not exist");
        assert!(plan.clear.is_empty(), "no checkpoint to clear");
        assert_eq!(lessor.time_to_live(5, received), Some(10));
        let before = received + ms(10_000) - ms(1);
        scan_through(&mut lessor, received, before);
        assert!(lessor.expired(before).is_empty());
        assert_eq!(lessor.expired(before + ms(1)), vec![5]);

        // A promoted lease's deadline (TTL + ET) is not cut short by a keepalive.
        let mut lessor = promoted(start, &[(9, 2, None)]);
        lessor.keep_alive(&[9], start).expect("promoted");
        assert_eq!(
            lessor.time_to_live(9, start),
            Some(3),
            "2 s + 0.6 s, rounded up"
        );
    }

    #[test]
    fn a_lease_being_revoked_answers_zero_and_a_revoke_in_flight_limit_holds() {
        let start = Instant::now();
        let mut lessor = promoted(start, &[]);
        for id in 1..=(REVOKES_IN_FLIGHT_MAX as u64 + 5) {
            lessor.granted(id, 2, start);
        }
        let late = start + ms(2_000);
        scan_through(&mut lessor, start, late);
        let first = lessor.expired(late);
        assert_eq!(first.len(), REVOKES_IN_FLIGHT_MAX);
        let revoking = first[0];
        let plan = lessor.keep_alive(&[revoking], late).expect("promoted");
        assert_eq!(plan.answers, vec![(revoking, 0)]);
        assert_eq!(lessor.time_to_live(revoking, late), Some(0));
        assert!(lessor.expired(late).is_empty(), "no room until some apply");
        for id in &first[..3] {
            lessor.revoked(*id);
        }
        assert_eq!(lessor.expired(late).len(), 3);
        // A revoke that ended unseen is proposed again, before any other.
        lessor.revoke_ended(first[10]);
        assert_eq!(lessor.expired(late), vec![first[10]]);
        assert_eq!(
            lessor.time_to_live(first[10], late),
            Some(0),
            "still revoking"
        );
    }

    #[test]
    fn checkpoints_carry_the_remaining_ttl_of_used_leases_and_keepalives_clear_them() {
        let start = Instant::now();
        let interval = Duration::from_secs(5);
        let mut lessor = promoted(start, &[(1, 60, Some(30_000))]);
        lessor.granted(2, 60, start);
        lessor.granted(3, 60, start);
        assert!(lessor.checkpoints_due(start, interval).is_empty());
        let round = start + interval;
        scan_through(&mut lessor, start, round - ms(100));
        lessor.keep_alive(&[3], round - ms(100)).expect("promoted");
        let due = lessor.checkpoints_due(round, interval);
        // Lease 1: 30 s + 0.6 s − 5 s left; lease 2: 55 s; lease 3 was just renewed.
        assert_eq!(due, vec![(1, 25_600), (2, 55_000)]);
        assert!(
            lessor.checkpoints_due(round, interval).is_empty(),
            "one round"
        );
        assert!(lessor.checkpoints_due(round, Duration::ZERO).is_empty());
        // Lease 2's checkpoint is in flight: a keepalive must clear it first.
        let plan = lessor.keep_alive(&[2, 3], round).expect("promoted");
        assert_eq!(plan.clear, vec![2]);
        lessor.checkpoint_applied(2, 55_000);
        lessor.checkpoint_applied(2, 0);
        let plan = lessor.keep_alive(&[2], round).expect("promoted");
        assert!(plan.clear.is_empty(), "cleared");
        // Lease 1 came checkpointed from the store; its round checkpoint failed.
        lessor.checkpoints_ended(&[1]);
        let plan = lessor.keep_alive(&[1], round).expect("promoted");
        assert_eq!(plan.clear, vec![1], "the store still holds one");
    }
}
