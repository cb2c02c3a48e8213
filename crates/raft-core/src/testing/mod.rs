//! Support for testing code built on this crate (feature `testing`): the storage conformance
//! suite (`storage`) and sample messages and entries for codec and transport tests
//! (`messages`; with feature `proptest`, strategies that generate any message).

pub mod messages;
pub mod storage;
