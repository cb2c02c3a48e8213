//! Locks and leader elections on leases, transactions and watch: [`Session`] (a lease and its
//! keeper), [`LockGuard`], [`Leadership`] and [`Client::observe_election`].
//!
//! ```text
//!  Session::lock(name) / campaign(name, value)
//!    txn: create_revision({name}/{lease:x}) = 0 ? put it with the lease, get it : get it
//!    my = its create revision                     (the fencing token)
//!    loop: scan {name}/ ── the key with the greatest create revision below my ──┐
//!          none ─▶ held                                                         │
//!          else watch only that key (no herd) until it is deleted ◀─────────────┘
//!               (my own key deleted, or the lease lost, meanwhile ─▶ lost)
//!  observe_election(name): scan {name}/, then watch the prefix; the leader is the key with
//!    the lowest create revision; a message each time it (or its value) changes
//! ```
//!
//! The queue is etcd's (concurrency/mutex.go, election.go): the keys are `{name}/{lease id in
//! hex}`, so raftkv's and etcd's clients contend on the same keys once the etcd protocol is
//! served. What a lock guarantees, and what it cannot (a holder paused past its lease acts
//! after losing it: pass the fencing token to the guarded resource), is in docs/leases.md.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::lease::wait_lost;
use super::{Client, ClientError, LeaseKeeper, LeaseLost, LeaseStatus, WatchMessage, WatchRequest};
use crate::api::{
    Compare, CompareOp, CompareTarget, EventType, KeyValue, TxnOp, TxnOpResult, TxnRequest,
    VersionedKeyValue,
};

/// A session's TTL when none is given, in seconds (etcdctl's default).
pub const SESSION_TTL_SECONDS_DEFAULT: u64 = 60;

/// Most keys one lock or election may have queued (a scan's limit); a queue longer than this
/// is refused rather than waited on with an incomplete view of it.
const QUEUE_KEYS_MAX: usize = 10_000;

/// What went wrong taking, holding or leading.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The session's lease was lost (while waiting, or holding).
    #[error("the session's lease was lost: {0}")]
    LeaseLost(LeaseLost),
    /// Our own key in the queue was deleted (by its lease's revoke or expiry, or by someone
    /// else) while waiting.
    #[error("our key {key} was deleted while waiting")]
    KeyDeleted {
        /// The key.
        key: String,
    },
    /// A proclamation was refused: this session's key is not the one it was any more.
    #[error("not the leader any more: {key} was deleted or replaced")]
    NotLeader {
        /// The leadership's key.
        key: String,
    },
    /// More keys are queued under the name than one scan reads.
    #[error("more than {QUEUE_KEYS_MAX} keys are queued under {prefix:?}")]
    QueueTooLong {
        /// The queue's prefix.
        prefix: String,
    },
}

/// How a held lock (or leadership) was lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockLost {
    /// The session's lease is no longer kept alive.
    #[error("the session's lease was lost: {0}")]
    Lease(LeaseLost),
    /// The lock's key was deleted at `revision` (its lease revoked or expired, or a delete).
    #[error("the lock key was deleted at revision {revision}")]
    KeyDeleted {
        /// The delete's revision.
        revision: u64,
    },
}

/// A lease kept alive for locks and elections: every key a session takes is attached to its
/// lease, so all of them go when the session ends or its owner dies.
#[derive(Debug)]
pub struct Session {
    client: Client,
    keeper: LeaseKeeper,
}

impl Session {
    /// Grants a lease of `ttl_seconds` ([`SESSION_TTL_SECONDS_DEFAULT`] is etcdctl's choice)
    /// and keeps it alive.
    pub async fn new(client: &Client, ttl_seconds: u64) -> Result<Session, ClientError> {
        let granted = client.lease_grant(ttl_seconds, None).await?;
        match client.keep_alive(granted.id).await {
            Ok(keeper) => Ok(Session {
                client: client.clone(),
                keeper,
            }),
            Err(error) => {
                // Best effort: a lease nobody keeps alive expires anyway.
                let _ = client.lease_revoke(granted.id).await;
                Err(error)
            }
        }
    }

    /// The session's lease.
    pub fn lease_id(&self) -> u64 {
        self.keeper.id()
    }

    /// The lease's status (see [`LeaseKeeper::status`]).
    pub fn status(&self) -> watch::Receiver<LeaseStatus> {
        self.keeper.status()
    }

    /// Resolves when the session's lease is lost.
    pub fn lost(&self) -> impl Future<Output = LeaseLost> + Send + 'static {
        self.keeper.lost()
    }

    /// Ends the session: stops the keeper and revokes the lease, which deletes every lock and
    /// election key the session holds. A lease already gone is not an error.
    pub async fn close(self) -> Result<(), ClientError> {
        match self.keeper.revoke().await {
            Ok(_) | Err(ClientError::LeaseNotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Takes the lock `name`, waiting for the holders before us (each waiter watches only the
    /// key just before its own). The guard's [`LockGuard::fencing_token`] is the lock key's
    /// create revision: it grows with every acquisition of the lock, so the resources the lock
    /// guards can refuse a holder that lost the lock meanwhile.
    ///
    /// Taking a lock whose key the session still has (a guard not unlocked, or an unlock
    /// whose answer was lost) replaces that key: the new holding waits at the end of the queue
    /// with a new fencing token, and the earlier guard's [`LockGuard::lost`] resolves. So no two
    /// holdings ever share a token, and a write the earlier holding left in flight is refused
    /// by a resource that saw the new token. (etcd's recipe joins the old place with the old
    /// token instead; found by the chaos suite's lock checker, seed 3101.)
    pub async fn lock(&self, name: &str) -> Result<LockGuard, LockError> {
        let mut entry = self.enqueue(name, "").await?;
        let mut replaced = 0;
        while !entry.created {
            if replaced == LOCK_KEY_REPLACEMENTS_MAX {
                return Err(ClientError::InvalidInput(format!(
                    "{} keeps being taken again by this session meanwhile",
                    entry.kv.key
                ))
                .into());
            }
            self.delete_incarnation(&entry.kv).await?;
            replaced += 1;
            entry = self.enqueue(name, "").await?;
        }
        Ok(LockGuard {
            held: self.wait_turn(entry).await?,
        })
    }

    /// Deletes `kv`'s key if it is still the same incarnation (same create revision).
    async fn delete_incarnation(&self, kv: &VersionedKeyValue) -> Result<(), LockError> {
        let request = TxnRequest {
            compare: vec![Compare {
                key: kv.key.clone(),
                op: CompareOp::Equal,
                target: CompareTarget::CreateRevision(kv.create_revision),
            }],
            success: vec![TxnOp::Delete {
                key: kv.key.clone(),
            }],
            failure: vec![],
        };
        self.client.txn(&request).await.map_err(lock_error)?;
        Ok(())
    }

    /// Campaigns in the election `name` with `value`: waits until every candidate before us is
    /// gone, then leads. A session already campaigning keeps its place and takes the new value.
    pub async fn campaign(&self, name: &str, value: &str) -> Result<Leadership, LockError> {
        let entry = self.enqueue(name, value).await?;
        let held = self.wait_turn(entry).await?;
        let leadership = Leadership { held };
        if leadership.held.value_held != value {
            leadership.proclaim(value).await?;
        }
        Ok(leadership)
    }

    /// Puts our key in the queue of `name` unless it is there already; its create revision.
    async fn enqueue(&self, name: &str, value: &str) -> Result<Entry, LockError> {
        if name.is_empty() {
            return Err(ClientError::InvalidInput("an empty lock or election name".into()).into());
        }
        let prefix = format!("{name}/");
        let key = format!("{prefix}{:x}", self.lease_id());
        let request = TxnRequest {
            compare: vec![Compare {
                key: key.clone(),
                op: CompareOp::Equal,
                target: CompareTarget::CreateRevision(0),
            }],
            success: vec![
                TxnOp::Put {
                    key: key.clone(),
                    value: Some(value.to_string()),
                    value_base64: None,
                    lease: Some(self.lease_id()),
                },
                TxnOp::Get { key: key.clone() },
            ],
            failure: vec![TxnOp::Get { key: key.clone() }],
        };
        let answer = self.client.txn(&request).await.map_err(lock_error)?;
        let kv = match answer.results.last() {
            Some(TxnOpResult::Get { kv: Some(kv) }) => kv.clone(),
            other => {
                return Err(ClientError::Decode(format!(
                    "the queue transaction read {other:?} for {key}"
                ))
                .into())
            }
        };
        if kv.create_revision == 0 {
            return Err(ClientError::Decode(format!("{key} has no create revision")).into());
        }
        Ok(Entry {
            prefix,
            kv,
            created: answer.succeeded,
        })
    }

    /// Waits until no key of the queue was created before ours.
    async fn wait_turn(&self, entry: Entry) -> Result<Held, LockError> {
        let Entry {
            prefix, kv: mine, ..
        } = entry;
        let my_revision = mine.create_revision;
        let lost = self.lost();
        tokio::pin!(lost);
        loop {
            let scan = self.client.scan_at(&prefix, QUEUE_KEYS_MAX, None).await?;
            if scan.truncated {
                return Err(LockError::QueueTooLong { prefix });
            }
            let still_mine = scan
                .items
                .iter()
                .any(|kv| kv.key == mine.key && kv.create_revision == my_revision);
            if !still_mine {
                return Err(LockError::KeyDeleted { key: mine.key });
            }
            let Some(predecessor) = lock_predecessor(&scan.items, my_revision) else {
                let value_held = value_of(&mine);
                return Ok(Held {
                    client: self.client.clone(),
                    key: mine.key,
                    create_revision: my_revision,
                    held_revision: scan.revision,
                    lease_id: self.lease_id(),
                    lease_status: self.status(),
                    value_held,
                });
            };
            let from = scan.revision + 1;
            let predecessor_gone = deleted(&self.client, &predecessor.key, from);
            let mine_gone = deleted(&self.client, &mine.key, from);
            tokio::select! {
                reason = &mut lost => return Err(LockError::LeaseLost(reason)),
                gone = mine_gone => match gone {
                    Ok(_) => return Err(LockError::KeyDeleted { key: mine.key }),
                    // The watch of our own key failed: the next scan tells.
                    Err(_) => continue,
                },
                // Deleted, or its watch failed (compacted, unavailable): look again either way.
                _ = predecessor_gone => continue,
            }
        }
    }
}

/// Our key in a queue, as the enqueuing transaction left it.
struct Entry {
    prefix: String,
    kv: VersionedKeyValue,
    /// The transaction created the key (false: the session had it already).
    created: bool,
}

/// How many times [`Session::lock`] replaces a key of its own that keeps reappearing (another
/// task of the same session taking the same lock meanwhile) before it gives up.
const LOCK_KEY_REPLACEMENTS_MAX: u32 = 3;

/// The key of `items` (a queue's keys) created last before `create_revision`: the one a
/// waiter with that create revision watches. `None`: nobody is before it, it holds the lock.
pub(crate) fn lock_predecessor(items: &[KeyValue], create_revision: u64) -> Option<&KeyValue> {
    items
        .iter()
        .filter(|kv| kv.create_revision > 0 && kv.create_revision < create_revision)
        .max_by_key(|kv| kv.create_revision)
}

/// Resolves with the revision at which `key` is deleted, watching it from revision `from`; an
/// error when the watch ends without seeing it (compacted, unavailable).
async fn deleted(client: &Client, key: &str, from: u64) -> Result<u64, ClientError> {
    let mut watch = client.watch(WatchRequest::key(key, Some(from)));
    while let Some(message) = watch.next().await {
        if let WatchMessage::Events(batch) = message? {
            if batch
                .events
                .iter()
                .any(|event| event.kind == EventType::Delete && event.kv.key == key)
            {
                return Ok(batch.revision);
            }
        }
    }
    Err(ClientError::Unavailable(format!(
        "the watch of {key} ended"
    )))
}

fn value_of(kv: &VersionedKeyValue) -> String {
    match (&kv.value, &kv.value_base64) {
        (Some(value), _) => value.clone(),
        (None, Some(encoded)) => encoded.clone(),
        (None, None) => String::new(),
    }
}

/// A queue key whose turn came: what a lock guard and a leadership share.
#[derive(Debug)]
struct Held {
    client: Client,
    key: String,
    create_revision: u64,
    /// The revision at which the scan saw no key before ours.
    held_revision: u64,
    lease_id: u64,
    lease_status: watch::Receiver<LeaseStatus>,
    value_held: String,
}

impl Held {
    fn lost(&self) -> impl Future<Output = LockLost> + Send + 'static {
        let client = self.client.clone();
        let key = self.key.clone();
        let create_revision = self.create_revision;
        let from = self.held_revision + 1;
        let status = self.lease_status.clone();
        async move {
            tokio::select! {
                reason = wait_lost(status) => LockLost::Lease(reason),
                revision = key_deleted(client, key, create_revision, from) => {
                    LockLost::KeyDeleted { revision }
                }
            }
        }
    }

    /// Deletes the key if it is still ours (same create revision).
    async fn release(&self) -> Result<bool, ClientError> {
        let request = TxnRequest {
            compare: vec![self.still_ours()],
            success: vec![TxnOp::Delete {
                key: self.key.clone(),
            }],
            failure: vec![],
        };
        Ok(self.client.txn(&request).await?.succeeded)
    }

    fn still_ours(&self) -> Compare {
        Compare {
            key: self.key.clone(),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(self.create_revision),
        }
    }
}

/// The revision at which `key` (created at `create_revision`) is deleted, watching from
/// `from`. When the watch fails it reads the key: gone (or created anew) is a delete at the
/// read's revision; still there, the watch starts again after the read; a read that fails too
/// leaves the lease's keeper to tell (this never resolves then).
async fn key_deleted(client: Client, key: String, create_revision: u64, mut from: u64) -> u64 {
    loop {
        match deleted(&client, &key, from).await {
            Ok(revision) => return revision,
            Err(error) => {
                tracing::debug!(%error, key, "the watch of a held lock key failed; reading it");
                match client.get_versioned(&key, None).await {
                    Ok(read) => match read.kv {
                        Some(kv) if kv.create_revision == create_revision => {
                            from = read.revision + 1;
                        }
                        _ => return read.revision,
                    },
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        }
    }
}

/// A lock held ([`Session::lock`]). Dropping it does not release the lock: [`LockGuard::unlock`]
/// does, and so does the end of the session's lease ([`Session::close`], or its expiry).
#[derive(Debug)]
pub struct LockGuard {
    held: Held,
}

impl LockGuard {
    /// The lock's key, `{name}/{lease id in hex}`.
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// The fencing token: the lock key's create revision. Every later holder of the lock has a
    /// greater one; a resource given the token can refuse any lower than the highest it saw.
    pub fn fencing_token(&self) -> u64 {
        self.held.create_revision
    }

    /// The session lease the lock key is attached to.
    pub fn lease_id(&self) -> u64 {
        self.held.lease_id
    }

    /// Resolves when the lock is lost: the session's lease lost, or the lock key deleted.
    /// Borrows nothing, to wait beside the work done under the lock (`tokio::select!`).
    pub fn lost(&self) -> impl Future<Output = LockLost> + Send + 'static {
        self.held.lost()
    }

    /// Releases the lock (deletes its key if it is still this acquisition's). `Ok(false)`: it
    /// was already lost.
    pub async fn unlock(self) -> Result<bool, ClientError> {
        self.held.release().await
    }
}

/// Leading an election ([`Session::campaign`]).
#[derive(Debug)]
pub struct Leadership {
    held: Held,
}

impl Leadership {
    /// The leader's key, `{name}/{lease id in hex}`.
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// The key's create revision: the leadership's fencing token.
    pub fn create_revision(&self) -> u64 {
        self.held.create_revision
    }

    /// Resolves when the leadership is lost (as [`LockGuard::lost`]).
    pub fn lost(&self) -> impl Future<Output = LockLost> + Send + 'static {
        self.held.lost()
    }

    /// Sets the leader's value (what observers see), only if this session still leads: the
    /// key still has its create revision. [`LockError::NotLeader`] otherwise.
    pub async fn proclaim(&self, value: &str) -> Result<(), LockError> {
        let request = TxnRequest {
            compare: vec![self.held.still_ours()],
            success: vec![TxnOp::Put {
                key: self.held.key.clone(),
                value: Some(value.to_string()),
                value_base64: None,
                lease: Some(self.held.lease_id),
            }],
            failure: vec![],
        };
        let answer = self.held.client.txn(&request).await.map_err(lock_error)?;
        if !answer.succeeded {
            return Err(LockError::NotLeader {
                key: self.held.key.clone(),
            });
        }
        Ok(())
    }

    /// Steps down: deletes the key if it is still this leadership's, so the next candidate
    /// leads. `Ok(false)`: it was already lost.
    pub async fn resign(self) -> Result<bool, ClientError> {
        self.held.release().await
    }
}

/// An election's leader, as [`Client::observe_election`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionLeader {
    /// The leader's key, `{name}/{lease id in hex}`.
    pub key: String,
    /// The value it proclaimed.
    pub value: Bytes,
    /// The key's create revision (the leadership's fencing token).
    pub create_revision: u64,
}

/// The leader among an election's keys: the one created first.
fn election_leader<'a>(
    candidates: impl IntoIterator<Item = (&'a String, &'a (u64, Bytes))>,
) -> Option<ElectionLeader> {
    candidates
        .into_iter()
        .min_by_key(|(_, (create_revision, _))| *create_revision)
        .map(|(key, (create_revision, value))| ElectionLeader {
            key: key.clone(),
            value: value.clone(),
            create_revision: *create_revision,
        })
}

fn decode_value(value: &Option<String>, value_base64: &Option<String>) -> Bytes {
    match (value, value_base64) {
        (Some(value), _) => Bytes::from(value.clone()),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Bytes::from)
            .unwrap_or_default(),
        (None, None) => Bytes::new(),
    }
}

/// The leaders of an election as they change ([`Client::observe_election`]): a [`Stream`]
/// whose first item is the leader now; `None` when nobody leads. Dropping it stops it.
pub struct ElectionObserver {
    receiver: mpsc::Receiver<Result<Option<ElectionLeader>, LockError>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ElectionObserver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ElectionObserver")
            .field("running", &!self.task.is_finished())
            .finish_non_exhaustive()
    }
}

impl ElectionObserver {
    /// The next leader (a change), or `None` once the observer has ended (after an error,
    /// which is its last item).
    pub async fn next(&mut self) -> Option<Result<Option<ElectionLeader>, LockError>> {
        self.receiver.recv().await
    }
}

impl Stream for ElectionObserver {
    type Item = Result<Option<ElectionLeader>, LockError>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(context)
    }
}

impl Drop for ElectionObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Observes the election `name`: its leader now, then each time the leader or its value
    /// changes (`None` while nobody campaigns). It reads the candidates once and then follows
    /// the watch of their prefix, which resumes by itself across node failures. Must be called
    /// within a tokio runtime.
    pub fn observe_election(&self, name: &str) -> ElectionObserver {
        let (sender, receiver) = mpsc::channel(16);
        let client = self.clone();
        let prefix = format!("{name}/");
        let task = tokio::spawn(async move {
            if let Err(error) = observe(&client, &prefix, &sender).await {
                let _ = sender.send(Err(error)).await;
            }
        });
        ElectionObserver { receiver, task }
    }
}

async fn observe(
    client: &Client,
    prefix: &str,
    sender: &mpsc::Sender<Result<Option<ElectionLeader>, LockError>>,
) -> Result<(), LockError> {
    if prefix == "/" {
        return Err(ClientError::InvalidInput("an empty election name".into()).into());
    }
    let scan = client.scan_at(prefix, QUEUE_KEYS_MAX, None).await?;
    if scan.truncated {
        return Err(LockError::QueueTooLong {
            prefix: prefix.to_string(),
        });
    }
    let mut candidates: BTreeMap<String, (u64, Bytes)> = scan
        .items
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                (
                    kv.create_revision,
                    decode_value(&kv.value, &kv.value_base64),
                ),
            )
        })
        .collect();
    let mut shown = election_leader(&candidates);
    if sender.send(Ok(shown.clone())).await.is_err() {
        return Ok(());
    }
    let mut watch = client.watch(WatchRequest::prefix(prefix, Some(scan.revision + 1)));
    while let Some(message) = watch.next().await {
        let WatchMessage::Events(batch) = message? else {
            continue;
        };
        for event in batch.events {
            match event.kind {
                EventType::Put => {
                    let value = decode_value(&event.kv.value, &event.kv.value_base64);
                    candidates.insert(event.kv.key, (event.kv.create_revision, value));
                }
                EventType::Delete => {
                    candidates.remove(&event.kv.key);
                }
            }
        }
        let leader = election_leader(&candidates);
        if leader != shown {
            shown = leader;
            if sender.send(Ok(shown.clone())).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A transaction of the lock or election recipe refused: a lease that no longer exists means
/// the session's lease is lost; anything else is the client's error.
fn lock_error(error: ClientError) -> LockError {
    match error {
        ClientError::LeaseNotFound { .. } => LockError::LeaseLost(LeaseLost::NotFound),
        other => LockError::Client(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, create_revision: u64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(String::new()),
            value_base64: None,
            create_revision,
            mod_revision: create_revision,
            version: 1,
        }
    }

    #[test]
    fn the_predecessor_is_the_latest_created_before_us_whatever_the_key_order() {
        // Key order (lease ids) differs from creation order.
        let queue = [kv("l/1", 9), kv("l/2", 4), kv("l/3", 12), kv("l/4", 7)];
        let key = |found: Option<&KeyValue>| found.map(|kv| kv.key.clone());
        assert_eq!(key(lock_predecessor(&queue, 4)), None, "the first holds it");
        assert_eq!(key(lock_predecessor(&queue, 7)), Some("l/2".to_string()));
        assert_eq!(key(lock_predecessor(&queue, 9)), Some("l/4".to_string()));
        assert_eq!(key(lock_predecessor(&queue, 12)), Some("l/1".to_string()));
        // A revision not in the list (our key read at another time) still gets the key just
        // below it; keys from nodes without revisions (0) are never predecessors.
        assert_eq!(key(lock_predecessor(&queue, 100)), Some("l/3".to_string()));
        assert_eq!(key(lock_predecessor(&[kv("l/9", 0)], 5)), None);
        assert_eq!(key(lock_predecessor(&[], 5)), None);
    }

    #[test]
    fn every_waiter_watches_a_different_key_no_herd() {
        let queue: Vec<KeyValue> = (1..=50)
            .map(|n| kv(&format!("l/{:x}", 1000 - n), n * 3))
            .collect();
        let mut watched: Vec<String> = queue
            .iter()
            .filter_map(|mine| lock_predecessor(&queue, mine.create_revision))
            .map(|kv| kv.key.clone())
            .collect();
        assert_eq!(watched.len(), 49, "all but the holder wait");
        watched.sort();
        watched.dedup();
        assert_eq!(watched.len(), 49, "no key is watched by two waiters");
    }

    #[test]
    fn the_election_leader_is_the_first_created() {
        let mut candidates = BTreeMap::new();
        assert_eq!(election_leader(&candidates), None);
        candidates.insert("e/b".to_string(), (8, Bytes::from("second")));
        candidates.insert("e/c".to_string(), (5, Bytes::from("first")));
        let leader = election_leader(&candidates).expect("a leader");
        assert_eq!(
            (
                leader.key.as_str(),
                leader.create_revision,
                &leader.value[..]
            ),
            ("e/c", 5, &b"first"[..])
        );
        candidates.remove("e/c");
        assert_eq!(
            election_leader(&candidates).map(|leader| leader.key),
            Some("e/b".to_string())
        );
    }
}
