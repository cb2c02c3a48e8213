//! `raftkv certs`: a cluster CA, a certificate per node and one for a client, as PEM files.
//!
//! ```text
//!  OUT/ca.pem, ca-key.pem           the cluster CA (reused when both exist: adding a node later
//!                                   signs its certificate with the same CA)
//!  OUT/node-N.pem, node-N-key.pem   node N: DNS name `node-N` (its identity among peers, see
//!                                   raft_node::transport::tls), the --ip and --dns names (what
//!                                   HTTPS clients and the other nodes verify), server and
//!                                   client use: --tls-cert and --peer-tls-cert alike
//!  OUT/client.pem, client-key.pem   a client certificate (client use only, no node name), for
//!                                   clusters run with --tls-ca
//! ```
//!
//! Existing files are never overwritten without `--force`, and keys are written readable by
//! their owner only (mode 0600), created so from the start rather than narrowed afterwards.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid: long enough that it is not what expires first.
const CA_DAYS: i64 = 3650;

/// Mode of key files: readable and writable by their owner only.
const KEY_FILE_MODE: u32 = 0o600;

/// Mode of certificate files, which are public.
const CERTIFICATE_FILE_MODE: u32 = 0o644;

/// `raftkv certs` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct CertsArgs {
    /// Directory to write the files into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Node ids, comma-separated: one certificate per node (node-ID.pem, node-ID-key.pem).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<u64>,
    /// An IP address the node certificates are valid for, as clients and other nodes reach
    /// them: `IP` for every node, `ID=IP` for node ID only. Repeat or separate with commas.
    /// Without --ip and --dns: 127.0.0.1, ::1 and localhost.
    #[arg(long, value_delimiter = ',')]
    pub ip: Vec<String>,
    /// A DNS name the node certificates are valid for: `NAME` for every node, `ID=NAME` for
    /// node ID only. Repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<String>,
    /// Days the node and client certificates are valid (the CA: ten years).
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Write no client certificate (when adding nodes to a directory that has one).
    #[arg(long)]
    pub no_client: bool,
    /// Overwrite existing files (a new CA too, which invalidates every certificate it signed).
    #[arg(long)]
    pub force: bool,
}

/// The names one node certificate is valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Names {
    ips: Vec<IpAddr>,
    dns: Vec<String>,
}

/// Runs `raftkv certs`: writes the files and lists them on stdout; exit 2 on a usage error or
/// a file in the way, 1 when writing fails.
pub fn run(args: &CertsArgs) -> ExitCode {
    match generate(args) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(CertsError::Usage(reason)) => {
            eprintln!("raftkv: {reason}");
            ExitCode::from(2)
        }
        Err(CertsError::Failed(reason)) => {
            eprintln!("raftkv: {reason}");
            ExitCode::from(1)
        }
    }
}

/// Why `raftkv certs` wrote nothing (or not everything).
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The arguments cannot be used, or a file is in the way: nothing was written.
    #[error("{0}")]
    Usage(String),
    /// Generating or writing failed part way.
    #[error("{0}")]
    Failed(String),
}

/// Writes the CA (unless both its files exist and `--force` is not given), the node
/// certificates and the client certificate into `args.out`; returns the files written.
pub fn generate(args: &CertsArgs) -> Result<Vec<PathBuf>, CertsError> {
    let names = names_per_node(args)?;
    if args.days == 0 {
        return Err(CertsError::Usage("--days must be at least 1".into()));
    }
    let out = &args.out;
    let ca_path = out.join("ca.pem");
    let ca_key_path = out.join("ca-key.pem");
    let reuse_ca = !args.force && ca_path.exists() && ca_key_path.exists();
    let mut targets = Vec::new();
    if !reuse_ca {
        targets.extend([ca_path.clone(), ca_key_path.clone()]);
    }
    for id in names.keys() {
        targets.extend([
            out.join(format!("node-{id}.pem")),
            out.join(format!("node-{id}-key.pem")),
        ]);
    }
    if !args.no_client {
        targets.extend([out.join("client.pem"), out.join("client-key.pem")]);
    }
    if !args.force {
        // Checked before anything is written, so a refusal leaves the directory as it was.
        let existing: Vec<String> = targets
            .iter()
            .filter(|path| path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(CertsError::Usage(format!(
                "refusing to overwrite {} (give --force to replace them)",
                existing.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|error| CertsError::Failed(format!("cannot create {}: {error}", out.display())))?;

    let failed = |what: &str, error: rcgen::Error| CertsError::Failed(format!("{what}: {error}"));
    let now = OffsetDateTime::now_utc();
    let mut written = Vec::new();
    let (issuer, ca_certificate) = if reuse_ca {
        let key_pem = read_text(&ca_key_path)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|error| failed(&format!("{}", ca_key_path.display()), error))?;
        let certificate = raft_node::transport::tls::read_certificates(&ca_path)
            .map_err(|error| CertsError::Failed(error.to_string()))?;
        // The issuer's name and key identifier are those of the CA this command makes (rcgen
        // reads them from an existing certificate only with an X.509 parser the build does
        // not otherwise need); every certificate signed is verified against ca.pem below, so
        // a CA made elsewhere is refused rather than used wrongly.
        (Issuer::new(ca_params(), key), certificate[0].clone())
    } else {
        let key = KeyPair::generate().map_err(|error| failed("the CA key", error))?;
        let mut params = ca_params();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(CA_DAYS);
        let certificate = params
            .self_signed(&key)
            .map_err(|error| failed("the CA certificate", error))?;
        write_file(
            &ca_path,
            certificate.pem().as_bytes(),
            CERTIFICATE_FILE_MODE,
        )?;
        write_file(&ca_key_path, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
        written.extend([ca_path.clone(), ca_key_path]);
        (Issuer::new(params, key), certificate.der().clone())
    };
    // Whether a certificate just signed verifies against the CA, as its users will check it.
    let verify = |certificate: &rcgen::Certificate, key: &KeyPair| {
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|error| CertsError::Failed(error.to_string()))?;
        raft_node::transport::tls::PeerTls::new(
            vec![ca_certificate.clone()],
            vec![certificate.der().clone()],
            key,
        )
        .map(drop)
        .map_err(|error| {
            CertsError::Failed(format!(
                "{} cannot sign certificates that verify (was it made by `raftkv certs`?): \
                 {error}",
                ca_path.display()
            ))
        })
    };

    let validity = |params: &mut CertificateParams| {
        // An hour back, so that a node whose clock is a little behind accepts it at once.
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(i64::from(args.days));
    };
    for (id, names) in &names {
        let key = KeyPair::generate().map_err(|error| failed("a node key", error))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("raftkv node {id}"));
        let node_name = format!("{}{id}", raft_node::transport::tls::NODE_NAME_PREFIX);
        params.subject_alt_names = std::iter::once(node_name)
            .chain(names.dns.iter().cloned())
            .map(|name| {
                name.clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| CertsError::Failed(format!("`{name}` is not a valid DNS name")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        params
            .subject_alt_names
            .extend(names.ips.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // One certificate for every role a node has: HTTPS server, peer server and client,
        // and client of the other nodes' HTTPS.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let certificate = params
            .signed_by(&key, &issuer)
            .map_err(|error| failed(&format!("node {id}'s certificate"), error))?;
        verify(&certificate, &key)?;
        let certificate_path = out.join(format!("node-{id}.pem"));
        let key_path = out.join(format!("node-{id}-key.pem"));
        write_file(
            &certificate_path,
            certificate.pem().as_bytes(),
            CERTIFICATE_FILE_MODE,
        )?;
        write_file(&key_path, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
        written.extend([certificate_path, key_path]);
    }

    if !args.no_client {
        let key = KeyPair::generate().map_err(|error| failed("the client key", error))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "raftkv client");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Client use only, and no `node-N` name: it cannot serve, nor speak Raft.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params);
        let certificate = params
            .signed_by(&key, &issuer)
            .map_err(|error| failed("the client certificate", error))?;
        verify(&certificate, &key)?;
        let certificate_path = out.join("client.pem");
        let key_path = out.join("client-key.pem");
        write_file(
            &certificate_path,
            certificate.pem().as_bytes(),
            CERTIFICATE_FILE_MODE,
        )?;
        write_file(&key_path, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
        written.extend([certificate_path, key_path]);
    }
    Ok(written)
}

/// The CA's name, role and key usages (validity aside): what its certificate says, and what
/// signing with it needs to know.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "raftkv cluster CA");
    // Path length 0: the CA signs node and client certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The names of each node's certificate: `--ip` and `--dns` values without an id go to every
/// node, `ID=VALUE` ones to node ID only.
fn names_per_node(args: &CertsArgs) -> Result<BTreeMap<u64, Names>, CertsError> {
    let usage = |reason: String| CertsError::Usage(reason);
    let mut nodes: BTreeMap<u64, Names> = BTreeMap::new();
    for &id in &args.nodes {
        if id == 0 {
            return Err(usage("node ids start at 1".into()));
        }
        if nodes.insert(id, Names::default()).is_some() {
            return Err(usage(format!("node {id} is listed twice in --nodes")));
        }
    }
    if nodes.is_empty() {
        return Err(usage("--nodes names no node".into()));
    }
    let defaults = args.ip.is_empty() && args.dns.is_empty();
    let split = |value: &str| -> Result<(Option<u64>, String), CertsError> {
        match value.split_once('=') {
            Some((id, name)) => {
                let id: u64 = id
                    .trim()
                    .parse()
                    .map_err(|_| usage(format!("`{value}`: `{id}` is not a node id")))?;
                if !nodes.contains_key(&id) {
                    return Err(usage(format!("`{value}`: node {id} is not in --nodes")));
                }
                Ok((Some(id), name.trim().to_string()))
            }
            None => Ok((None, value.trim().to_string())),
        }
    };
    let mut assignments = Vec::new();
    for value in args.ip.iter().filter(|value| !value.trim().is_empty()) {
        let (id, text) = split(value)?;
        let ip: IpAddr = text
            .parse()
            .map_err(|_| usage(format!("--ip `{value}`: `{text}` is not an IP address")))?;
        assignments.push((id, Some(ip), None));
    }
    for value in args.dns.iter().filter(|value| !value.trim().is_empty()) {
        let (id, name) = split(value)?;
        // rustls' check, the one clients apply: rcgen would take any ASCII.
        if rustls::pki_types::DnsName::try_from(name.as_str()).is_err() {
            return Err(usage(format!(
                "--dns `{value}`: `{name}` is not a valid DNS name"
            )));
        }
        assignments.push((id, None, Some(name)));
    }
    if defaults {
        assignments.push((None, Some(IpAddr::from([127, 0, 0, 1])), None));
        assignments.push((None, Some(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])), None));
        assignments.push((None, None, Some("localhost".to_string())));
    }
    for (id, ip, dns) in assignments {
        for (node, names) in nodes.iter_mut() {
            if id.is_some_and(|id| id != *node) {
                continue;
            }
            if let Some(ip) = ip.filter(|ip| !names.ips.contains(ip)) {
                names.ips.push(ip);
            }
            if let Some(dns) = dns.as_ref().filter(|dns| !names.dns.contains(dns)) {
                names.dns.push(dns.clone());
            }
        }
    }
    Ok(nodes)
}

fn read_text(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path)
        .map_err(|error| CertsError::Failed(format!("cannot read {}: {error}", path.display())))
}

/// Writes `contents` to `path` with `mode`. A new file gets the mode at creation, so a key is
/// never readable by others, not even for a moment; a replaced one (`--force`) is narrowed
/// before anything is written into it.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let failed = |error: std::io::Error| {
        CertsError::Failed(format!("cannot write {}: {error}", path.display()))
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::NodeId;
    use raft_node::transport::tls::PeerTls;

    fn args(out: &Path) -> CertsArgs {
        CertsArgs {
            out: out.to_path_buf(),
            nodes: vec![1, 2, 3],
            ip: Vec::new(),
            dns: Vec::new(),
            days: 30,
            no_client: false,
            force: false,
        }
    }

    #[test]
    fn a_ca_node_and_client_certificates_are_written_keys_private() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let written = generate(&args(dir.path())).expect("generated");
        let names: Vec<String> = written
            .iter()
            .map(|path| {
                path.file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca-key.pem",
                "node-1.pem",
                "node-1-key.pem",
                "node-2.pem",
                "node-2-key.pem",
                "node-3.pem",
                "node-3-key.pem",
                "client.pem",
                "client-key.pem"
            ]
        );
        for path in &written {
            let mode = std::fs::metadata(path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777;
            let is_key = path.to_string_lossy().ends_with("-key.pem");
            assert_eq!(
                mode,
                if is_key { 0o600 } else { 0o644 },
                "{}",
                path.display()
            );
        }
        // Each node's files make a valid peer TLS setting for that node, and only that node.
        let file = |name: &str| dir.path().join(name);
        for id in 1..=3u64 {
            let tls = PeerTls::from_pem_files(
                &file("ca.pem"),
                &file(&format!("node-{id}.pem")),
                &file(&format!("node-{id}-key.pem")),
            )
            .expect("a valid peer setting");
            tls.check_identity(NodeId(id)).expect("names its node");
            assert!(tls.check_identity(NodeId(id % 3 + 1)).is_err());
        }
        // The client certificate verifies against the CA but names no node.
        let client = PeerTls::from_pem_files(
            &file("ca.pem"),
            &file("client.pem"),
            &file("client-key.pem"),
        )
        .expect("signed by the CA");
        assert!(client.check_identity(NodeId(1)).is_err());
    }

    #[test]
    fn existing_files_are_kept_unless_forced_and_a_later_node_reuses_the_ca() {
        let dir = tempfile::tempdir().expect("temporary directory");
        generate(&args(dir.path())).expect("generated");
        let ca_before = std::fs::read(dir.path().join("ca.pem")).expect("a CA");
        let error = generate(&args(dir.path())).expect_err("files in the way");
        assert!(matches!(error, CertsError::Usage(_)), "{error}");
        assert!(error.to_string().contains("node-1.pem"), "{error}");
        assert!(error.to_string().contains("--force"), "{error}");

        // Node 4, later: signed by the same CA, which stays as it was.
        let mut later = args(dir.path());
        later.nodes = vec![4];
        later.no_client = true;
        let written = generate(&later).expect("node 4 added");
        assert_eq!(written.len(), 2);
        assert_eq!(
            std::fs::read(dir.path().join("ca.pem")).expect("a CA"),
            ca_before
        );
        let file = |name: &str| dir.path().join(name);
        PeerTls::from_pem_files(
            &file("ca.pem"),
            &file("node-4.pem"),
            &file("node-4-key.pem"),
        )
        .expect("signed by the existing CA");

        let mut forced = args(dir.path());
        forced.force = true;
        generate(&forced).expect("replaced");
        assert_ne!(
            std::fs::read(dir.path().join("ca.pem")).expect("a CA"),
            ca_before
        );
    }

    #[test]
    fn names_go_to_every_node_or_to_the_one_named() {
        let mut args = args(Path::new("unused"));
        args.ip = vec!["10.0.0.9".into(), "2=10.0.0.2".into()];
        args.dns = vec!["kv.example".into(), "3=node3.example".into()];
        let names = names_per_node(&args).expect("valid");
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        assert_eq!(names[&1].ips, [ip("10.0.0.9")]);
        assert_eq!(names[&2].ips, [ip("10.0.0.9"), ip("10.0.0.2")]);
        assert_eq!(names[&3].dns, ["kv.example", "node3.example"]);
        // Without any: loopback and localhost.
        args.ip.clear();
        args.dns.clear();
        let names = names_per_node(&args).expect("valid");
        assert_eq!(names[&1].ips, [ip("127.0.0.1"), ip("::1")]);
        assert_eq!(names[&1].dns, ["localhost"]);
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let out = dir.path().join("certs");
        for (change, reason) in [
            (
                Box::new(|args: &mut CertsArgs| args.ip = vec!["nowhere".into()])
                    as Box<dyn Fn(&mut CertsArgs)>,
                "not an IP address",
            ),
            (
                Box::new(|args| args.ip = vec!["7=10.0.0.1".into()]),
                "not in --nodes",
            ),
            (Box::new(|args| args.nodes = vec![1, 1]), "twice"),
            (Box::new(|args| args.nodes = vec![0]), "start at 1"),
            (
                Box::new(|args| args.dns = vec!["bad name!".into()]),
                "not a valid DNS name",
            ),
            (Box::new(|args| args.days = 0), "--days"),
        ] {
            let mut args = args(&out);
            change(&mut args);
            let error = generate(&args).expect_err(reason).to_string();
            assert!(error.contains(reason), "{reason}: {error}");
        }
        assert!(!out.exists(), "nothing was written");
    }
}
