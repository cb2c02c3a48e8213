//! The check-only forms (see the table in docs.rs): each is compared with the workspace as it
//! is on disk, without running it.
//!
//! ```text
//!  words ─► cargo test|bench|build|run|add|package|publish ─► packages, tests, benches, bins
//!        ├► bench/*.sh, fuzz/run.sh ──────────────────────► executable; words and env it reads
//!        ├► raftkv-chaos ─────────────────────────────────► flags, values, subcommand in its source
//!        ├► raftkv SUB... (a mention in prose) ───────────► `raftkv SUB --help` lists its flags
//!        └► ENV=value (in prose) ─────────────────────────► read by the workspace's sources
//! ```

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell;

/// The workspace's packages and Rust sources, read once.
pub struct Workspace {
    pub root: PathBuf,
    /// Package name → its directory.
    packages: BTreeMap<String, PathBuf>,
    /// Every `.rs` file under `crates/` and `examples/`, with its text.
    sources: Vec<(PathBuf, String)>,
    /// The raftkv binary, for `--help`.
    raftkv: PathBuf,
}

impl Workspace {
    pub fn read(root: &Path, raftkv: &Path) -> Workspace {
        let manifest: toml::Table =
            toml::from_str(&read(&root.join("Cargo.toml"))).expect("the workspace manifest parses");
        let members = manifest["workspace"]["members"]
            .as_array()
            .expect("workspace.members is a list");
        let mut packages = BTreeMap::new();
        for member in members {
            let dir = root.join(member.as_str().expect("a member is a path"));
            let package: toml::Table =
                toml::from_str(&read(&dir.join("Cargo.toml"))).expect("a member's manifest parses");
            let name = package["package"]["name"].as_str().expect("a package name");
            packages.insert(name.to_string(), dir);
        }
        let mut sources = Vec::new();
        for top in ["crates", "examples"] {
            collect_rust(&root.join(top), &mut sources);
        }
        Workspace {
            root: root.to_path_buf(),
            packages,
            sources,
            raftkv: raftkv.to_path_buf(),
        }
    }

    fn package(&self, name: &str) -> Result<&Path, String> {
        self.packages
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("`{name}` is not a workspace package"))
    }

    /// The sources under `dir`.
    fn sources_in<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a str> + 'a {
        self.sources
            .iter()
            .filter(move |(path, _)| path.starts_with(dir))
            .map(|(_, text)| text.as_str())
    }

    /// Some workspace source reads environment variable `name` (spells it as a string).
    fn env_read(&self, name: &str) -> Result<(), String> {
        let quoted = format!("\"{name}\"");
        match self.sources.iter().any(|(_, text)| text.contains(&quoted)) {
            true => Ok(()),
            false => Err(format!("no workspace source reads {name} (no `{quoted}`)")),
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn collect_rust(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|name| name != "target") {
            collect_rust(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push((path.clone(), read(&path)));
        }
    }
}

/// A placeholder the reader fills in: `NAME`, `TARGET`, `DIR`, `...`.
fn is_placeholder(word: &str) -> bool {
    word == "..."
        || (word.chars().any(|c| c.is_ascii_uppercase())
            && word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// `--foo-bar` is a flag of the program whose sources are `sources`: a clap long name, a
/// clap field `foo_bar`, or a hand parser's `"--foo-bar"`.
fn flag_in_sources<'a>(flag: &str, sources: impl Iterator<Item = &'a str>) -> bool {
    let long = flag.trim_start_matches('-');
    let field = format!("{}:", long.replace('-', "_"));
    let spellings = [
        format!("\"{flag}\""),
        format!("long = \"{long}\""),
        format!(" {field}"),
    ];
    sources
        .into_iter()
        .any(|text| spellings.iter().any(|spelling| text.contains(spelling)))
}

/// Checks a check-only command; `Ok` says what was checked.
pub fn check(workspace: &Workspace, text: &str, env_mentions: &[String]) -> Result<String, String> {
    // `<seed>` in prose is a placeholder, not a redirection.
    let text = angle_placeholders(text);
    let mut words = shell::words(&text, None)?;
    if words.first().is_some_and(|word| word == "sudo") {
        words.remove(0);
    }
    let assigned: Vec<String> = words
        .iter()
        .map_while(|word| shell::assignment(word).map(|(name, _)| name.to_string()))
        .collect();
    let words = &words[assigned.len()..];
    let mut env: Vec<String> = assigned;
    env.extend(env_mentions.iter().cloned());
    let Some(program) = words.first() else {
        // `NAME=value` alone in prose: a setting some test or program reads.
        for name in &env {
            workspace.env_read(name)?;
        }
        return Ok(format!(
            "{} read by the workspace's sources",
            env.join(", ")
        ));
    };
    let program = program.as_str();
    let args = &words[1..];
    if program == "cargo" {
        return check_cargo(workspace, args, &env);
    }
    if program.ends_with(".sh") && (program.starts_with("bench/") || program.starts_with("fuzz/")) {
        return check_script(workspace, program, args, &env);
    }
    if program.trim_start_matches("target/release/") == "raftkv-chaos" {
        return check_chaos(workspace, args);
    }
    if program == "raftkv" {
        return check_raftkv_mention(workspace, args);
    }
    Err(format!(
        "`{text}`: not a command form this test runs or checks"
    ))
}

/// `<name>` → `NAME`.
fn angle_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').map(|close| open + close);
        let inner = close.map(|close| &rest[open + 1..close]);
        match (close, inner) {
            (Some(close), Some(inner))
                if !inner.is_empty()
                    && inner.chars().all(|c| c.is_ascii_lowercase() || c == '-') =>
            {
                out.push_str(&rest[..open]);
                out.push_str(&inner.to_ascii_uppercase().replace('-', "_"));
                rest = &rest[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `cargo SUB [flags] [NAME] [-- ARGS]`, by subcommand.
fn check_cargo(workspace: &Workspace, args: &[String], env: &[String]) -> Result<String, String> {
    let subcommand = args.first().map(String::as_str).unwrap_or("");
    let mut packages = Vec::new();
    let mut test_files = Vec::new();
    let mut bins = Vec::new();
    let mut examples = Vec::new();
    let mut paths = Vec::new();
    let mut positional = Vec::new();
    let mut after_dashes = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or(format!("`{arg}` without its value"))
        };
        match arg.as_str() {
            "-p" | "--package" => packages.push(value()?),
            "--test" => test_files.push(value()?),
            "--bin" => bins.push(value()?),
            "--example" => examples.push(value()?),
            "--path" => paths.push(value()?),
            "--features" => {
                value()?;
            }
            "--workspace" | "--release" | "-q" | "--dev" => {}
            "--locked" => {
                if !workspace.root.join("Cargo.lock").is_file() {
                    return Err("--locked without a Cargo.lock".to_string());
                }
            }
            "--" => after_dashes.extend(rest.by_ref().cloned()),
            flag if flag.starts_with('-') => {
                return Err(format!("cargo flag `{flag}` is not one this check knows"))
            }
            word => positional.push(word.to_string()),
        }
    }
    for package in &packages {
        workspace.package(package)?;
    }
    let mut checked = vec![format!("packages {packages:?} exist")];
    match subcommand {
        "test" => {
            for package in &packages {
                let dir = workspace.package(package)?;
                for file in &test_files {
                    let exists = dir.join("tests").join(format!("{file}.rs")).is_file()
                        || dir.join("tests").join(file).join("main.rs").is_file();
                    if !exists {
                        return Err(format!("{package} has no test file tests/{file}.rs"));
                    }
                }
                for name in positional.iter().filter(|name| !is_placeholder(name)) {
                    let as_fn = format!("fn {name}");
                    let found = dir.join("tests").join(format!("{name}.rs")).is_file()
                        || workspace.sources_in(dir).any(|text| text.contains(&as_fn));
                    if !found {
                        return Err(format!("{package} has no test or test file `{name}`"));
                    }
                }
            }
            for name in env {
                workspace.env_read(name)?;
            }
            if !env.is_empty() {
                checked.push(format!("{} read by the sources", env.join(", ")));
            }
            if !test_files.is_empty() || !positional.is_empty() {
                checked.push(format!("tests {test_files:?} {positional:?} exist"));
            }
        }
        "bench" => {
            let dirs: Vec<&Path> = match packages.is_empty() {
                true => workspace.packages.values().map(PathBuf::as_path).collect(),
                false => packages
                    .iter()
                    .map(|p| workspace.package(p))
                    .collect::<Result<_, _>>()?,
            };
            let with_benches: Vec<PathBuf> = dirs
                .iter()
                .map(|dir| dir.join("benches"))
                .filter(|dir| dir.is_dir())
                .collect();
            if with_benches.is_empty() || (!packages.is_empty() && with_benches.len() != dirs.len())
            {
                return Err(format!("no benches/ in {packages:?}"));
            }
            for filter in after_dashes.iter().filter(|word| !is_placeholder(word)) {
                let found = with_benches.iter().any(|dir| {
                    workspace
                        .sources_in(dir)
                        .any(|text| text.contains(filter.as_str()))
                });
                if !found {
                    return Err(format!("no benchmark in {packages:?} matches `{filter}`"));
                }
            }
            checked.push("they have criterion benches/ matching the filter".to_string());
        }
        "build" => {}
        "run" if !examples.is_empty() => {
            check_cargo_example(workspace, &packages, &examples, &after_dashes, env)?;
            checked.push(format!(
                "examples {examples:?} exist and read their flags and variables"
            ));
        }
        "run" => check_cargo_run(workspace, &packages, &bins, &after_dashes, &mut checked)?,
        "add" => {
            let [name] = positional.as_slice() else {
                return Err("cargo add names one crate here".to_string());
            };
            let dir = workspace.package(name)?;
            for path in &paths {
                let tail = Path::new(path).iter().rev().take(2).collect::<Vec<_>>();
                let expected = dir.iter().rev().take(2).collect::<Vec<_>>();
                if tail != expected {
                    return Err(format!("--path {path} does not end where {name} is"));
                }
            }
            checked.push(format!("{name} is at {}", dir.display()));
        }
        "package" | "publish" => {
            for package in &packages {
                let manifest = read(&workspace.package(package)?.join("Cargo.toml"));
                let publishable = !manifest.contains("publish = false")
                    && manifest.contains("description")
                    && manifest.contains("license");
                if !publishable {
                    return Err(format!(
                        "{package} lacks publish metadata or says publish = false"
                    ));
                }
            }
            checked.push("with description and license, publishable".to_string());
        }
        other => return Err(format!("`cargo {other}` is not a form this test checks")),
    }
    Ok(checked.join("; "))
}

/// `cargo run -p raft-bench -- PART [flags]` and `cargo run -p raft-examples --bin NAME`.
fn check_cargo_run(
    workspace: &Workspace,
    packages: &[String],
    bins: &[String],
    args: &[String],
    checked: &mut Vec<String>,
) -> Result<(), String> {
    match packages {
        [package] if package == "raft-bench" => {
            let dir = workspace.package(package)?;
            let main = read(&dir.join("src/main.rs"));
            if let Some(part) = args.first() {
                if !main.contains(&format!("\"{part}\" =>")) {
                    return Err(format!("raft-bench's main.rs has no part `{part}`"));
                }
                checked.push(format!("part `{part}` in main.rs"));
            }
            for flag in args.iter().filter(|arg| arg.starts_with("--")) {
                if !flag_in_sources(flag, workspace.sources_in(dir)) {
                    return Err(format!("raft-bench does not take {flag}"));
                }
            }
            Ok(())
        }
        [package] if package == "raft-examples" => {
            let dir = workspace.package(package)?;
            let runner = read(&dir.join("tests/examples.rs"));
            for bin in bins {
                if !dir.join("src/bin").join(format!("{bin}.rs")).is_file() {
                    return Err(format!("no example src/bin/{bin}.rs"));
                }
                if !runner.contains(bin.as_str()) {
                    return Err(format!("examples/tests/examples.rs does not run {bin}"));
                }
            }
            checked.push(format!(
                "bins {bins:?} exist, run by examples/tests/examples.rs"
            ));
            Ok(())
        }
        _ => Err(format!(
            "`cargo run -p {packages:?}` is not a form this test checks"
        )),
    }
}

/// `cargo run -p P --example NAME [-- --flags]`: the example is a file of the package that
/// spells each flag, and each variable the docs give it is read by the workspace.
fn check_cargo_example(
    workspace: &Workspace,
    packages: &[String],
    examples: &[String],
    args: &[String],
    env: &[String],
) -> Result<(), String> {
    let [package] = packages else {
        return Err("cargo run --example names one package here".to_string());
    };
    let dir = workspace.package(package)?;
    for example in examples {
        let file = dir.join("examples").join(format!("{example}.rs"));
        if !file.is_file() {
            return Err(format!("{package} has no example examples/{example}.rs"));
        }
        let text = read(&file);
        for flag in args.iter().filter(|arg| arg.starts_with("--")) {
            if !flag_in_sources(flag, std::iter::once(text.as_str())) {
                return Err(format!("example {example} does not take {flag}"));
            }
        }
    }
    for name in env {
        workspace.env_read(name)?;
    }
    Ok(())
}

/// A script: there, executable, and reading the words and variables the docs give it.
fn check_script(
    workspace: &Workspace,
    program: &str,
    args: &[String],
    env: &[String],
) -> Result<String, String> {
    let path = workspace.root.join(program);
    let mode = std::fs::metadata(&path)
        .map_err(|error| format!("{program}: {error}"))?
        .permissions()
        .mode();
    if mode & 0o111 == 0 {
        return Err(format!("{program} is not executable"));
    }
    let text = read(&path);
    let reads = |word: &str| {
        text.match_indices(word).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            boundary(before) && boundary(after)
        })
    };
    for word in args
        .iter()
        .filter(|word| !is_placeholder(word) && !word.starts_with('-'))
    {
        if !reads(word) {
            return Err(format!("{program} has no `{word}`"));
        }
    }
    for name in env {
        if !reads(name) {
            return Err(format!("{program} does not read {name}"));
        }
    }
    let named: Vec<String> = args
        .iter()
        .filter(|word| !is_placeholder(word) && !word.starts_with('-'))
        .chain(env)
        .cloned()
        .collect();
    Ok(match named.is_empty() {
        true => "executable".to_string(),
        false => format!("executable; reads {}", named.join(", ")),
    })
}

/// `raftkv-chaos [check FILE | --flag value...]` against crates/chaos/src.
fn check_chaos(workspace: &Workspace, args: &[String]) -> Result<String, String> {
    let dir = workspace.package("raftkv-chaos")?.join("src");
    let sources: Vec<&str> = workspace.sources_in(&dir).collect();
    let mut checked = Vec::new();
    let mut words = args.iter().peekable();
    if words.peek().is_some_and(|word| *word == "check") {
        words.next();
        if !sources
            .iter()
            .any(|text| text.contains("Check {") || text.contains("Check("))
        {
            return Err("raftkv-chaos has no `check` subcommand".to_string());
        }
        checked.push("subcommand check".to_string());
    }
    while let Some(word) = words.next() {
        if word.starts_with("--") {
            if !flag_in_sources(word, sources.iter().copied()) {
                return Err(format!("raftkv-chaos does not take {word}"));
            }
            checked.push(word.clone());
            if word == "--nemesis" {
                let value = words.next().ok_or("--nemesis without a value")?;
                for nemesis in value.split(',') {
                    if !sources
                        .iter()
                        .any(|text| text.contains(&format!("\"{nemesis}\"")))
                    {
                        return Err(format!("raftkv-chaos knows no nemesis `{nemesis}`"));
                    }
                }
            }
        } else if word.contains('/') {
            let file = Path::new(word.as_str())
                .file_name()
                .and_then(|name| name.to_str());
            let file = file.unwrap_or_default();
            if !sources
                .iter()
                .any(|text| text.contains(&format!("\"{file}\"")))
            {
                return Err(format!("raftkv-chaos never names a file `{file}`"));
            }
        }
    }
    Ok(format!("in crates/chaos/src: {}", checked.join(" ")))
}

/// A run command's `[optional]` flags, which the run left out (`raftkv certs ... [--dns X]`):
/// its subcommand's `--help` must list them. `None` when it had none.
pub fn optional_flags(
    workspace: &Workspace,
    text: &str,
    full_text: &str,
) -> Result<Option<String>, String> {
    let ran = shell::words(text, None)?;
    let full = shell::words(full_text, None)?;
    let Some(args) = crate::runner::raftkv_args(&full) else {
        return Ok(None);
    };
    let left_out: Vec<String> = args
        .iter()
        .filter(|arg| arg.starts_with("--") && !ran.contains(arg))
        .cloned()
        .collect();
    if left_out.is_empty() {
        return Ok(None);
    }
    let mut mention: Vec<String> = args
        .iter()
        .take_while(|arg| !arg.starts_with('-'))
        .cloned()
        .collect();
    mention.extend(left_out);
    check_raftkv_mention(workspace, &mention).map(Some)
}

/// A TOML example that is a `serve --config` file: each key is a setting whose flag
/// (`snapshot_threshold_bytes` → `--snapshot-threshold-bytes`) `raftkv serve --help` lists.
pub fn config_keys(workspace: &Workspace, example: &str) -> Result<String, String> {
    let table: toml::Table =
        toml::from_str(example).map_err(|error| format!("the example does not parse: {error}"))?;
    let mut mention = vec!["serve".to_string()];
    mention.extend(
        table
            .keys()
            .map(|key| format!("--{}", key.replace('_', "-"))),
    );
    check_raftkv_mention(workspace, &mention)
}

/// `raftkv SUB [SUB2] [--flags]` named in prose: the subcommand exists and lists the flags.
fn check_raftkv_mention(workspace: &Workspace, args: &[String]) -> Result<String, String> {
    let path: Vec<&String> = args
        .iter()
        .take_while(|arg| !arg.starts_with('-'))
        .collect();
    let flags: Vec<&String> = args.iter().filter(|arg| arg.starts_with("--")).collect();
    let output = Command::new(&workspace.raftkv)
        .args(&path)
        .arg("--help")
        .env_remove("RAFTKV_ENDPOINTS")
        .output()
        .map_err(|error| format!("cannot run raftkv: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`raftkv {} --help` failed: {}",
            join(&path),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let help = String::from_utf8_lossy(&output.stdout);
    // `--id` must not pass for `--idle-timeout`: the flag ends where a name cannot go on.
    let lists = |flag: &str| {
        help.match_indices(flag).any(|(at, _)| {
            let next = help[at + flag.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    };
    for flag in &flags {
        if !lists(flag) {
            return Err(format!(
                "`raftkv {} --help` does not list {flag}",
                join(&path)
            ));
        }
    }
    Ok(format!(
        "`raftkv {} --help` lists it{}",
        join(&path),
        match flags.is_empty() {
            true => String::new(),
            false => format!(" and {}", join(&flags)),
        }
    ))
}

fn join(words: &[&String]) -> String {
    words
        .iter()
        .map(|word| word.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
