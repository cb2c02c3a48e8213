//! Snapshot scenarios (6.824 lab 2D / 3D), on memory storage: the service snapshots every 10
//! entries, lagging followers are brought up to date by InstallSnapshot, and peers restart
//! from snapshots. Every scenario runs over many seeds. The scenario bodies are in
//! `scenarios/snapshots.rs`, shared with `wal_storage.rs`.

#[path = "scenarios/snapshots.rs"]
mod scenarios;

use raft_sim::{for_each_seed, StorageKind};

#[test]
fn snapshot_basic() {
    for_each_seed("snapshot_basic", |seed| {
        scenarios::snapshot_basic(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_install() {
    for_each_seed("snapshot_install", |seed| {
        scenarios::snapshot_install(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_install_unreliable() {
    for_each_seed("snapshot_install_unreliable", |seed| {
        scenarios::snapshot_install_unreliable(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_install_crash() {
    for_each_seed("snapshot_install_crash", |seed| {
        scenarios::snapshot_install_crash(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_install_unreliable_crash() {
    for_each_seed("snapshot_install_unreliable_crash", |seed| {
        scenarios::snapshot_install_unreliable_crash(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_all_crash() {
    for_each_seed("snapshot_all_crash", |seed| {
        scenarios::snapshot_all_crash(StorageKind::Memory, seed);
    });
}

#[test]
fn snapshot_init_after_restarts() {
    for_each_seed("snapshot_init_after_restarts", |seed| {
        scenarios::snapshot_init_after_restarts(StorageKind::Memory, seed);
    });
}
