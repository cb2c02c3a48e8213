//! Exactly-once sessions: retries answered from the cache, stale requests refused, and
//! eviction of the least recently active session, the same on every replica.

use super::*;

#[test]
fn retried_request_returns_the_cached_outcome_without_applying_again() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let first = harness.apply_as(7, 1, append("k", b"ab"));
    assert_eq!(first, Outcome::Appended { length: 2 });
    let retry = harness.apply_as(7, 1, append("k", b"ab"));
    assert_eq!(retry, first);
    assert_eq!(harness.get("k"), Some(&b"ab"[..]), "appended once");
    assert_eq!(harness.machine.sessions(), 1);
}

#[test]
fn retried_cas_returns_its_first_outcome_even_after_the_value_changed() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.apply_as(7, 1, cas("k", None, b"mine")), CAS_SWAPPED);
    harness.apply(put("k", b"theirs"));
    assert_eq!(harness.apply_as(7, 1, cas("k", None, b"mine")), CAS_SWAPPED);
    assert_eq!(harness.get("k"), Some(&b"theirs"[..]));
}

#[test]
fn older_sequence_is_stale_and_not_applied() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(7, 5, put("k", b"five"));
    assert_eq!(
        harness.apply_as(7, 4, put("k", b"four")),
        Outcome::StaleSequence { last: 5 }
    );
    assert_eq!(harness.get("k"), Some(&b"five"[..]));
    // The stale request did not replace the cached outcome.
    assert_eq!(harness.apply_as(7, 5, put("k", b"five")), Outcome::Put);
    assert_eq!(
        harness.apply_as(7, 5, delete("k")),
        Outcome::Put,
        "a retry is answered from the cache, whatever it carries"
    );
    assert_eq!(harness.get("k"), Some(&b"five"[..]));
}

#[test]
fn newer_sequence_applies_and_replaces_the_cached_outcome() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(7, 1, put("k", b"v"));
    // Sequence numbers may skip ahead: a client need not number contiguously.
    assert_eq!(
        harness.apply_as(7, 3, delete("k")),
        Outcome::Deleted { existed: true }
    );
    assert_eq!(
        harness.apply_as(7, 3, delete("k")),
        Outcome::Deleted { existed: true }
    );
    assert_eq!(
        harness.apply_as(7, 1, put("k", b"v")),
        Outcome::StaleSequence { last: 3 }
    );
    assert_eq!(harness.get("k"), None);
}

#[test]
fn sessions_of_different_clients_are_independent() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(1, 10, append("k", b"a"));
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"b")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"b")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(harness.get("k"), Some(&b"ab"[..]));
    assert_eq!(harness.machine.sessions(), 2);
}

#[test]
fn commands_without_a_session_apply_every_time() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(append("k", b"a"));
    harness.apply(append("k", b"a"));
    assert_eq!(harness.get("k"), Some(&b"aa"[..]));
    assert_eq!(harness.machine.sessions(), 0);
}

#[test]
fn announce_with_a_session_follows_session_rules() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let announce = |address: &str| Operation::Announce {
        node: 1,
        http_address: address.into(),
        grpc_address: None,
    };
    harness.apply_as(9, 2, announce("new"));
    assert_eq!(
        harness.apply_as(9, 1, announce("old")),
        Outcome::StaleSequence { last: 2 }
    );
    assert_eq!(harness.machine.http_address(1), Some("new"));
}

#[test]
fn eviction_removes_the_least_recently_active_session() {
    let mut harness = Harness::new(2);
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(2, 1, append("k", b"2"));
    harness.apply_as(3, 1, append("k", b"3"));
    assert_eq!(harness.machine.sessions(), 2);
    // Client 1 was least recently active and lost its session: its retry applies again.
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"1")),
        Outcome::Appended { length: 4 }
    );
    assert_eq!(harness.get("k"), Some(&b"1231"[..]));
    // Re-creating client 1's session evicted client 2; client 3's retry is still answered
    // from the cache.
    assert_eq!(
        harness.apply_as(3, 1, append("k", b"3")),
        Outcome::Appended { length: 3 }
    );
    assert_eq!(harness.get("k"), Some(&b"1231"[..]));
}

#[test]
fn a_retry_keeps_its_session_from_eviction() {
    let mut harness = Harness::new(2);
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(2, 1, append("k", b"2"));
    // Client 1 retries: it is now more recently active than client 2.
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(3, 1, append("k", b"3"));
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"1")),
        Outcome::Appended { length: 1 },
        "client 1 kept its session"
    );
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"2")),
        Outcome::Appended { length: 4 },
        "client 2 was evicted, so its retry applied twice"
    );
}

#[test]
fn eviction_is_the_same_on_every_replica() {
    let log: Vec<Bytes> = (0..40u64)
        .map(|step| encode(Some((step * 7 % 11, step / 3)), append("k", b"x")))
        .collect();
    let mut replicas = [Harness::new(3), Harness::new(3)];
    for replica in &mut replicas {
        for entry in &log {
            replica.apply_bytes(entry);
        }
    }
    assert_eq!(replicas[0].machine.sessions(), 3);
    assert_eq!(
        replicas[0].machine.snapshot(),
        replicas[1].machine.snapshot()
    );
}

#[test]
fn zero_sessions_max_disables_exactly_once() {
    let mut harness = Harness::new(0);
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"a")),
        Outcome::Appended { length: 1 }
    );
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"a")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(harness.machine.sessions(), 0);
}
