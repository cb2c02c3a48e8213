//! The little of POSIX shell syntax the docs' commands use, read without a shell:
//!
//! ```text
//!  fenced lines ─► logical lines (`\` joins) ─► code + trailing `# comment`
//!       ─► `[optional]` parts dropped ─► split at `&&` ─► words (quotes, `$VAR`)
//! ```
//!
//! Anything else a shell would do (pipes, redirections, `;`, subshells) is refused with a
//! message, so a doc command using it fails the test until the test learns it.

use std::collections::BTreeMap;

/// Joins lines that end in `\` with the next; each logical line keeps its first line number.
pub fn logical_lines(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut joined: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (number, line) in lines {
        let (start, mut text) = pending.take().unwrap_or((*number, String::new()));
        // A continuation's indentation is layout, not content.
        let trimmed = match text.is_empty() {
            true => line.trim_end(),
            false => line.trim(),
        };
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                text.push_str(head.trim_end());
                text.push(' ');
                pending = Some((start, text));
            }
            None => {
                text.push_str(trimmed);
                joined.push((start, text));
            }
        }
    }
    joined.extend(pending);
    joined
}

/// Where each character of `text` stands: inside single or double quotes, or escaped.
fn quoting(text: &str) -> Vec<(char, bool)> {
    let mut out = Vec::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        let quoted = single || double || escaped;
        out.push((c, quoted));
        if escaped {
            escaped = false;
        } else if c == '\\' && !single {
            escaped = true;
        } else if c == '\'' && !double {
            single = !single;
        } else if c == '"' && !single {
            double = !double;
        }
    }
    out
}

/// Splits a logical line into its code and its trailing comment (a `#` that starts a word,
/// outside quotes), both trimmed.
pub fn split_comment(line: &str) -> (String, Option<String>) {
    let chars = quoting(line);
    for (index, (c, quoted)) in chars.iter().enumerate() {
        let word_start = index == 0 || chars[index - 1].0.is_whitespace();
        if *c == '#' && !quoted && word_start {
            let code: String = chars[..index].iter().map(|(c, _)| c).collect();
            let comment: String = chars[index + 1..].iter().map(|(c, _)| c).collect();
            return (code.trim().to_string(), Some(comment.trim().to_string()));
        }
    }
    (line.trim().to_string(), None)
}

/// `text` without its `[optional]` parts (a `[` that starts a word, outside quotes, up to
/// its `]`), spaces collapsed.
pub fn drop_optional(text: &str) -> String {
    keep_or_drop_optional(text, false)
}

/// `text` with the brackets of its `[optional]` parts removed and their content kept, for
/// checks that should see every flag the docs name.
pub fn open_optional(text: &str) -> String {
    keep_or_drop_optional(text, true)
}

fn keep_or_drop_optional(text: &str, keep: bool) -> String {
    let chars = quoting(text);
    let mut out = String::new();
    let mut depth = 0usize;
    for (index, (c, quoted)) in chars.iter().enumerate() {
        let word_start = index == 0 || chars[index - 1].0.is_whitespace() || depth > 0;
        if *c == '[' && !quoted && word_start {
            depth += 1;
        } else if *c == ']' && !quoted && depth > 0 {
            depth -= 1;
        } else if depth == 0 || keep {
            out.push(*c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits at `&&` outside quotes.
pub fn split_and(code: &str) -> Vec<String> {
    let chars = quoting(code);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut index = 0;
    while index < chars.len() {
        let (c, quoted) = chars[index];
        if c == '&' && !quoted && chars.get(index + 1).is_some_and(|next| next.0 == '&') {
            parts.push(current.trim().to_string());
            current.clear();
            index += 2;
            continue;
        }
        current.push(c);
        index += 1;
    }
    parts.push(current.trim().to_string());
    parts.retain(|part| !part.is_empty());
    parts
}

/// The words of a simple command, quotes removed. `$NAME` and `${NAME}` outside single quotes
/// are replaced from `variables`; with `None`, or for a name it lacks, they stay as written
/// (`None`) or are an error (`Some`).
pub fn words(
    code: &str,
    variables: Option<&BTreeMap<String, String>>,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = code.chars().collect();
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let (mut single, mut double) = (false, false);
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        index += 1;
        if single {
            if c == '\'' {
                single = false;
            } else {
                word.get_or_insert_with(String::new).push(c);
            }
            continue;
        }
        match c {
            '\'' if !double => {
                single = true;
                word.get_or_insert_with(String::new);
            }
            '"' => {
                double = !double;
                word.get_or_insert_with(String::new);
            }
            '\\' => {
                let next = chars.get(index).copied().ok_or("a trailing backslash")?;
                index += 1;
                word.get_or_insert_with(String::new).push(next);
            }
            '$' => {
                let braced = chars.get(index) == Some(&'{');
                let start = index + usize::from(braced);
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if name.is_empty() || (braced && chars.get(end) != Some(&'}')) {
                    return Err(format!("a `$` this reader does not expand in `{code}`"));
                }
                index = end + usize::from(braced);
                let value = match variables {
                    None => format!("${name}"),
                    Some(variables) => variables
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| format!("${name} is not set by an earlier command"))?,
                };
                word.get_or_insert_with(String::new).push_str(&value);
            }
            c if c.is_whitespace() && !double => {
                words.extend(word.take());
            }
            '|' | ';' | '<' | '>' | '&' | '(' | ')' | '`' if !double => {
                return Err(format!(
                    "shell syntax `{c}` this reader does not run, in `{code}`"
                ));
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if single || double {
        return Err(format!("an unclosed quote in `{code}`"));
    }
    words.extend(word);
    Ok(words)
}

/// `NAME=VALUE` with a shell variable name, split.
pub fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_options_and_and() {
        let lines = vec![
            (1, "curl -X PUT -H 'a: b' \\".to_string()),
            (2, "   http://x/y    # world (any node answers)".to_string()),
        ];
        let joined = logical_lines(&lines);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].0, 1);
        let (code, comment) = split_comment(&joined[0].1);
        assert_eq!(code, "curl -X PUT -H 'a: b' http://x/y");
        assert_eq!(comment.as_deref(), Some("world (any node answers)"));
        assert_eq!(
            drop_optional("certs --out c [--dns kv.example.com]"),
            "certs --out c"
        );
        assert_eq!(open_optional("run.sh A [SECONDS]"), "run.sh A SECONDS");
        assert_eq!(split_and("a b && c 'd && e'"), vec!["a b", "c 'd && e'"]);
        let variables = BTreeMap::from([("T".to_string(), "tok".to_string())]);
        assert_eq!(
            words(r#"curl -H "Bearer $T" -d '{"a":1}'"#, Some(&variables)).unwrap(),
            vec!["curl", "-H", "Bearer tok", "-d", r#"{"a":1}"#]
        );
        assert!(words("a | b", None).is_err());
        assert!(words("echo $UNSET", Some(&variables)).is_err());
    }
}
