//! Support for testing code built on this crate (feature `testing`).

pub mod storage;
