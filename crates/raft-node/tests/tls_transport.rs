//! The TCP transport with mutual TLS, over real sockets on 127.0.0.1: peers whose certificates
//! come from one CA exchange messages both ways; a node with a certificate from another CA, a
//! plain-TCP dialer, and a holder of a valid certificate speaking as another node are refused
//! and counted. Certificates are made by each test with rcgen; no key is checked in. Every wait
//! has a deadline.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raft_core::{Index, Message, MessageBody, NodeId, Term};
use raft_node::transport::tcp::{TcpConfig, TcpCounters, TcpTransport};
use raft_node::transport::tls::{node_name, PeerMaterial, PeerTls, TlsError};
use raft_node::transport::Transport;
use raft_node::wire::{encode_frame, encode_message_frame, Handshake, PROTOCOL_VERSION};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use common::{wait_until, within_deadline};

const CLUSTER: &str = "tls-cluster";

/// A certificate authority made for one test.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).expect("a CA certificate").into();
        Authority {
            issuer: Issuer::new(params, key),
            certificate,
        }
    }

    /// A certificate for both TLS roles, valid for `names`, and its key.
    fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("a key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("parameters");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![certificate.into()], key)
    }

    /// Node `id`'s peer TLS settings: a certificate naming `node-{id}` (and 127.0.0.1, as
    /// `raftkv certs` makes them), trusting this authority only.
    fn peer_tls(&self, id: u64) -> PeerTls {
        let (chain, key) = self.issue(&[&node_name(NodeId(id)), "127.0.0.1"]);
        PeerTls::new(vec![self.certificate.clone()], chain, key).expect("valid TLS settings")
    }
}

struct Node {
    transport: TcpTransport,
    inbound: mpsc::Receiver<Message>,
    address: SocketAddr,
}

impl Node {
    fn counters(&self) -> TcpCounters {
        self.transport.counters()
    }
}

fn config(id: u64, peers: &[(u64, SocketAddr)], tls: Option<PeerTls>) -> TcpConfig {
    let peers = peers
        .iter()
        .map(|&(peer, address)| (NodeId(peer), address))
        .collect();
    let mut config = TcpConfig::new(NodeId(id), CLUSTER, peers);
    config.reconnect_backoff_min = Duration::from_millis(10);
    config.reconnect_backoff_max = Duration::from_millis(100);
    config.io_timeout = Duration::from_secs(2);
    config.tls = tls;
    config
}

fn start(config: TcpConfig, listener: TcpListener) -> Node {
    let (sender, inbound) = mpsc::channel(1024);
    let address = listener.local_addr().expect("bound");
    let transport = TcpTransport::start(config, listener, sender).expect("starts");
    Node {
        transport,
        inbound,
        address,
    }
}

/// Two nodes, 1 and 2, each dialing the other, with the TLS settings given.
async fn start_pair(tls_1: Option<PeerTls>, tls_2: Option<PeerTls>) -> (Node, Node) {
    let listener_1 = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let listener_2 = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address_1 = listener_1.local_addr().expect("bound");
    let address_2 = listener_2.local_addr().expect("bound");
    let node_1 = start(config(1, &[(2, address_2)], tls_1), listener_1);
    let node_2 = start(config(2, &[(1, address_1)], tls_2), listener_2);
    (node_1, node_2)
}

fn heartbeat(from: u64, to: u64, read_round: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(7),
        body: MessageBody::Heartbeat {
            commit: Index(3),
            read_round,
        },
    }
}

/// Heartbeats and a 256 KiB snapshot chunk (several TLS records), marked with their order.
fn messages_between(from: u64, to: u64) -> Vec<Message> {
    let mut messages: Vec<Message> = (0..40).map(|round| heartbeat(from, to, round)).collect();
    messages.insert(
        20,
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(7),
            body: MessageBody::InstallSnapshot {
                meta: raft_core::SnapshotMeta {
                    last_included: raft_core::LogId::new(Term(6), Index(30)),
                    configuration: raft_core::Configuration::new([NodeId(1), NodeId(2)]),
                },
                offset: 0,
                data: (0..256 * 1024).map(|i| (i % 251) as u8).collect(),
                done: false,
            },
        },
    );
    messages
}

/// Sends heartbeats from `sender` to node `to` for a while, so that several connection
/// attempts are made; returns what `receiver` got meanwhile.
async fn send_for_a_while(sender: &TcpTransport, from: u64, to: u64, receiver: &mut Node) -> usize {
    let mut received = 0;
    for round in 0..20 {
        sender.send(heartbeat(from, to, round));
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(10), receiver.inbound.recv()).await
        {
            received += 1;
        }
    }
    received
}

fn handshake_frame(from: u64, to: u64) -> BytesMut {
    let mut frame = BytesMut::new();
    encode_frame(
        &Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: CLUSTER.into(),
            from,
            to,
            from_address: String::new(),
        },
        &mut frame,
    );
    frame
}

/// Dials `address` with a hand-made TLS client (trusting `trusted`, presenting `chain`), then
/// sends a handshake frame from `from` to node 1 and a heartbeat, and reads until the
/// connection ends. This is what a modified node could do; the transport's own constructor
/// refuses such settings.
async fn dial_by_hand(
    address: SocketAddr,
    trusted: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    from: u64,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("a CA certificate");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("a client certificate");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let stream = TcpStream::connect(address).await.expect("connects");
    let server_name = ServerName::try_from(node_name(NodeId(1))).expect("a DNS name");
    let Ok(mut stream) = connector.connect(server_name, stream).await else {
        return; // Refused already.
    };
    let mut bytes = handshake_frame(from, 1);
    encode_message_frame(&heartbeat(from, 1, 99), &mut bytes);
    // The refusal may arrive before or during the write; either way the connection ends.
    if stream.write_all(&bytes).await.is_ok() && stream.flush().await.is_ok() {
        let mut buffer = [0u8; 64];
        let read = within_deadline("the connection to close", stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "unexpected read {read:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_certificates_from_one_ca_exchange_messages_both_ways() {
    let authority = Authority::new("cluster CA");
    let (mut node_1, mut node_2) =
        start_pair(Some(authority.peer_tls(1)), Some(authority.peer_tls(2))).await;
    for (from, to) in [(1, 2), (2, 1)] {
        let (sender, receiver) = if from == 1 {
            (&node_1, &mut node_2)
        } else {
            (&node_2, &mut node_1)
        };
        let expected = messages_between(from, to);
        for message in &expected {
            sender.transport.send(message.clone());
        }
        let mut received = Vec::new();
        while received.len() < expected.len() {
            let message = within_deadline("every message", receiver.inbound.recv())
                .await
                .expect("the channel stays open");
            received.push(message);
        }
        assert_eq!(
            received, expected,
            "from {from} to {to}: intact and in order"
        );
    }
    for node in [&node_1, &node_2] {
        // A message is counted just after it is handed over, so the count may trail a moment.
        wait_until("every message counted", || {
            node.counters().messages_received == 41
        })
        .await;
        let counters = node.counters();
        assert_eq!(counters.tls_handshakes_failed, 0, "{counters:?}");
        assert_eq!(counters.connections_refused, 0, "{counters:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_is_refused_at_the_tls_handshake() {
    let authority = Authority::new("cluster CA");
    let foreign = Authority::new("foreign CA");
    // Node 2 has a whole PKI of its own: it trusts neither node 1 nor is trusted by it.
    let (mut node_1, mut node_2) =
        start_pair(Some(authority.peer_tls(1)), Some(foreign.peer_tls(2))).await;
    let received_by_1 = send_for_a_while(&node_2.transport, 2, 1, &mut node_1).await;
    let received_by_2 = send_for_a_while(&node_1.transport, 1, 2, &mut node_2).await;
    wait_until("both ends to count failed handshakes", || {
        node_1.counters().tls_handshakes_failed >= 2 && node_2.counters().tls_handshakes_failed >= 2
    })
    .await;
    assert_eq!((received_by_1, received_by_2), (0, 0));

    // A dialer that trusts the cluster CA (so it accepts node 1's certificate) but presents
    // one from the foreign CA: node 1 refuses it during the handshake, before any frame.
    let before = node_1.counters();
    let (chain, key) = foreign.issue(&[&node_name(NodeId(2))]);
    dial_by_hand(node_1.address, &authority.certificate, chain, key, 2).await;
    wait_until("node 1 to count the refused handshake", || {
        node_1.counters().tls_handshakes_failed > before.tls_handshakes_failed
    })
    .await;
    let after = node_1.counters();
    assert_eq!(after.messages_received, 0, "{after:?}");
    assert!(node_1.inbound.try_recv().is_err(), "nothing was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_dialer_is_refused_by_a_tls_node_and_a_tls_dialer_by_a_plain_node() {
    let authority = Authority::new("cluster CA");
    let (mut node_1, mut node_2) = start_pair(Some(authority.peer_tls(1)), None).await;
    // Plain node 2's handshake frame is no TLS ClientHello.
    let received_by_1 = send_for_a_while(&node_2.transport, 2, 1, &mut node_1).await;
    wait_until("the TLS node to count the plain dialer", || {
        node_1.counters().tls_handshakes_failed >= 1
    })
    .await;
    // TLS node 1's ClientHello is no handshake frame: the plain node refuses it.
    let received_by_2 = send_for_a_while(&node_1.transport, 1, 2, &mut node_2).await;
    wait_until("the plain node to refuse the TLS dialer", || {
        node_2.counters().connections_refused >= 1
    })
    .await;
    assert_eq!((received_by_1, received_by_2), (0, 0));
    assert_eq!(node_1.counters().messages_received, 0);
    assert_eq!(node_2.counters().messages_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_cannot_speak_as_another_node() {
    let authority = Authority::new("cluster CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let mut node_1 = start(config(1, &[], Some(authority.peer_tls(1))), listener);
    // Node 3's certificate, signed by the right CA, in a handshake that claims node 2: the
    // TLS handshake succeeds, the handshake frame is refused.
    let (chain, key) = authority.issue(&[&node_name(NodeId(3))]);
    dial_by_hand(node_1.address, &authority.certificate, chain, key, 2).await;
    wait_until("node 1 to refuse the impostor", || {
        node_1.counters().connections_refused >= 1
    })
    .await;
    let counters = node_1.counters();
    assert_eq!(counters.tls_handshakes_failed, 0, "{counters:?}");
    assert_eq!(counters.messages_received, 0, "{counters:?}");
    assert!(node_1.inbound.try_recv().is_err(), "nothing was delivered");
    assert!(
        node_1.transport.peers().is_empty(),
        "an impostor is not admitted as a peer"
    );

    // A client certificate (no `node-N` name) cannot speak Raft at all.
    let (chain, key) = authority.issue(&["127.0.0.1"]);
    dial_by_hand(node_1.address, &authority.certificate, chain, key, 3).await;
    wait_until("node 1 to refuse the client certificate", || {
        node_1.counters().connections_refused >= 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_certificate_files_are_refused_at_start_with_a_reason() {
    let authority = Authority::new("cluster CA");
    let foreign = Authority::new("foreign CA");
    // Signed by another CA than the one given.
    let (chain, key) = foreign.issue(&[&node_name(NodeId(1))]);
    let error = PeerTls::new(vec![authority.certificate.clone()], chain, key)
        .expect_err("not signed by the CA")
        .to_string();
    assert!(error.contains("does not verify against the CA"), "{error}");
    // A key that is not the certificate's.
    let (chain, _) = authority.issue(&[&node_name(NodeId(1))]);
    let (_, other_key) = authority.issue(&[&node_name(NodeId(1))]);
    let error = PeerTls::new(vec![authority.certificate.clone()], chain, other_key)
        .expect_err("mismatched key")
        .to_string();
    assert!(error.contains("do not fit"), "{error}");
    // Node 2's certificate given to node 1.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let (sender, _inbound) = mpsc::channel(16);
    let error = TcpTransport::start(
        config(1, &[], Some(authority.peer_tls(2))),
        listener,
        sender,
    )
    .expect_err("another node's certificate")
    .to_string();
    assert!(error.contains("node-1"), "{error}");
    // PEM that holds no certificate, or no key.
    let error = raft_node::transport::tls::parse_certificates(b"nothing here", "ca.pem")
        .expect_err("no certificate");
    assert!(
        matches!(&error, TlsError::Pem { what, .. } if what == "ca.pem"),
        "{error}"
    );
    let error = raft_node::transport::tls::parse_private_key(b"", "key.pem")
        .expect_err("no key")
        .to_string();
    assert!(error.contains("no PRIVATE KEY"), "{error}");
    let error = PeerTls::from_pem_files(
        std::path::Path::new("/nonexistent/ca.pem"),
        std::path::Path::new("/nonexistent/node.pem"),
        std::path::Path::new("/nonexistent/node-key.pem"),
    )
    .expect_err("missing files")
    .to_string();
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_installed_in_a_running_transport_is_used_by_the_next_handshakes() {
    let authority = Authority::new("cluster CA");
    let foreign = Authority::new("foreign CA");
    // Node 2 starts with a PKI of its own: refused both ways, as in the test above.
    let tls_2 = foreign.peer_tls(2);
    let (mut node_1, mut node_2) =
        start_pair(Some(authority.peer_tls(1)), Some(tls_2.clone())).await;
    assert_eq!(
        send_for_a_while(&node_2.transport, 2, 1, &mut node_1).await,
        0
    );
    wait_until("node 1 to refuse node 2's certificate", || {
        node_1.counters().tls_handshakes_failed >= 1
    })
    .await;

    // Material for another node is refused before it is installed (the caller's check).
    let (chain, key) = authority.issue(&[&node_name(NodeId(3))]);
    let wrong_node = PeerMaterial::new(vec![authority.certificate.clone()], chain, key)
        .expect("valid for node 3");
    let error = wrong_node
        .check_identity(NodeId(2))
        .expect_err("not node 2's")
        .to_string();
    assert!(error.contains("node-2"), "{error}");
    // Material whose certificate the new CA did not sign is refused as at start.
    let (chain, key) = foreign.issue(&[&node_name(NodeId(2))]);
    let error = PeerMaterial::new(vec![authority.certificate.clone()], chain, key)
        .expect_err("not signed by the CA")
        .to_string();
    assert!(error.contains("does not verify against the CA"), "{error}");

    // Node 2 moves to the cluster's CA and a certificate from it, in the running transport
    // (through a clone of its settings, as a reload does): every new handshake uses them, so
    // the two exchange messages both ways once node 2's next dial and node 1's next dial go.
    let (chain, key) = authority.issue(&[&node_name(NodeId(2)), "127.0.0.1"]);
    let material =
        PeerMaterial::new(vec![authority.certificate.clone()], chain, key).expect("valid");
    material.check_identity(NodeId(2)).expect("node 2's");
    tls_2.install(material);
    tls_2.check_identity(NodeId(2)).expect("still node 2's");
    let mut from_2 = 0;
    let mut from_1 = 0;
    within_deadline("messages to flow both ways after the install", async {
        while from_2 == 0 || from_1 == 0 {
            from_2 += send_for_a_while(&node_2.transport, 2, 1, &mut node_1).await;
            from_1 += send_for_a_while(&node_1.transport, 1, 2, &mut node_2).await;
        }
    })
    .await;
    assert!(from_2 > 0 && from_1 > 0, "{from_2} {from_1}");
}

#[test]
fn tls_settings_never_print_their_key() {
    let authority = Authority::new("cluster CA");
    let printed = format!("{:?}", authority.peer_tls(1));
    assert_eq!(printed, "PeerTls { .. }");
}
