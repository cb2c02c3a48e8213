//! Finds the commands in a Markdown page: every line of a ```sh block, and every inline code
//! span in prose that is a command by its prefix; also the page's TOML blocks.
//!
//! ```text
//!  page ─┬─ ```sh blocks ─► shell::logical_lines ─► comment, [optional], && ─► Command(Block)
//!        ├─ ```toml blocks ─► kept for the runner (the token file)
//!        └─ prose paragraphs ─► `code spans` ─┬─ command prefix ─► Command(Prose)
//!                                             ├─ `-- args` ─► appended to the previous cargo span
//!                                             └─ `ENV_VAR[=value]` ─► named by the nearest
//!                                                 earlier cargo or script span (else alone)
//! ```

use std::path::Path;

use crate::shell;

/// Where a command was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of a ```sh block: meant to be typed.
    Block,
    /// An inline code span in prose: a command named in a sentence.
    Prose,
}

/// One command the docs show.
#[derive(Clone, Debug)]
pub struct DocCommand {
    pub page: String,
    pub line: usize,
    pub origin: Origin,
    /// The command with `[optional]` parts dropped.
    pub text: String,
    /// The command with `[optional]` parts' content kept (for checks).
    pub full_text: String,
    /// The trailing `# comment` of its line (only the last of a `&&` chain).
    pub comment: Option<String>,
    /// Environment variables the same paragraph names for it.
    pub env_mentions: Vec<String>,
}

/// A page's commands and TOML blocks.
pub struct Page {
    pub name: String,
    pub commands: Vec<DocCommand>,
    /// Each ```toml block: its first line's number and its text.
    pub toml_blocks: Vec<(usize, String)>,
}

/// Reads `root/name` and finds its commands.
pub fn read_page(root: &Path, name: &str) -> Page {
    let text = std::fs::read_to_string(root.join(name))
        .unwrap_or_else(|error| panic!("cannot read {name}: {error}"));
    let mut page = Page {
        name: name.to_string(),
        commands: Vec::new(),
        toml_blocks: Vec::new(),
    };
    let mut fence: Option<(String, Vec<(usize, String)>)> = None;
    let mut paragraph: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match fence.take() {
                Some((language, lines)) => page.add_block(&language, &lines),
                None => {
                    page.add_prose(&paragraph);
                    paragraph.clear();
                    fence = Some((info.trim().to_string(), Vec::new()));
                }
            }
            continue;
        }
        if let Some((_, lines)) = fence.as_mut() {
            lines.push((number, line.to_string()));
            continue;
        }
        let starts_paragraph = trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('|')
            || trimmed.starts_with("- ")
            || trimmed.starts_with("* ");
        if starts_paragraph {
            page.add_prose(&paragraph);
            paragraph.clear();
        }
        if !trimmed.is_empty() {
            paragraph.push((number, line.to_string()));
        }
        if trimmed.starts_with('#') || trimmed.starts_with('|') {
            page.add_prose(&paragraph);
            paragraph.clear();
        }
    }
    assert!(fence.is_none(), "{name}: a fenced block is not closed");
    page.add_prose(&paragraph);
    page
}

impl Page {
    fn add_block(&mut self, language: &str, lines: &[(usize, String)]) {
        match language {
            "sh" | "bash" | "shell" | "console" => {}
            "toml" => {
                let text: Vec<&str> = lines.iter().map(|(_, line)| line.as_str()).collect();
                let first = lines.first().map_or(0, |(number, _)| *number);
                self.toml_blocks.push((first, text.join("\n")));
                return;
            }
            _ => return,
        }
        for (line, logical) in shell::logical_lines(lines) {
            let (code, comment) = shell::split_comment(&logical);
            if code.is_empty() {
                continue;
            }
            let runnable = shell::drop_optional(&code);
            let full = shell::open_optional(&code);
            let parts = shell::split_and(&runnable);
            let full_parts = shell::split_and(&full);
            let count = parts.len();
            for (index, text) in parts.into_iter().enumerate() {
                self.commands.push(DocCommand {
                    page: self.name.clone(),
                    line,
                    origin: Origin::Block,
                    full_text: full_parts
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| text.clone()),
                    text,
                    comment: if index + 1 == count {
                        comment.clone()
                    } else {
                        None
                    },
                    env_mentions: Vec::new(),
                });
            }
        }
    }

    fn add_prose(&mut self, paragraph: &[(usize, String)]) {
        // The paragraph as one text (a code span may wrap), with each character's line.
        let mut text = String::new();
        let mut line_of = Vec::new();
        for (number, line) in paragraph {
            for c in line.chars().chain(std::iter::once(' ')) {
                text.push(c);
                line_of.push(*number);
            }
        }
        // The commands (a range: alternatives) of the paragraph's last cargo or script span.
        let mut last_taking_env: Option<(usize, usize)> = None;
        let mut last_cargo: Option<usize> = None;
        for (start, span) in code_spans(&text) {
            let line = line_of[start];
            let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some(arguments) = span.strip_prefix("-- ") {
                // `-- core`: arguments for the cargo command named just before.
                if let Some(previous) = last_cargo {
                    let base = self.commands[previous].text.clone();
                    let base = base.split(" -- ").next().unwrap_or(&base).to_string();
                    let text = format!("{base} -- {arguments}");
                    self.push_prose(line, &text);
                    last_cargo = Some(self.commands.len() - 1);
                    last_taking_env = Some((self.commands.len() - 1, self.commands.len()));
                }
                continue;
            }
            if let Some(name) = env_mention(&span) {
                match last_taking_env {
                    Some((first, end)) => {
                        for command in &mut self.commands[first..end] {
                            command.env_mentions.push(name.to_string());
                        }
                    }
                    None if span.contains('=') => self.push_prose(line, &span),
                    None => {}
                }
                continue;
            }
            if is_command(&span) {
                let before = self.commands.len();
                self.push_prose(line, &span);
                let words: Vec<&str> = span.split_whitespace().collect();
                let program = words.iter().find(|word| shell::assignment(word).is_none());
                let added = (before, self.commands.len());
                if program.is_some_and(|program| *program == "cargo") {
                    last_cargo = Some(before);
                    last_taking_env = Some(added);
                } else if program.is_some_and(|program| program.ends_with(".sh")) {
                    last_taking_env = Some(added);
                }
            }
        }
    }

    /// Adds a prose command; a word with `a|b` alternatives becomes one command per choice.
    fn push_prose(&mut self, line: usize, span: &str) {
        for text in alternatives(span) {
            self.commands.push(DocCommand {
                page: self.name.clone(),
                line,
                origin: Origin::Prose,
                text: shell::drop_optional(&text),
                full_text: shell::open_optional(&text),
                comment: None,
                env_mentions: Vec::new(),
            });
        }
    }
}

/// The inline code spans of `text` (backtick runs of equal length), with their start offsets
/// in characters.
fn code_spans(text: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut spans = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index] != '`' {
            index += 1;
            continue;
        }
        let run = chars[index..].iter().take_while(|c| **c == '`').count();
        let content_start = index + run;
        let mut search = content_start;
        let mut found = None;
        while search < chars.len() {
            if chars[search] == '`' {
                let closing = chars[search..].iter().take_while(|c| **c == '`').count();
                if closing == run {
                    found = Some(search);
                    break;
                }
                search += closing;
            } else {
                search += 1;
            }
        }
        match found {
            Some(end) => {
                spans.push((index, chars[content_start..end].iter().collect::<String>()));
                index = end + run;
            }
            None => index = content_start,
        }
    }
    spans
        .into_iter()
        .map(|(start, span)| (start, span.trim().to_string()))
        .collect()
}

/// A span is a command when it starts like one (see the rule in docs.rs).
fn is_command(span: &str) -> bool {
    const PREFIXES: [&str; 3] = ["cargo ", "raftkv ", "target/release/"];
    if PREFIXES.iter().any(|prefix| span.starts_with(prefix)) || span == "cargo" {
        return true;
    }
    // A script under bench/ or fuzz/ (a directory there, like `fuzz/regressions/`, is a path).
    let first = span.split_whitespace().next().unwrap_or("");
    if (first.starts_with("bench/") || first.starts_with("fuzz/")) && first.ends_with(".sh") {
        return true;
    }
    // `ENV=value cargo ...`
    let mut words = span
        .split_whitespace()
        .skip_while(|word| shell::assignment(word).is_some());
    span.split_whitespace()
        .next()
        .is_some_and(|word| shell::assignment(word).is_some())
        && words.next() == Some("cargo")
}

/// `NAME` or `NAME=value` with an upper-case environment-variable name (at least one `_` or
/// four letters, so `ID` or `OK` are not taken for one).
fn env_mention(span: &str) -> Option<&str> {
    let name = span.split_once('=').map_or(span, |(name, _)| name);
    let value_ok = span
        .split_once('=')
        .is_none_or(|(_, value)| !value.contains(' '));
    let shaped = name.len() >= 4
        && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    (shaped && value_ok).then_some(name)
}

/// `raftkv put|get x` → `raftkv put x`, `raftkv get x`.
fn alternatives(span: &str) -> Vec<String> {
    let mut results = vec![String::new()];
    for word in span.split_whitespace() {
        let choices: Vec<&str> = word.split('|').collect();
        results = results
            .iter()
            .flat_map(|prefix| {
                choices.iter().map(move |choice| {
                    if prefix.is_empty() {
                        choice.to_string()
                    } else {
                        format!("{prefix} {choice}")
                    }
                })
            })
            .collect();
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_alternatives_and_env_mentions() {
        let spans = code_spans("a `x` and ``y ` z`` and `cargo test -p\n  raft` end");
        let texts: Vec<&str> = spans.iter().map(|(_, span)| span.as_str()).collect();
        assert_eq!(texts, vec!["x", "y ` z", "cargo test -p\n  raft"]);
        assert_eq!(
            alternatives("raftkv put|get k"),
            vec!["raftkv put k", "raftkv get k"]
        );
        assert!(is_command("RAFT_SIM_SEEDS=1 cargo test -p raft-sim"));
        assert!(!is_command("RAFT_SIM_SEEDS=1"));
        assert!(!is_command("raftkv"));
        assert_eq!(env_mention("ROUNDS=3"), Some("ROUNDS"));
        assert_eq!(env_mention("FUZZ_SEED"), Some("FUZZ_SEED"));
        assert_eq!(env_mention("ID"), None);
        assert_eq!(env_mention("RAFTKV_*"), None);
    }
}
