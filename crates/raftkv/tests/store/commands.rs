//! The command encoding: every operation round-trips, unknown fields are skipped, and what an
//! older or newer build wrote is refused with the reason.

use raftkv::store::CommandError;

use super::*;

#[test]
fn every_operation_roundtrips_through_its_encoding() {
    let operations = [
        put("k", b"v"),
        put("", b""),
        delete("k"),
        append("ключ", b"\x00\xff"),
        cas("k", None, b"v"),
        cas("k", Some(b""), b""),
        Operation::Announce {
            node: u64::MAX,
            http_address: "[::1]:80".into(),
            grpc_address: None,
        },
        Operation::Announce {
            node: 2,
            http_address: "10.0.0.2:8080".into(),
            grpc_address: Some("10.0.0.2:2379".into()),
        },
        Operation::RaftAddress {
            node: 4,
            raft_address: "10.0.0.4:9001".into(),
        },
    ];
    for operation in operations {
        for session in [None, Some((0, 0)), Some((u64::MAX, u64::MAX))] {
            let command = Command {
                session: session.map(|(client_id, sequence)| Session {
                    client_id: ClientId::number(client_id),
                    sequence,
                }),
                operation: operation.clone(),
                request_id: None,
            };
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }
}

#[test]
fn unknown_fields_are_skipped_but_an_unknown_operation_is_refused() {
    let mut newer = encode(None, put("k", b"v")).to_vec();
    // Field 20, varint 1: a field a newer release might add.
    newer.extend_from_slice(&[0xa0, 0x01, 0x01]);
    assert_eq!(
        Command::decode(&newer),
        Ok(Command {
            session: None,
            operation: put("k", b"v"),
            request_id: None,
        })
    );
    // Field 14 (a tag no operation has yet), an empty message: an operation this build lacks.
    assert_eq!(
        Command::decode(&[0x72, 0x00]),
        Err(CommandError::UnknownOperation)
    );
}

#[test]
fn newer_format_version_is_refused() {
    let mut newer = encode(None, put("k", b"v")).to_vec();
    // Field 15 (format_version), varint 1.
    newer.extend_from_slice(&[0x78, 0x01]);
    assert_eq!(
        Command::decode(&newer),
        Err(CommandError::UnsupportedVersion {
            version: 1,
            supported: 0
        })
    );
}

#[test]
fn key_that_is_not_utf8_is_refused() {
    // Field 3 (delete) { field 1 (key): 0xff }.
    assert_eq!(
        Command::decode(&[0x1a, 0x03, 0x0a, 0x01, 0xff]),
        Err(CommandError::KeyNotUtf8)
    );
}

#[test]
fn truncated_command_is_undecodable() {
    let bytes = encode(Some((1, 2)), put("key", b"value"));
    assert!(matches!(
        Command::decode(&bytes[..bytes.len() - 1]),
        Err(CommandError::Undecodable(_))
    ));
}
