//! The TOML config file of `raftkv serve --config FILE` ([`raftkv::settings`]).

use std::io::Write;

use raftkv::settings::{parse_peers, ServeArgs, ServeConfig};

use crate::{scratch, Seed};

/// Checks what every resolved configuration satisfies.
fn check_resolved(config: &ServeConfig) {
    assert!(config.id.0 >= 1, "a node id is positive");
    assert!(config.sessions_max >= 1, "sessions are kept");
    assert!(
        config.key_bytes_max >= 1 && config.value_bytes_max >= 1,
        "keys and values may be written"
    );
    assert!(!config.tick.is_zero(), "time moves on");
    if config.join.is_none() {
        assert!(
            config.peers.contains_key(&config.id),
            "a node is one of its peers"
        );
    } else {
        assert!(config.peers.is_empty(), "a joining node has no peer list");
    }
}

/// `data` as the file given with `--config` ([`ServeArgs::resolve`]): once alone, once with
/// the required settings also given as flags (so that the file's other values are reached).
/// Resolving fails or gives a configuration that passes validation; a `peers` list that parses
/// names at least one node, none of them 0.
pub fn config_file(data: &[u8]) {
    let mut file = match tempfile::Builder::new()
        .prefix("fuzz-config-")
        .suffix(".toml")
        .tempfile_in(scratch::root())
    {
        Ok(file) => file,
        Err(error) => panic!("cannot make a scratch file: {error}"),
    };
    if let Err(error) = file.write_all(data) {
        panic!("cannot write the scratch file: {error}");
    }
    let alone = ServeArgs {
        config: Some(file.path().to_path_buf()),
        ..ServeArgs::default()
    };
    if let Ok(config) = alone.clone().resolve() {
        check_resolved(&config);
    }
    let with_flags = ServeArgs {
        id: Some(2),
        data_dir: Some("data".into()),
        http_addr: "127.0.0.1:8002".parse().ok(),
        peers: Some("1=127.0.0.1:9001,2=127.0.0.1:9002".into()),
        ..alone
    };
    if let Ok(config) = with_flags.resolve() {
        check_resolved(&config);
        assert_eq!(config.id.0, 2, "a flag wins over the file");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(peers) = parse_peers(text) {
            assert!(!peers.is_empty(), "a peer list names a node");
            assert!(peers.keys().all(|id| id.0 >= 1), "node ids start at 1");
        }
    }
}

/// Seeds of [`config_file`]: the README's example, a joining node's file and a secure node's.
pub(crate) fn config_seeds() -> Vec<Seed> {
    let full = r#"# node-1.toml
id = 1
data_dir = "/var/lib/raftkv"
raft_addr = "10.0.0.1:9001"
http_addr = "10.0.0.1:8001"
advertise_raft_addr = "192.0.2.1:9001"
peers = "1=10.0.0.1:9001,2=10.0.0.2:9001,3=10.0.0.3:9001"
cluster_id = "prod"
snapshot_threshold_bytes = 67108864
sessions_max = 100000
key_bytes_max = 4096
value_bytes_max = 1048576
request_timeout_ms = 5000
tick_ms = 20
worker_threads = 2
"#;
    let joining = r#"id = 4
data_dir = "data-4"
raft_addr = "127.0.0.1:9004"
http_addr = "127.0.0.1:8004"
join = "127.0.0.1:8001"
"#;
    let secure = r#"id = 1
data_dir = "data-1"
peers = "1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003"
tls_cert = "certs/node-1.pem"
tls_key = "certs/node-1-key.pem"
tls_ca = "certs/ca.pem"
peer_tls_cert = "certs/node-1.pem"
peer_tls_key = "certs/node-1-key.pem"
peer_tls_ca = "certs/ca.pem"
auth_tokens = "tokens.toml"
cluster_token_file = "cluster-token"
public_metrics = true
public_status = false
http_connections_max = 1000
http_requests_in_flight_max = 256
http_body_bytes_in_flight_max = 268435456
http_header_bytes_max = 65536
http_headers_max = 64
http_request_read_timeout_ms = 5000
http_idle_timeout_ms = 30000
"#;
    vec![
        ("full", full.as_bytes().to_vec()),
        ("secure", secure.as_bytes().to_vec()),
        ("joining", joining.as_bytes().to_vec()),
        ("peers_only", b"1=127.0.0.1:9001, 2=[::1]:9002".to_vec()),
    ]
}
