//! Runs one page's commands for real, in order, in a temporary directory of the page's own.
//!
//! ```text
//!  DocCommand ─► shell::words ($VARs of earlier lines) ─► alias | export | NAME=value
//!     ├─ raftkv dev ...      ─► background; waits for "cluster ready"; stops the page's last cluster
//!     ├─ raftkv serve --join ─► background; waits until it is a voter
//!     ├─ raftkv serve --peers ─► background, once per machine of --peers; waits for a leader
//!     ├─ raftkv bench ...    ─► capped to 1 s or 300 operations, the cluster's real pids, its plot checked
//!     ├─ raftkv ... / curl   ─► against the page's cluster (a dev cluster if none runs yet);
//!     │                         exit status and output compared with the line's # comment
//!     └─ every address, port and absolute path through rewrite::rewrite_words
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::markdown::{DocCommand, Page};
use crate::process::{self, Background, Finished, DEADLINE};
use crate::rewrite::{rewrite_words, Place, Ports};
use crate::shell;

/// The page's running cluster.
enum Cluster {
    Dev(Background),
    /// One process per machine of a multi-machine `serve`.
    Machines(Vec<Background>),
}

/// One page's state: its directory, ports, variables and processes.
pub struct PageRunner<'a> {
    // Processes first: fields drop in order, and they must stop before the directory goes.
    cluster: Option<Cluster>,
    joined: Vec<Background>,
    page: &'a Page,
    raftkv: PathBuf,
    ports: Ports,
    env: BTreeMap<String, String>,
    /// The bearer tokens written into a token file (admin, then read-only).
    admin_token: String,
    reader_token: String,
    dir: tempfile::TempDir,
}

/// `raftkv ARGS` however the docs spell it: `raftkv`, `target/release/raftkv`,
/// `cargo run [--release] [-q] -p raftkv -- ARGS`.
pub fn raftkv_args(words: &[String]) -> Option<&[String]> {
    let program = words.first()?.as_str();
    if ["raftkv", "target/release/raftkv", "target/debug/raftkv"].contains(&program) {
        return Some(&words[1..]);
    }
    if program != "cargo" || words.get(1).map(String::as_str) != Some("run") {
        return None;
    }
    let dashes = words
        .iter()
        .position(|word| word == "--")
        .unwrap_or(words.len());
    let flags = &words[2..dashes];
    let names_raftkv = flags
        .windows(2)
        .any(|pair| pair[0] == "-p" && pair[1] == "raftkv");
    let only_known = flags
        .iter()
        .all(|flag| ["--release", "-q", "-p", "raftkv"].contains(&flag.as_str()));
    (names_raftkv && only_known).then(|| words.get(dashes + 1..).unwrap_or(&[]))
}

/// A command the runner runs (all others are checked): see the rule in docs.rs.
pub fn is_run_form(command: &DocCommand) -> bool {
    let Ok(words) = shell::words(&command.text, None) else {
        return command.origin == crate::markdown::Origin::Block;
    };
    let program: Vec<String> = words
        .iter()
        .skip_while(|word| shell::assignment(word).is_some())
        .cloned()
        .collect();
    match command.origin {
        crate::markdown::Origin::Prose => {
            raftkv_args(&program).is_some() && program.last().is_some_and(|last| last == "--help")
        }
        crate::markdown::Origin::Block => {
            program.is_empty()
                || ["alias", "export", "curl", "etcdctl"].contains(&program[0].as_str())
                || raftkv_args(&program).is_some()
        }
    }
}

/// What a line's trailing comment says to expect.
struct Expected {
    exit: i32,
    word: Option<String>,
    json: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Reads the comment conservatively: `exit N` anywhere; a JSON object (`...` for more fields)
/// when it starts with `{`; a bare word when it is alone or followed by a parenthesis.
fn expected(comment: Option<&str>) -> Expected {
    let comment = comment.unwrap_or("");
    let exit = comment
        .split("exit ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    let json = comment
        .starts_with('{')
        .then(|| comment.rfind('}').map(|end| &comment[..=end]))
        .flatten()
        .map(|object| object.replace(",...}", "}").replace(", ...}", "}"))
        .and_then(|object| serde_json::from_str(&object).ok());
    let mut parts = comment.splitn(2, ' ');
    let first = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("").trim_start();
    let bare = !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && (rest.is_empty() || rest.starts_with('('));
    Expected {
        exit,
        word: bare.then(|| first.to_string()),
        json,
    }
}

impl<'a> PageRunner<'a> {
    pub fn new(page: &'a Page, raftkv: &Path) -> PageRunner<'a> {
        let mut ports = Ports::new();
        // The client commands' default endpoints are the dev cluster's: rewritten like the rest.
        let endpoints: Vec<String> = (8001..=8003)
            .map(|port| format!("127.0.0.1:{}", ports.get(port)))
            .collect();
        let token = || format!("{:032x}", rand::random::<u128>());
        PageRunner {
            cluster: None,
            joined: Vec::new(),
            page,
            raftkv: raftkv.to_path_buf(),
            ports,
            env: BTreeMap::from([("RAFTKV_ENDPOINTS".to_string(), endpoints.join(","))]),
            admin_token: token(),
            reader_token: token(),
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Runs one command; `Ok` says what happened.
    pub fn run(&mut self, command: &DocCommand) -> Result<String, String> {
        let words = shell::words(&command.text, Some(&self.env))?;
        let assigned = words
            .iter()
            .take_while(|word| shell::assignment(word).is_some())
            .count();
        let mut command_env = BTreeMap::new();
        for word in &words[..assigned] {
            let (name, value) = shell::assignment(word).expect("counted as an assignment");
            command_env.insert(name.to_string(), self.rewrite_value(name, value)?);
        }
        let words = &words[assigned..];
        let Some(program) = words.first() else {
            let names: Vec<String> = command_env.keys().cloned().collect();
            self.env.extend(command_env);
            return Ok(format!("set {} for the lines after it", names.join(", ")));
        };
        match program.as_str() {
            "alias" => self.alias(&words[1..]),
            "export" => self.export(&words[1..]),
            "curl" => self.curl(&words[1..], command, &command_env),
            "etcdctl" => self.etcdctl(&words[1..], command, &command_env),
            _ => match raftkv_args(words) {
                Some(args) => self.raftkv(args, command, &command_env),
                None => Err(format!("`{program}` is not a program this runner runs")),
            },
        }
    }

    fn rewrite(&mut self, words: &[String], machine: Option<u32>) -> Vec<String> {
        let dir = self.dir.path().to_path_buf();
        let place = Place { dir: &dir, machine };
        rewrite_words(words, &mut self.ports, &place)
    }

    /// A variable's value as set by the docs: addresses rewritten, `...` for a token filled.
    fn rewrite_value(&mut self, name: &str, value: &str) -> Result<String, String> {
        if value == "..." {
            return match name {
                "RAFTKV_TOKEN" => Ok(self.admin_token.clone()),
                _ => Err(format!(
                    "{name}=... is a placeholder this runner cannot fill"
                )),
            };
        }
        Ok(self.rewrite(&[value.to_string()], None).remove(0))
    }

    fn alias(&mut self, words: &[String]) -> Result<String, String> {
        let [definition] = words else {
            return Err("alias with other than one definition".to_string());
        };
        let (name, value) = definition.split_once('=').ok_or("alias without `=`")?;
        let value: Vec<String> = value.split_whitespace().map(str::to_string).collect();
        match (name, raftkv_args(&value)) {
            ("raftkv", Some([])) => Ok("`raftkv` stands for the test's raftkv binary".to_string()),
            _ => Err(format!("alias {name} is not the raftkv binary")),
        }
    }

    fn export(&mut self, words: &[String]) -> Result<String, String> {
        let mut names = Vec::new();
        for word in words {
            let (name, value) = shell::assignment(word).ok_or(format!("export `{word}`"))?;
            let value = self.rewrite_value(name, value)?;
            self.env.insert(name.to_string(), value);
            names.push(name.to_string());
        }
        Ok(format!("set {} for the lines after it", names.join(", ")))
    }

    /// A process of the page: in its directory, with its variables and no inherited RAFTKV_*.
    fn command(&self, program: &Path, extra_env: &BTreeMap<String, String>) -> Command {
        let mut command = Command::new(program);
        command.current_dir(self.dir.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RAFTKV_") {
                command.env_remove(name);
            }
        }
        command.envs(&self.env).envs(extra_env);
        command
    }

    /// Runs `program ARGS` to completion as a process of the page.
    fn finish<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &Path,
        args: impl IntoIterator<Item = S>,
        extra_env: &BTreeMap<String, String>,
        deadline: std::time::Duration,
    ) -> Result<Finished, String> {
        let mut command = self.command(program, extra_env);
        command.args(args);
        process::run(&mut command, deadline)
    }

    fn curl(
        &mut self,
        args: &[String],
        doc: &DocCommand,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let flags = ["-sS", "--fail-with-body", "--max-time", "30"].map(String::from);
        self.client("curl", &flags, args, doc, extra_env.clone())
    }

    /// etcd's own client against the page's cluster, through its etcd v3 gRPC API (Debian's
    /// etcd-client, which `.ci/run` installs: missing, the command fails).
    fn etcdctl(
        &mut self,
        args: &[String],
        doc: &DocCommand,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let mut env = extra_env.clone();
        env.insert("ETCDCTL_API".to_string(), "3".to_string());
        self.client("etcdctl", &[], args, doc, env)
    }

    /// Runs an outside client (`flags`, then the documented `args` rewritten) against the
    /// page's cluster, starting one if none runs.
    fn client(
        &mut self,
        program: &str,
        flags: &[String],
        args: &[String],
        doc: &DocCommand,
        env: BTreeMap<String, String>,
    ) -> Result<String, String> {
        let started = self.ensure_cluster()?;
        let args = self.rewrite(args, None);
        let finished = self.finish(
            Path::new(program),
            flags.iter().chain(&args),
            &env,
            DEADLINE,
        )?;
        Ok(started + &compare(&finished, doc)?)
    }

    fn raftkv(
        &mut self,
        args: &[String],
        doc: &DocCommand,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let subcommand = args.first().map(String::as_str).unwrap_or("");
        let needs_cluster = !["certs", "dev", "serve"].contains(&subcommand)
            && args.last().is_none_or(|last| last != "--help");
        match subcommand {
            "dev" => return self.start_dev(args, extra_env),
            "serve" if args.iter().any(|arg| arg == "--join") => return self.join(args),
            "serve" if args.last().is_none_or(|last| last != "--help") => {
                return self.start_machines(args)
            }
            "bench" => return self.bench(args, doc, extra_env),
            _ => {}
        }
        let started = match needs_cluster {
            true => self.ensure_cluster()?,
            false => String::new(),
        };
        let args = self.rewrite(args, None);
        let finished = self.finish(&self.raftkv, &args, extra_env, DEADLINE)?;
        Ok(started + &compare(&finished, doc)?)
    }

    /// Starts a dev cluster when none runs: the client commands' default.
    fn ensure_cluster(&mut self) -> Result<String, String> {
        if self.cluster.is_some() {
            return Ok(String::new());
        }
        self.start_dev(&["dev".to_string()], &BTreeMap::new())?;
        Ok("(on a `raftkv dev` cluster started for the page) ".to_string())
    }

    fn stop_cluster(&mut self) {
        self.joined.clear();
        self.cluster = None;
    }

    fn start_dev(
        &mut self,
        args: &[String],
        extra_env: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let stopped = match self.cluster.is_some() {
            true => "the page's cluster stopped; ",
            false => "",
        };
        self.stop_cluster();
        let mut args = self.rewrite(args, None);
        for (flag, documented) in [
            ("--http-port", 8001),
            ("--raft-port", 9001),
            ("--grpc-port", 2379),
        ] {
            if !args.iter().any(|arg| arg == flag) {
                let port = self.ports.get(documented);
                args.extend([flag.to_string(), port.to_string()]);
            }
        }
        let mut command = self.command(&self.raftkv, extra_env);
        command.args(&args);
        let log = self.dir.path().join("dev.stderr");
        let mut dev = Background::spawn("raftkv dev", &mut command, true, &log)?;
        dev.wait_for_line("Ctrl-C stops the cluster")?;
        let printed = match args.iter().any(|arg| arg == "--secure") {
            true => Some(secure_dev_export(&dev)?),
            false => None,
        };
        // "cluster ready" means a leader; a follower forwards writes once it also knows the
        // leader's HTTP address (else 503 "has not published its HTTP address yet; retry").
        let urls: Vec<String> = dev
            .seen
            .iter()
            .filter_map(|line| {
                let line = line.trim_start();
                line.starts_with("node ")
                    .then(|| line.split_whitespace().nth(2))?
            })
            .map(|url| format!("{url}/v1/status"))
            .collect();
        let ca = printed
            .as_ref()
            .map(|printed| self.dir.path().join(&printed["RAFTKV_CA_CERT"]));
        let token = printed
            .as_ref()
            .map(|printed| printed["RAFTKV_TOKEN"].clone());
        process::wait_until("every dev node to know the leader's HTTP address", || {
            for url in &urls {
                if curl_json(url, ca.as_deref(), token.as_deref())?["leader_http"].is_null() {
                    return Ok(false);
                }
            }
            Ok(!urls.is_empty())
        })?;
        let mut note = format!("{stopped}started; it elected a leader");
        if let Some(printed) = printed {
            note += &self.put_and_get_with(&printed)?;
        }
        self.cluster = Some(Cluster::Dev(dev));
        Ok(note)
    }

    /// One put and one get with the variables `dev --secure` printed.
    fn put_and_get_with(&self, printed: &BTreeMap<String, String>) -> Result<String, String> {
        for (args, expect) in [
            (["put", "docs-secure", "ok"], "OK"),
            (["get", "docs-secure", ""], "ok"),
        ] {
            let words = args.iter().filter(|arg| !arg.is_empty());
            let finished = self.finish(&self.raftkv, words, printed, DEADLINE)?;
            if finished.code != Some(0) || !finished.stdout.contains(expect) {
                return Err(format!(
                    "with its export line, raftkv {args:?}: {}",
                    finished.describe()
                ));
            }
        }
        Ok("; a put and a get with its printed export line".to_string())
    }

    /// `serve --join`: the new node must become a voter.
    fn join(&mut self, args: &[String]) -> Result<String, String> {
        self.ensure_cluster()?;
        let args = self.rewrite(args, None);
        let id = flag_value(&args, "--id")
            .ok_or("serve without --id")?
            .to_string();
        let target = flag_value(&args, "--join").ok_or("no --join")?.to_string();
        let mut command = self.command(&self.raftkv, &BTreeMap::new());
        command.args(&args);
        let log = self.dir.path().join(format!("serve-{id}.log"));
        let mut node = Background::spawn(&format!("serve --id {id}"), &mut command, false, &log)?;
        let own_status = flag_value(&args, "--http-addr")
            .map(|address| format!("http://{address}/v1/status"))
            .ok_or("serve --join without --http-addr")?;
        let url = format!("http://{target}/v1/members");
        // A voter in the leader's list is not enough: a node the others cannot reach (another
        // cluster id) was once listed as one. It must also know the leader, which only the
        // leader's messages tell it.
        process::wait_until(
            &format!("node {id} to become a voter that hears the leader"),
            || {
                if let Some(status) = node.exited() {
                    return Err(format!("fatal: it exited ({status}): {}", node.log_tail()));
                }
                let members = curl_json(&url, None, None)?;
                let voter = members["members"].as_array().is_some_and(|members| {
                    members.iter().any(|member| {
                        member["id"].as_u64().map(|n| n.to_string()) == Some(id.clone())
                            && member["role"] == "voter"
                    })
                });
                Ok(voter && curl_json(&own_status, None, None)?["leader"].is_u64())
            },
        )?;
        self.joined.push(node);
        Ok(format!(
            "started; node {id} joined, is a voter and hears the leader"
        ))
    }

    /// `serve --peers 1=A,2=B,3=C ...` as the docs' machines: once per entry, as that machine.
    fn start_machines(&mut self, args: &[String]) -> Result<String, String> {
        self.stop_cluster();
        let peers = flag_value(args, "--peers").ok_or("serve with neither --join nor --peers")?;
        let documented_id = flag_value(args, "--id")
            .ok_or("serve without --id")?
            .to_string();
        let machines: Vec<u32> = peers
            .split(',')
            .map(|entry| entry.split('=').next().and_then(|id| id.parse().ok()))
            .collect::<Option<_>>()
            .ok_or(format!("--peers {peers}: not ID=ADDRESS entries"))?;
        let mut nodes = Vec::new();
        let mut probes = Vec::new();
        for machine in &machines {
            let own: Vec<String> = args
                .iter()
                .map(|arg| {
                    arg.replace(&format!("node-{documented_id}"), &format!("node-{machine}"))
                })
                .collect();
            let mut own = self.rewrite(&own, Some(*machine));
            set_flag(&mut own, "--id", &machine.to_string());
            if let Some(data) =
                flag_value(&own, "--data-dir").filter(|dir| Path::new(dir).is_relative())
            {
                let data = format!("machine-{machine}/{data}");
                set_flag(&mut own, "--data-dir", &data);
            }
            if let Some(tokens) = flag_value(&own, "--auth-tokens") {
                self.write_token_file(Path::new(tokens))?;
            }
            let http = flag_value(&own, "--http-addr").ok_or("serve without --http-addr")?;
            let tls = flag_value(&own, "--tls-cert").is_some();
            let ca = flag_value(&own, "--tls-ca").or(flag_value(&own, "--peer-tls-ca"));
            let scheme = if tls { "https" } else { "http" };
            probes.push((
                format!("{scheme}://{http}/v1/status"),
                ca.filter(|_| tls).map(|ca| self.dir.path().join(ca)),
                flag_value(&own, "--auth-tokens").map(|_| self.admin_token.clone()),
            ));
            let mut command = self.command(&self.raftkv, &BTreeMap::new());
            command.args(&own);
            let log = self.dir.path().join(format!("machine-{machine}.log"));
            nodes.push(Background::spawn(
                &format!("machine {machine}"),
                &mut command,
                false,
                &log,
            )?);
        }
        process::wait_until("the machines to agree on a leader", || {
            for node in nodes.iter_mut() {
                if let Some(status) = node.exited() {
                    return Err(format!(
                        "fatal: {} exited ({status}): {}",
                        node.name,
                        node.log_tail()
                    ));
                }
            }
            let mut leaders = Vec::new();
            for (url, ca, token) in &probes {
                leaders.push(curl_json(url, ca.as_deref(), token.as_deref())?["leader"].as_u64());
            }
            Ok(leaders[0].is_some() && leaders.iter().all(|leader| *leader == leaders[0]))
        })?;
        self.cluster = Some(Cluster::Machines(nodes));
        Ok(format!(
            "started as machines {machines:?}; they elected a leader"
        ))
    }

    /// The page's `[[token]]` TOML example, its tokens filled in (the `token` entries get the
    /// admin token, the `token_sha256` ones the read-only token's digest).
    fn write_token_file(&self, path: &Path) -> Result<(), String> {
        use sha2::Digest;
        let example = self
            .page
            .toml_blocks
            .iter()
            .map(|(_, block)| block)
            .find(|block| block.contains("[[token]]"))
            .ok_or("--auth-tokens, but the page shows no [[token]] file")?;
        let digest = sha2::Sha256::digest(self.reader_token.as_bytes());
        let digest: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        let filled: Vec<String> = example
            .lines()
            .map(
                |line| match line.split_once('=').map(|(key, _)| key.trim()) {
                    Some("token") => format!("token = \"{}\"", self.admin_token),
                    Some("token_sha256") => format!("token_sha256 = \"{digest}\""),
                    _ => line.to_string(),
                },
            )
            .collect();
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .and_then(|()| std::fs::write(&path, filled.join("\n")))
            .map_err(|error| format!("{}: {error}", path.display()))
    }

    /// `raftkv bench`, shortened: 1 s (or at most 300 operations), against the page's cluster
    /// and its real pids; a plot must be written, `--json` must print JSON.
    fn bench(
        &mut self,
        args: &[String],
        doc: &DocCommand,
        extra_env: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let started = self.ensure_cluster()?;
        let mut args = self.rewrite(args, None);
        match flag_value(&args, "--ops").map(|ops| ops.parse::<u64>()) {
            Some(Ok(ops)) => set_flag(&mut args, "--ops", &ops.min(300).to_string()),
            Some(Err(_)) => return Err("--ops is not a number".to_string()),
            None => set_flag(&mut args, "--duration", "1s"),
        }
        if flag_value(&args, "--server-pids").is_some() {
            let pids: Vec<String> = match &self.cluster {
                Some(Cluster::Dev(dev)) => dev.children().iter().map(u32::to_string).collect(),
                Some(Cluster::Machines(nodes)) => {
                    nodes.iter().map(|n| n.pid().to_string()).collect()
                }
                None => Vec::new(),
            };
            if pids.is_empty() {
                return Err("no server pids to give --server-pids".to_string());
            }
            set_flag(&mut args, "--server-pids", &pids.join(","));
        }
        let finished = self.finish(&self.raftkv, &args, extra_env, DEADLINE * 2)?;
        let mut note = started + &compare(&finished, doc)?;
        if let Some(plot) = flag_value(&args, "--plot") {
            let size = std::fs::metadata(self.dir.path().join(plot)).map(|meta| meta.len());
            match size {
                Ok(size) if size > 0 => note += &format!("; {plot} written ({size} bytes)"),
                _ => return Err(format!("--plot {plot}: no plot written")),
            }
        }
        if args.iter().any(|arg| arg == "--json") {
            let value: serde_json::Value = serde_json::from_str(&finished.stdout)
                .map_err(|error| format!("--json printed no JSON ({error})"))?;
            if !value.is_object() {
                return Err("--json printed JSON that is not one object".to_string());
            }
            note += "; stdout is one JSON object";
        }
        Ok(format!("{note} (run as: raftkv {})", args.join(" ")))
    }
}

/// `dev --secure` prints `export RAFTKV_CA_CERT=... RAFTKV_TOKEN=...`: those variables.
fn secure_dev_export(dev: &Background) -> Result<BTreeMap<String, String>, String> {
    let export = dev
        .seen
        .iter()
        .find(|line| line.trim_start().starts_with("export "))
        .ok_or("dev --secure printed no export line")?;
    let printed: BTreeMap<String, String> = export
        .split_whitespace()
        .filter_map(shell::assignment)
        .filter(|(name, _)| name.starts_with("RAFTKV_"))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    for name in ["RAFTKV_CA_CERT", "RAFTKV_TOKEN"] {
        if !printed.contains_key(name) {
            return Err(format!("the export line lacks {name}: {export}"));
        }
    }
    Ok(printed)
}

/// The exit status and output against the line's comment.
fn compare(finished: &Finished, doc: &DocCommand) -> Result<String, String> {
    let expected = expected(doc.comment.as_deref());
    if finished.code != Some(expected.exit) {
        return Err(format!(
            "expected exit {}: {}",
            expected.exit,
            finished.describe()
        ));
    }
    let mut note = format!("exit {}", expected.exit);
    if let Some(word) = expected.word {
        if !finished.stdout.contains(&word) {
            return Err(format!("output lacks `{word}`: {}", finished.describe()));
        }
        note += &format!(", output has `{word}`");
    }
    if let Some(pattern) = expected.json {
        let output: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&finished.stdout).map_err(|error| {
                format!(
                    "output is no JSON object ({error}): {}",
                    finished.describe()
                )
            })?;
        for (key, value) in &pattern {
            let got = output
                .get(key)
                .ok_or(format!("output lacks `{key}`: {}", finished.stdout))?;
            // A log position depends on the history before; its shape is what the docs show.
            let matches = match key.as_str() {
                "index" | "term" => got.is_u64(),
                _ => got == value,
            };
            if !matches {
                return Err(format!("`{key}` is {got}, the docs show {value}"));
            }
        }
        note += &format!(
            ", output matches {} (index, term: any number)",
            serde_json::Value::Object(pattern)
        );
    }
    Ok(note)
}

/// The value after `flag` in `args`.
fn flag_value<'w>(args: &'w [String], flag: &str) -> Option<&'w str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// Sets `flag`'s value, adding the flag when absent.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|arg| arg == flag) {
        Some(at) if at + 1 < args.len() => args[at + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// GETs `url` with curl and parses the JSON answer.
fn curl_json(
    url: &str,
    ca: Option<&Path>,
    token: Option<&str>,
) -> Result<serde_json::Value, String> {
    let mut command = Command::new("curl");
    command.args(["-sS", "--fail-with-body", "--max-time", "5"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let finished = process::run(command.arg(url), DEADLINE)?;
    if finished.code != Some(0) {
        return Err(format!("curl {url}: {}", finished.describe()));
    }
    serde_json::from_str(&finished.stdout).map_err(|error| format!("{url}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_read_conservatively() {
        let json = expected(Some(r#"{"length":6,...}"#));
        assert_eq!(json.json.unwrap()["length"], 6);
        assert_eq!(
            expected(Some("world (any node answers)")).word.as_deref(),
            Some("world")
        );
        assert!(expected(Some("one row per node")).word.is_none());
        assert!(expected(Some("exactly once: a retry")).word.is_none());
        assert_eq!(
            expected(Some("... and promote it (exit 1 until caught up)")).exit,
            1
        );
        let words: Vec<String> = [
            "cargo",
            "run",
            "-q",
            "--release",
            "-p",
            "raftkv",
            "--",
            "dev",
        ]
        .iter()
        .map(|word| word.to_string())
        .collect();
        assert_eq!(raftkv_args(&words), Some(&words[7..]));
    }
}
