//! Work on an image of the state that must not slow the requests down, on threads of its own:
//! a snapshot's encoding runs only when a core would otherwise be idle, and at a lower
//! priority if that takes too long; a backup's encoding and a consistency check's hash run at
//! the lower priority.
//!
//! ```text
//!  run_when_idle(work, patience): thread in SCHED_IDLE ─► work(cancelled) ─► result
//!     └ not done within patience: cancelled set (the work checks it every few ms)
//!       ─► run_at_low_priority(work): a thread at nice +10 ─► work(never cancelled)
//! ```
//!
//! An unprivileged thread cannot leave `SCHED_IDLE`, so the fallback is a new thread. The
//! work is shared (`Arc`) by both threads and whoever drops it last frees the image: that is
//! arranged to be a background thread, never a runtime worker answering requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work that gives up (`None`) soon after the flag it is given is set.
pub(super) type Cancellable<T> = Arc<dyn Fn(&AtomicBool) -> Option<T> + Send + Sync>;

/// How long idle-priority work over a state of `state_bytes` may take before it is taken for
/// starved: [`PATIENCE_BASE`] plus the state at [`SLOWEST_RATE`].
pub(super) fn patience_for(state_bytes: u64) -> Duration {
    PATIENCE_BASE + Duration::from_secs_f64(state_bytes as f64 / SLOWEST_RATE)
}

/// See [`patience_for`].
const PATIENCE_BASE: Duration = Duration::from_secs(1);

/// Bytes per second below which idle-priority work counts as starved. A core encodes or
/// hashes 50 to 100 MB/s; a sixth of that means the machine has had almost no idle time.
const SLOWEST_RATE: f64 = 16e6;

/// How much lower than the server's own the fallback thread's priority is (`nice`). Encoding
/// a large state takes a core for a good part of a second; at the same priority it took
/// turns with the threads answering requests (on a machine with few cores, one of them).
const LOW_PRIORITY_NICENESS: libc::c_int = 10;

/// `work`'s result, computed on a thread (named `name`) that runs only when a core would
/// otherwise be idle (Linux's `SCHED_IDLE`), so that requests never wait for it. A machine
/// with no idle time would starve it: past `patience` it is cancelled and run again by
/// [`run_at_low_priority`]. `None` if no thread could start or the work panicked.
pub(super) async fn run_when_idle<T: Send + 'static>(
    name: &'static str,
    work: Cancellable<T>,
    patience: Duration,
) -> Option<T> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (spare_sender, spare_receiver) = std::sync::mpsc::channel::<Cancellable<T>>();
    let again = Arc::clone(&work);
    let flag = Arc::clone(&cancelled);
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-idle"))
        .spawn(move || {
            run_this_thread_only_when_idle();
            let _ = sender.send(work(&flag));
            // The waiting side's share comes back to be dropped here with this one: whichever
            // goes last frees every node the live store stopped sharing since the image was
            // taken (tens of MB at a high write rate), a burst of work for this thread and not
            // for a runtime worker answering requests. Taken by the fallback instead, it is
            // dropped on the fallback's thread.
            let spare = spare_receiver.recv();
            let dropping = Instant::now();
            drop(work);
            drop(spare);
            tracing::debug!(
                work = name,
                drop_us = dropping.elapsed().as_micros() as u64,
                "the idle work's image dropped"
            );
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, work = name, "cannot start the idle work's thread");
        return run_at_low_priority(name, again).await;
    }
    match tokio::time::timeout(patience, receiver).await {
        Ok(Ok(done)) => {
            let _ = spare_sender.send(again);
            done
        }
        // The thread panicked.
        Ok(Err(_)) => None,
        Err(_) => {
            drop(spare_sender);
            cancelled.store(true, Ordering::Relaxed);
            tracing::info!(
                work = name,
                patience_ms = patience.as_millis() as u64,
                "found too little idle time; running it at low priority"
            );
            run_at_low_priority(name, again).await
        }
    }
}

/// `work`'s result, computed on a thread (named `name`) at a lower priority than the
/// server's ([`LOW_PRIORITY_NICENESS`]), never cancelled; `None` if that thread could not
/// start or panicked.
pub(super) async fn run_at_low_priority<T: Send + 'static>(
    name: &'static str,
    work: Cancellable<T>,
) -> Option<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = sender.send(work(&AtomicBool::new(false)));
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, work = name, "cannot start the low-priority work's thread");
        return None;
    }
    receiver.await.ok().flatten()
}

/// Puts the calling thread in the `SCHED_IDLE` class (Linux); where that is refused or
/// unknown, lowers its priority by [`LOW_PRIORITY_NICENESS`] instead.
fn run_this_thread_only_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread (pid 0); `param` outlives it.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if !refused {
            return;
        }
    }
    lower_this_threads_priority();
}

/// Lowers the calling thread's scheduling priority by [`LOW_PRIORITY_NICENESS`] (Linux
/// schedules threads, so the rest of the process keeps its own); best effort: unchanged
/// elsewhere or if refused.
pub(super) fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id, no memory handed over.
        unsafe {
            let thread = libc::gettid();
            let current = libc::getpriority(libc::PRIO_PROCESS, thread as libc::id_t);
            libc::setpriority(
                libc::PRIO_PROCESS,
                thread as libc::id_t,
                current + LOW_PRIORITY_NICENESS,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Operation, SnapshotImage, StateMachine};
    use bytes::Bytes;

    fn image_of_a_few_keys() -> SnapshotImage {
        let mut machine = StateMachine::new(16);
        for (index, key) in (1..).zip(["a", "b", "c"]) {
            let command = Command {
                session: None,
                operation: Operation::Put {
                    key: key.into(),
                    value: Bytes::from_static(b"v"),
                    lease: 0,
                },
                request_id: None,
            };
            machine.apply(index, &command.encode());
        }
        machine.snapshot_image()
    }

    #[tokio::test]
    async fn idle_work_and_work_that_ran_out_of_patience_give_the_same_result() {
        let image = image_of_a_few_keys();
        let expected = image.encode();
        let shared = image.clone();
        let work: Cancellable<Bytes> =
            Arc::new(move |cancelled| shared.encode_unless_cancelled(cancelled));
        let patient = run_when_idle("test", Arc::clone(&work), Duration::from_secs(60)).await;
        assert_eq!(patient.as_ref(), Some(&expected));
        let impatient = run_when_idle("test", Arc::clone(&work), Duration::ZERO).await;
        assert_eq!(impatient.as_ref(), Some(&expected));
        let low = run_at_low_priority("test", work).await;
        assert_eq!(low.as_ref(), Some(&expected));
        let stop = AtomicBool::new(true);
        assert_eq!(image.encode_unless_cancelled(&stop), None, "cancelled");
    }

    #[tokio::test]
    async fn work_that_panics_gives_none_and_the_caller_goes_on() {
        let work: Cancellable<u8> = Arc::new(|_| panic!("the work failed"));
        assert_eq!(
            run_when_idle("test", Arc::clone(&work), Duration::from_secs(60)).await,
            None
        );
        assert_eq!(run_at_low_priority("test", work).await, None);
    }
}
