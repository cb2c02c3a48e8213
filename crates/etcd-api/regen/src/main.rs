//! Regenerates `crates/etcd-api/src/generated/` from `crates/etcd-api/proto/`.
//!
//! Run from the repository root: `cargo run --manifest-path crates/etcd-api/regen/Cargo.toml`.
//! Needs `protoc` (Debian's protobuf-compiler). The generated files are committed, so building
//! raftkv needs neither protoc nor this program.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the regen crate lives inside crates/etcd-api")?
        .to_path_buf();
    let proto_dir = crate_dir.join("proto");
    let out_dir = crate_dir.join("src").join("generated");
    std::fs::create_dir_all(&out_dir)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Keys and values travel as `bytes::Bytes`: the server hands them to the store and
        // back without a copy.
        .bytes(".")
        .out_dir(&out_dir)
        .emit_rerun_if_changed(false)
        .compile_protos(
            &[
                proto_dir.join("kv.proto"),
                proto_dir.join("auth.proto"),
                proto_dir.join("rpc.proto"),
            ],
            &[proto_dir],
        )?;
    println!("regenerated {}", out_dir.display());
    Ok(())
}
