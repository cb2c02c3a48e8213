//! The event loop's clock: real time turned into the core's ticks.

use std::time::Duration;

/// Keeps the core's ticks in step with real (monotonic) time. The timer alone would not: after
/// the loop stalls (a paused process, an overloaded machine) it fires once, not once per tick
/// missed, and a leader whose ticks lag real time would think its lease lasts longer than it
/// does (thesis §6.4.1). So the loop ticks the core for every tick that has really passed, on
/// each timer fire and before every lease read.
pub(super) struct Clock {
    started: tokio::time::Instant,
    pub(super) tick: Duration,
    /// Ticks handed to the core so far.
    ticks_done: u64,
    /// The most ticks one catch-up hands out. Two election timeouts end any lease, timer and
    /// election the stall overran; more would only spin.
    catch_up_ticks_max: u64,
}

impl Clock {
    pub(super) fn new(tick: Duration, election_ticks: u32) -> Clock {
        assert!(!tick.is_zero(), "invariant tick-positive");
        Clock {
            started: tokio::time::Instant::now(),
            tick,
            ticks_done: 0,
            catch_up_ticks_max: 2 * u64::from(election_ticks),
        }
    }

    /// How many ticks to hand the core now: every tick that has passed since the start and
    /// was not handed out yet (the first one at the start itself, as the timer's), at most
    /// `catch_up_ticks_max`; ticks beyond that are dropped.
    pub(super) fn ticks_due(&mut self) -> u64 {
        let elapsed_ticks = self.started.elapsed().as_nanos() / self.tick.as_nanos();
        let due = u64::try_from(elapsed_ticks)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let ticks = due.saturating_sub(self.ticks_done);
        self.ticks_done = self.ticks_done.max(due);
        ticks.min(self.catch_up_ticks_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_hands_out_one_tick_at_the_start_and_every_tick_that_passed() {
        let mut hourly = Clock::new(Duration::from_secs(3600), 100);
        assert_eq!(
            hourly.ticks_due(),
            1,
            "the timer's first tick is at the start"
        );
        assert_eq!(hourly.ticks_due(), 0);
        let mut clock = Clock::new(Duration::from_millis(1), 100);
        // Time is the input here: the loop stalled for 20 ticks.
        std::thread::sleep(Duration::from_millis(20));
        let caught_up = clock.ticks_due();
        assert!(
            (20..=200).contains(&caught_up),
            "{caught_up} ticks after 20 ms"
        );
    }

    #[test]
    fn a_long_stall_hands_out_two_election_timeouts_and_drops_the_rest() {
        let mut clock = Clock::new(Duration::from_millis(5), 5);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(clock.ticks_due(), 10);
        assert!(
            clock.ticks_due() <= 2,
            "the dropped ticks do not come later"
        );
    }
}
