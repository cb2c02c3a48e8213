//! `raftkv dev`: a local cluster in one command. Each node is a `raftkv serve` child process
//! with its own data directory and log file; Ctrl-C stops them all cleanly.
//!
//! ```text
//!  raftkv dev ─► spawn raftkv serve --id 1..N (logs: DATA/node-N.log)
//!             ─► with --secure: first a CA, node certificates (DATA/certs/) and tokens
//!                (DATA/tokens.toml), made once and reused; the nodes then speak TLS to each
//!                other (mutual) and HTTPS to clients, and want a bearer token
//!             ─► wait until a leader is elected, print endpoints (HTTP and etcd gRPC) and
//!                examples (curl, raftkv, etcdctl)
//!             ─► a node exits (killed to try failover): say so, keep the others running
//!             ─► Ctrl-C / SIGTERM / every node gone ─► SIGTERM to every node ─► wait ─► exit
//! ```

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use raftkv_client::{Client, ClientOptions, ClientTls};
use tokio::process::{Child, Command};

/// `raftkv dev` options.
#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// Where the nodes keep their data and logs (node-1/, node-1.log, ...). Kept across runs,
    /// so a restarted cluster has its data back; delete it to start empty.
    #[arg(long, env = "RAFTKV_DEV_DATA_DIR", default_value = "./raftkv-data")]
    pub data_dir: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// HTTP port of node 1; node N listens on this + N - 1.
    #[arg(long, default_value_t = 8001)]
    pub http_port: u16,
    /// Raft port of node 1; node N listens on this + N - 1.
    #[arg(long, default_value_t = 9001)]
    pub raft_port: u16,
    /// etcd v3 gRPC port of node 1 (etcdctl and etcd's client libraries talk to it); node N
    /// listens on this + N - 1. The default is etcd's client port, so `etcdctl` finds node 1
    /// without --endpoints (2380, node 2's, is etcd's peer port: beside a real etcd, pick
    /// another base).
    #[arg(long, default_value_t = 2379)]
    pub grpc_port: u16,
    /// Interface the nodes listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Run the cluster as a secure deployment would: mutual TLS between the nodes, HTTPS for
    /// clients and bearer tokens (an admin and a read-only one). The CA, certificates and
    /// tokens are made in the data directory on the first run and reused after.
    #[arg(long)]
    pub secure: bool,
}

/// What a `--secure` cluster's nodes and clients are started with.
struct Secure {
    /// `raftkv certs` output: ca.pem, node-N.pem, node-N-key.pem, client.pem ...
    certs: PathBuf,
    /// The `--auth-tokens` file.
    tokens: PathBuf,
    /// The admin token of `tokens`, which the examples and the readiness check use.
    admin_token: String,
}

impl Secure {
    /// Makes the certificates and the token file that are missing in `data_dir`.
    fn prepare(data_dir: &Path, nodes: u64, host: &str) -> Result<Secure, String> {
        let certs = data_dir.join("certs");
        let missing: Vec<u64> = (1..=nodes)
            .filter(|id| {
                !certs.join(format!("node-{id}.pem")).exists()
                    || !certs.join(format!("node-{id}-key.pem")).exists()
            })
            .collect();
        if !missing.is_empty() {
            let is_ip = host.parse::<std::net::IpAddr>().is_ok();
            let local = host == "127.0.0.1" || host == "localhost";
            let args = crate::certs::CertsArgs {
                out: certs.clone(),
                nodes: missing,
                // The defaults (127.0.0.1, ::1, localhost) suit the usual loopback cluster.
                ip: if is_ip && !local {
                    vec![host.to_string()]
                } else {
                    Vec::new()
                },
                dns: if is_ip || local {
                    Vec::new()
                } else {
                    vec![host.to_string()]
                },
                days: 825,
                no_client: certs.join("client.pem").exists(),
                // Files of a node made before are replaced when one of the pair went missing.
                force: false,
            };
            crate::certs::generate(&args).map_err(|error| {
                format!(
                    "cannot make the certificates in {}: {error}",
                    certs.display()
                )
            })?;
        }
        let tokens = data_dir.join("tokens.toml");
        if !tokens.exists() {
            write_dev_tokens(&tokens)?;
        }
        let store = crate::auth::TokenStore::load(&tokens).map_err(|error| error.to_string())?;
        let admin_token = store
            .first_admin_token()
            .ok_or_else(|| format!("{} holds no admin token in clear", tokens.display()))?
            .secret()
            .to_string();
        Ok(Secure {
            certs,
            tokens,
            admin_token,
        })
    }

    /// The `raftkv serve` flags of node `id`.
    fn serve_args(&self, id: u64) -> Vec<std::ffi::OsString> {
        let certificate = self.certs.join(format!("node-{id}.pem"));
        let key = self.certs.join(format!("node-{id}-key.pem"));
        let ca = self.certs.join("ca.pem");
        let mut args = Vec::new();
        for (flag, path) in [
            ("--tls-cert", &certificate),
            ("--tls-key", &key),
            ("--peer-tls-cert", &certificate),
            ("--peer-tls-key", &key),
            ("--peer-tls-ca", &ca),
            ("--auth-tokens", &self.tokens),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args
    }

    /// A client of the cluster over HTTPS with the admin token.
    fn client(&self, endpoints: &[String]) -> Result<Client, String> {
        let tls = ClientTls::from_pem_files(&self.certs.join("ca.pem"), None)
            .map_err(|error| error.to_string())?;
        Client::with_tls(endpoints, ClientOptions::default(), tls)
            .and_then(|client| client.with_bearer_token(&self.admin_token))
            .map_err(|error| error.to_string())
    }
}

/// Writes a token file with a random admin token and a random read-only one, readable by its
/// owner only.
fn write_dev_tokens(path: &Path) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let random_token = || {
        let bytes: [u8; 24] = rand::random();
        bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    let text = format!(
        "# Written by `raftkv dev --secure`: the development cluster's tokens.\n\
         [[token]]\nname = \"dev-admin\"\nrole = \"admin\"\ntoken = \"{}\"\n\n\
         [[token]]\nname = \"dev-reader\"\nrole = \"read-only\"\ntoken = \"{}\"\n",
        random_token(),
        random_token()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

struct Node {
    id: u64,
    child: Child,
    log: PathBuf,
    http: String,
    /// Where its etcd gRPC API listens.
    grpc: String,
    /// Its exit was reported.
    exited: bool,
}

/// Runs the development cluster until Ctrl-C.
pub async fn run(args: DevArgs) -> ExitCode {
    match run_cluster(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("raftkv: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run_cluster(args: DevArgs) -> Result<ExitCode, String> {
    let executable = std::env::current_exe()
        .map_err(|error| format!("cannot find the raftkv executable: {error}"))?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|error| format!("cannot create {}: {error}", args.data_dir.display()))?;
    let secure = match args.secure {
        true => Some(Secure::prepare(&args.data_dir, args.nodes, &args.host)?),
        false => None,
    };
    let port = |base: u16, id: u64| -> Result<u16, String> {
        u16::try_from(u64::from(base) + id - 1).map_err(|_| "port number out of range".to_string())
    };
    let mut peers = Vec::new();
    for id in 1..=args.nodes {
        peers.push(format!("{id}={}:{}", args.host, port(args.raft_port, id)?));
    }
    let peers = peers.join(",");
    for id in 1..=args.nodes {
        for address in [
            format!("{}:{}", args.host, port(args.http_port, id)?),
            format!("{}:{}", args.host, port(args.raft_port, id)?),
            format!("{}:{}", args.host, port(args.grpc_port, id)?),
        ] {
            if let Err(error) = std::net::TcpListener::bind(&address) {
                return Err(format!(
                    "{address} is not free ({error}); is another raftkv (or an etcd) running? \
                     (--http-port, --raft-port and --grpc-port choose other ports)"
                ));
            }
        }
    }
    // The nodes share this machine's cores: a runtime per node as wide as the machine would
    // only add threads competing for the same cores (measured: 15–20% more CPU per write).
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let worker_threads = (cores / args.nodes as usize).max(1);
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        let http = format!("{}:{}", args.host, port(args.http_port, id)?);
        let raft = format!("{}:{}", args.host, port(args.raft_port, id)?);
        let grpc = format!("{}:{}", args.host, port(args.grpc_port, id)?);
        let log = args.data_dir.join(format!("node-{id}.log"));
        let node = NodeSpec {
            id,
            http: &http,
            raft: &raft,
            grpc: &grpc,
            peers: &peers,
            worker_threads,
            secure: secure.as_ref(),
        };
        match spawn_node(&executable, &args.data_dir, &node, &log) {
            Ok(child) => nodes.push(Node {
                id,
                child,
                log,
                http,
                grpc,
                exited: false,
            }),
            Err(message) => {
                stop_all(&mut nodes).await;
                return Err(message);
            }
        }
    }
    let endpoints: Vec<String> = nodes.iter().map(|node| node.http.clone()).collect();
    println!(
        "raftkv dev: {} nodes, data in {}",
        args.nodes,
        args.data_dir.display()
    );
    let scheme = if secure.is_some() { "https" } else { "http" };
    for node in &nodes {
        println!(
            "  node {}  {scheme}://{}  etcd gRPC {scheme}://{}  (log: {})",
            node.id,
            node.http,
            node.grpc,
            node.log.display()
        );
    }
    let ready = tokio::select! {
        leader = wait_for_leader(&endpoints, secure.as_ref()) => leader,
        exited = first_exit(&mut nodes) => Err(exited),
        _ = crate::server::stop_signal() => Err("interrupted".to_string()),
    };
    match ready {
        Ok(leader) => {
            let grpc_endpoints: Vec<String> = nodes.iter().map(|node| node.grpc.clone()).collect();
            print_examples(&endpoints, &grpc_endpoints, leader, secure.as_ref());
            println!(
                "Ctrl-C stops the cluster (the data stays in {}).",
                args.data_dir.display()
            );
        }
        Err(reason) => {
            eprintln!("raftkv: the cluster did not come up: {reason}");
            print_log_tails(&nodes);
            stop_all(&mut nodes).await;
            return Ok(ExitCode::from(1));
        }
    }
    let mut running = nodes.len();
    let code = loop {
        tokio::select! {
            _ = crate::server::stop_signal() => {
                println!("stopping...");
                break ExitCode::SUCCESS;
            }
            exited = first_exit(&mut nodes) => {
                running -= 1;
                if running == 0 {
                    eprintln!("raftkv: {exited}; no node is left");
                    break ExitCode::from(1);
                }
                eprintln!("raftkv: {exited}; the other {running} keep running (Ctrl-C stops them)");
            }
        }
    };
    stop_all(&mut nodes).await;
    Ok(code)
}

/// What one node of the development cluster is started with.
struct NodeSpec<'a> {
    id: u64,
    http: &'a str,
    raft: &'a str,
    grpc: &'a str,
    peers: &'a str,
    worker_threads: usize,
    secure: Option<&'a Secure>,
}

fn spawn_node(
    executable: &Path,
    data_dir: &Path,
    node: &NodeSpec<'_>,
    log: &Path,
) -> Result<Child, String> {
    let NodeSpec {
        id,
        http,
        raft,
        grpc,
        peers,
        worker_threads,
        secure,
    } = *node;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|error| format!("cannot open {}: {error}", log.display()))?;
    let log_file_too = log_file
        .try_clone()
        .map_err(|error| format!("cannot open {}: {error}", log.display()))?;
    let mut command = Command::new(executable);
    // Settings meant for a node of another cluster (a token file, certificates, a config file)
    // must not leak into these: the flags here are the whole configuration.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RAFTKV_") && name != "RAFTKV_LOG" {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .args(["--id", &id.to_string()])
        .arg("--data-dir")
        .arg(data_dir.join(format!("node-{id}")))
        .args(["--http-addr", http, "--raft-addr", raft, "--peers", peers])
        .args(["--grpc-addr", grpc])
        // The default id, so that a node started by hand with `serve --join` joins at once.
        .args(["--cluster-id", crate::settings::DEFAULT_CLUSTER_ID])
        .args(["--worker-threads", &worker_threads.to_string()])
        .args(
            secure
                .map(|secure| secure.serve_args(id))
                .unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_file_too))
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start node {id}: {error}"))
}

/// Prints how to talk to the cluster, once it is up: its HTTP API at `endpoints`, its etcd
/// API at `grpc_endpoints`.
fn print_examples(
    endpoints: &[String],
    grpc_endpoints: &[String],
    leader: u64,
    secure: Option<&Secure>,
) {
    let first = &endpoints[0];
    let second = endpoints.get(1).unwrap_or(first);
    let all = endpoints.join(",");
    println!("cluster ready: node {leader} leads. Try:");
    match secure {
        None => {
            println!("  curl -X PUT --data-binary world http://{first}/v1/kv/hello");
            println!("  curl http://{second}/v1/kv/hello");
            println!("  curl http://{first}/v1/status");
            println!("  raftkv --endpoints {all} put greeting hi");
            println!("  raftkv get greeting        (default endpoints: 127.0.0.1:8001-8003)");
            println!("  raftkv status");
            let etcdctl = format!("etcdctl --endpoints {}", grpc_endpoints.join(","));
            println!("  {etcdctl} put foo bar       (etcd's v3 API; ETCDCTL_API=3 on etcd 3.3)");
            println!("  {etcdctl} get foo");
            println!("  {etcdctl} endpoint status -w table");
            println!("  {etcdctl} member list -w table");
        }
        Some(secure) => {
            let ca = secure.certs.join("ca.pem");
            let ca = ca.display();
            println!(
                "  export RAFTKV_CA_CERT={ca} RAFTKV_TOKEN={}   (admin; all tokens: {})",
                secure.admin_token,
                secure.tokens.display()
            );
            let curl = format!("curl --cacert {ca} -H \"Authorization: Bearer $RAFTKV_TOKEN\"");
            println!("  {curl} -X PUT --data-binary world https://{first}/v1/kv/hello");
            println!("  {curl} https://{second}/v1/kv/hello");
            println!("  curl --cacert {ca} https://{first}/v1/status      (401: no token)");
            println!("  raftkv --endpoints {all} put greeting hi");
            println!("  raftkv status");
            let https: Vec<String> = grpc_endpoints
                .iter()
                .map(|endpoint| format!("https://{endpoint}"))
                .collect();
            let etcdctl = format!(
                "etcdctl --cacert {ca} --user admin:$RAFTKV_TOKEN --endpoints {}",
                https.join(",")
            );
            println!("  {etcdctl} put foo bar");
            println!("  {etcdctl} endpoint status -w table");
        }
    }
}

/// Polls the nodes until one of them names a leader whose address is published.
async fn wait_for_leader(endpoints: &[String], secure: Option<&Secure>) -> Result<u64, String> {
    let client = match secure {
        Some(secure) => secure.client(endpoints)?,
        None => Client::new(endpoints).map_err(|error| error.to_string())?,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Ready means every node knows the same leader and where to forward to it: a node that
    // does not know the leader's HTTP address yet answers a write with a 503, which is not
    // what a quickstart's first command should see.
    loop {
        let mut agreed: Option<u64> = None;
        let mut every_node_knows = true;
        for endpoint in endpoints {
            let known = match client.status(endpoint).await {
                Ok(status) => status.leader.filter(|_| status.leader_http.is_some()),
                Err(_) => None,
            };
            match (known, agreed) {
                (Some(leader), None) => agreed = Some(leader),
                (Some(leader), Some(first)) if leader == first => {}
                _ => every_node_knows = false,
            }
        }
        if let (true, Some(leader)) = (every_node_knows, agreed) {
            return Ok(leader);
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no leader known to every node within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resolves when a node not reported before exits, describing how.
async fn first_exit(nodes: &mut [Node]) -> String {
    loop {
        for node in nodes.iter_mut().filter(|node| !node.exited) {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exited = true;
                return format!("node {} exited ({status})", node.id);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks every node to stop (SIGTERM), waits up to 10 s, then kills what is left.
async fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a pid of our own child and a valid signal number has no
            // memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    for node in nodes.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("raftkv: node {} did not stop in 10 s; killing it", node.id);
                let _ = node.child.kill().await;
            }
        }
    }
}

fn print_log_tails(nodes: &[Node]) {
    for node in nodes {
        let Ok(text) = std::fs::read_to_string(&node.log) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", node.log.display());
        for line in &lines[lines.len().saturating_sub(8)..] {
            eprintln!("{line}");
        }
    }
}
