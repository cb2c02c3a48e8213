//! etcd's v3 gRPC API as Rust: the messages, a server trait and a client per service.
//!
//! The `.proto` files under `proto/` are raftkv's own, written from etcd's published API
//! reference: the package, service, method, message and field names and numbers are the wire
//! interface and follow etcd's exactly, so `etcdctl` and etcd's client libraries speak to a
//! server built on these types, and the clients here speak to etcd.
//!
//! The code under `src/generated/` is generated from them and committed, so that building
//! needs no `protoc`. After changing a `.proto` file, regenerate it (this needs `protoc`,
//! Debian's protobuf-compiler) with
//!
//! ```text
//! cargo run --manifest-path crates/etcd-api/regen/Cargo.toml
//! ```
//!
//! Keys and values are `bytes::Bytes`.

#![allow(missing_docs)]

/// Keys at a version and the events of a watch (etcd's `mvccpb`).
pub mod mvccpb {
    include!("generated/mvccpb.rs");
}

/// Users, roles and permissions (etcd's `authpb`).
pub mod authpb {
    include!("generated/authpb.rs");
}

/// The services and their messages (etcd's `etcdserverpb`).
#[allow(clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    include!("generated/etcdserverpb.rs");
}

pub use etcdserverpb::*;
