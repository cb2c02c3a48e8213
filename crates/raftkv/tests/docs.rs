//! Every command the docs show is run or checked, so none goes stale (issue 24).
//!
//! **The rule.** The test reads README.md and every docs/*.md page and finds each command:
//! - every line of a ```sh block (`\` continuations joined, a trailing `# comment` kept apart,
//!   blank and `#` lines skipped, `[optional]` parts dropped from the run but their flags
//!   checked against `--help`, `a && b` split in two);
//! - every inline `code span` in prose that starts with `cargo `, `raftkv `, `target/release/`,
//!   `ENV=value cargo`, or a script `bench/*.sh` or `fuzz/*.sh` (not a path like
//!   `fuzz/regressions/`); a span `-- ARGS` adds arguments to the cargo span
//!   before it; `a|b` in a prose span means one command per choice; a span `ENV_VAR` or
//!   `ENV_VAR=value` belongs to the paragraph's closest earlier cargo or script span (and a
//!   `ENV_VAR=value` with none is a setting of its own).
//!
//! Each command is either RUN or CHECKED, and the test fails on one that is neither (a new
//! kind of command in the docs must be taught to the test), on every failed run or check, and
//! prints a line per command: `ran` or `checked`, the page and line, and what was seen.
//!
//! **Run** for real, page by page in a temporary directory of the page's own, in order: the
//! lines of ```sh blocks that are `raftkv ...` (also spelled `target/release/raftkv` or
//! `cargo run [--release] [-q] -p raftkv --`: this test's own binary), `curl ...` (with
//! `-sS --fail-with-body`), `etcdctl ...` (Debian's, against the cluster's etcd v3 API),
//! `alias raftkv=...`, `export ...` and `NAME=value`; and prose
//! `raftkv ... --help`. The ports the docs show become free ports (the same one for the same
//! documented port on a page), `10.0.0.N` becomes `127.0.0.N` and a bind to `0.0.0.0` the
//! node's own `127.0.0.N`, absolute paths land in the temporary directory, and `...` in
//! `RAFTKV_TOKEN=...` is the token of the token file. A `raftkv dev` runs in the background
//! until it prints that its cluster is ready; a `serve --join` until it is a voter; a `serve
//! --peers 1=A,2=B,3=C` runs once per machine of the list (as that machine: its id, addresses,
//! `node-N` certificate, data directory and a token file written from the page's `[[token]]`
//! example) until the machines agree on a leader; starting a cluster stops the page's previous
//! one, and a client command with no cluster running starts `raftkv dev` (the client commands'
//! default endpoints). `raftkv bench` runs 1 s (or at most 300 operations) with the cluster's
//! real pids for `--server-pids`; its `--plot` file must be written. Each must exit 0, or the
//! `exit N` its comment names; a comment that starts with `{` is a JSON object the output must
//! match (`...`: more fields; `index` and `term` only as numbers, as they depend on what ran
//! before), and a comment that is one word, alone or before a parenthesis, must be in the
//! output.
//!
//! **Checked only**, as they are too long or recursive to run inside `cargo test`:
//!
//! | form | checked | why not run |
//! |---|---|---|
//! | `cargo test ...` | each `-p` a workspace package, each `--test` a file in its `tests/`, each test name a test file or `fn`, each variable named (in the command or its sentence) read by a workspace source (`"NAME"`), `--locked` has a Cargo.lock | it is the suite this test is part of |
//! | `cargo bench [-p P] [-- FILTER]` | the packages exist and have criterion `benches/`, the filter names something there | minutes of measuring |
//! | `cargo build ...` | the packages exist | a release build takes minutes |
//! | `cargo run --release -p raft-bench -- PART [--flags]` | the part is an arm of its main.rs, the flags are in its sources | minutes of measuring, gigabytes of scratch logs |
//! | `cargo run [--release] -p P --example NAME [-- --flags]` | examples/NAME.rs is in P and spells each flag, each variable named is read by a workspace source | minutes of searching or measuring |
//! | `cargo run -p raft-examples --bin NAME [-- ARGS]` | src/bin/NAME.rs exists and examples/tests/examples.rs runs it (the three-process kv_node block too) | already run by that test |
//! | `cargo add CRATE [--dev] --path .../crates/X` | the crate is a workspace package at that path | it edits another project |
//! | `cargo package` / `cargo publish -p P` | the packages exist with description and license, not `publish = false` | packaging builds every crate again; publishing is for real |
//! | `bench/*.sh`, `fuzz/run.sh` | executable; its lower-case arguments and the variables its sentence names appear in the script | minutes each, etcd or a nightly toolchain |
//! | `raftkv-chaos ...` (also with `sudo`, `target/release/`) | each `--flag` in crates/chaos/src (clap field or long name), each `--nemesis` name, the `check` subcommand, the history file's name | soaks of minutes, as root |
//! | `raftkv SUB ...` named in prose | `raftkv SUB --help` succeeds and lists every `--flag` of the span | a mention, not a command to type (the typed ones are in blocks) |
//! | `ENV=value` alone in prose | read by a workspace source | a setting, not a command |
//! | a ```toml block (not the `[[token]]` file) | every key is a `serve` setting: `raftkv serve --help` lists `--the-key` | a config file, not a command |
//!
//! Runs in parallel page by page, with a deadline on every wait and every process stopped when
//! its page ends (or fails). After the load generator moves to its own crate, `raftkv bench`
//! needs the `raftkv-bench` executable built beside the raftkv binary.

#[path = "docs/checks.rs"]
mod checks;
mod common;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/process.rs"]
mod process;
#[path = "docs/rewrite.rs"]
mod rewrite;
#[path = "docs/runner.rs"]
mod runner;
#[path = "docs/shell.rs"]
mod shell;

use std::path::{Path, PathBuf};

use checks::Workspace;
use markdown::{DocCommand, Page};
use runner::PageRunner;

/// What became of one command.
struct Outcome {
    page: String,
    line: usize,
    text: String,
    verdict: Result<(&'static str, String), String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// README.md and docs/*.md, in name order.
fn pages(root: &Path) -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    pages.insert(0, "README.md".to_string());
    pages
}

fn run_page(workspace: &Workspace, page: &Page, raftkv: &Path) -> Vec<Outcome> {
    let mut page_runner: Option<PageRunner> = None;
    let mut outcomes = Vec::new();
    for command in &page.commands {
        let verdict = if runner::is_run_form(command) {
            let page_runner = page_runner.get_or_insert_with(|| PageRunner::new(page, raftkv));
            page_runner.run(command).and_then(|note| {
                match checks::optional_flags(workspace, &command.text, &command.full_text)? {
                    Some(listed) => Ok(("ran", format!("{note}; [optional] flags: {listed}"))),
                    None => Ok(("ran", note)),
                }
            })
        } else {
            checks::check(workspace, &command.full_text, &command.env_mentions)
                .map(|note| ("checked", note))
        };
        outcomes.push(outcome(command, verdict));
    }
    // A TOML example other than the token file is a `serve --config` file.
    for (line, example) in &page.toml_blocks {
        if example.contains("[[token]]") {
            continue;
        }
        outcomes.push(Outcome {
            page: page.name.clone(),
            line: *line,
            text: "(a TOML config example)".to_string(),
            verdict: checks::config_keys(workspace, example).map(|note| ("checked", note)),
        });
    }
    outcomes
}

fn outcome(command: &DocCommand, verdict: Result<(&'static str, String), String>) -> Outcome {
    Outcome {
        page: command.page.clone(),
        line: command.line,
        text: command.text.clone(),
        verdict,
    }
}

#[test]
fn every_command_in_the_docs_is_run_or_checked() {
    let root = workspace_root();
    let raftkv = PathBuf::from(env!("CARGO_BIN_EXE_raftkv"));
    let workspace = Workspace::read(&root, &raftkv);
    let pages: Vec<Page> = pages(&root)
        .iter()
        .map(|name| markdown::read_page(&root, name))
        .collect();
    let count: usize = pages.iter().map(|page| page.commands.len()).sum();
    assert!(count > 0, "no commands found in the docs");

    let results: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pages
            .iter()
            .map(|page| {
                let workspace = &workspace;
                let raftkv = &raftkv;
                (page, scope.spawn(move || run_page(workspace, page, raftkv)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(page, handle)| {
                handle.join().unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                        .unwrap_or_default();
                    vec![Outcome {
                        page: page.name.clone(),
                        line: 0,
                        text: "(the page's run)".to_string(),
                        verdict: Err(format!("panicked: {message}")),
                    }]
                })
            })
            .collect()
    });

    let mut failures = Vec::new();
    let (mut ran, mut checked) = (0, 0);
    for outcome in results.iter().flatten() {
        let place = format!("{}:{}", outcome.page, outcome.line);
        match &outcome.verdict {
            Ok((verdict, note)) => {
                match *verdict {
                    "ran" => ran += 1,
                    _ => checked += 1,
                }
                println!("{verdict:<7} {place:<28} {}  -- {note}", outcome.text);
            }
            Err(error) => {
                println!("FAILED  {place:<28} {}  -- {error}", outcome.text);
                failures.push(format!("{place} `{}`: {error}", outcome.text));
            }
        }
    }
    println!(
        "{ran} commands ran, {checked} checked, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "doc commands that neither ran nor passed their check:\n{}",
        failures.join("\n")
    );
}
