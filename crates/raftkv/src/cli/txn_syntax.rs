//! The line syntax of `raftkv txn`: a transaction typed or piped as three blocks, in the
//! spirit of `etcdctl txn` (our own syntax, documented in docs/coordination.md).
//!
//! ```text
//!  version(config) = 0            comparisons, one per line: TARGET(KEY) OP OPERAND
//!  value(owner) != "bob smith"      TARGET  value | version | create | mod | exists | lease
//!                                   OP      =  !=  <  >        (exists: = and != only)
//!  put config "v1"                success operations, one per line:
//!  get config                       put KEY VALUE [--lease ID] | del KEY | del --prefix PREFIX
//!                                   get KEY | scan PREFIX [LIMIT]
//!  get config                     failure operations, same forms
//! ```
//!
//! A blank line ends each block (so a transaction without comparisons starts with one); lines
//! starting with `#` are comments. A key or value with spaces, parentheses, quotes or `#` is
//! written in double quotes, with `\"`, `\\`, `\n` and `\t` escapes. Errors name the line.

use raftkv_client::api::{Compare, CompareOp, CompareTarget, TxnOp, TxnRequest};

use super::lease::parse_lease_id;

/// The three blocks, parsed into a request; the error names the line (1-based) and what is
/// wrong with it.
pub(crate) fn parse_txn(text: &str) -> Result<TxnRequest, String> {
    let mut request = TxnRequest::default();
    let mut block = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        if trimmed.is_empty() {
            block += 1;
            continue;
        }
        let at_line = |error: String| format!("line {number}: {error}");
        match block {
            0 => request
                .compare
                .push(parse_compare(trimmed).map_err(at_line)?),
            1 => request.success.push(parse_op(trimmed).map_err(at_line)?),
            2 => request.failure.push(parse_op(trimmed).map_err(at_line)?),
            _ => {
                return Err(at_line(
                    "a transaction has three blocks (comparisons, success, failure), each \
                     ended by a blank line; this is a fourth"
                        .to_string(),
                ))
            }
        }
    }
    Ok(request)
}

/// `TARGET(KEY) OP OPERAND`.
pub(crate) fn parse_compare(line: &str) -> Result<Compare, String> {
    let mut words = Words::new(line);
    let target = words.bare_until('(');
    if !words.eat('(') {
        return Err(format!(
            "expected a comparison such as `version(KEY) = 0`, got {line:?}"
        ));
    }
    let key = words
        .word_until(')')?
        .ok_or_else(|| "a comparison needs a key inside the parentheses".to_string())?;
    if !words.eat(')') {
        return Err(format!("expected `)` after the key {key:?}"));
    }
    let op = words.operator()?;
    let operand = words
        .word_until('\0')?
        .ok_or_else(|| format!("{target}({key}) {} needs an operand", op_text(op)))?;
    words.end()?;
    let number = |what: &str| {
        operand
            .parse::<u64>()
            .map_err(|_| format!("{what} compares with a whole number, not {operand:?}"))
    };
    let target = match target.as_str() {
        "value" => CompareTarget::Value(operand.clone()),
        "version" => CompareTarget::Version(number("version")?),
        "create" | "create_revision" => CompareTarget::CreateRevision(number("create")?),
        "mod" | "mod_revision" => CompareTarget::ModRevision(number("mod")?),
        // Lease ids are hexadecimal on the command line, as `lease grant` prints them; 0 is
        // "no lease".
        "lease" => CompareTarget::Lease(match operand.as_str() {
            "0" => 0,
            id => parse_lease_id(id)?,
        }),
        "exists" => {
            if !matches!(op, CompareOp::Equal | CompareOp::NotEqual) {
                return Err("exists compares with = or != only".to_string());
            }
            match operand.as_str() {
                "true" => CompareTarget::Exists(true),
                "false" => CompareTarget::Exists(false),
                _ => {
                    return Err(format!(
                        "exists compares with true or false, not {operand:?}"
                    ))
                }
            }
        }
        other => {
            return Err(format!(
                "unknown comparison target {other:?}; expected value, version, create, mod, \
                 exists or lease"
            ))
        }
    };
    Ok(Compare { key, op, target })
}

/// `put KEY VALUE [--lease ID]`, `del KEY`, `del --prefix PREFIX`, `get KEY`, `scan PREFIX [LIMIT]`.
pub(crate) fn parse_op(line: &str) -> Result<TxnOp, String> {
    let mut words = Words::new(line);
    let verb = words.bare_until('\0');
    let mut argument = |what: &str| -> Result<String, String> {
        words
            .word_until('\0')?
            .ok_or_else(|| format!("`{verb}` needs {what}"))
    };
    let op = match verb.as_str() {
        "put" => {
            let key = argument("a key and a value")?;
            let value = argument("a value after the key")?;
            let lease = match words.word_until('\0')? {
                None => None,
                Some(flag) if flag == "--lease" => {
                    let id = words
                        .word_until('\0')?
                        .ok_or_else(|| "`put ... --lease` needs a lease id".to_string())?;
                    Some(parse_lease_id(&id)?)
                }
                Some(other) => {
                    return Err(format!(
                        "unexpected {other:?} at the end of the line (quote a value with \
                         spaces; `--lease ID` attaches the key to a lease)"
                    ))
                }
            };
            TxnOp::Put {
                key,
                value: Some(value),
                value_base64: None,
                lease,
            }
        }
        "del" | "delete" => match argument("a key, or --prefix and a prefix")? {
            flag if flag == "--prefix" => {
                let prefix = argument("a prefix after --prefix")?;
                if prefix.is_empty() {
                    return Err("del --prefix needs a prefix that is not empty".to_string());
                }
                TxnOp::DeletePrefix { prefix }
            }
            key => TxnOp::Delete { key },
        },
        "get" => TxnOp::Get {
            key: argument("a key")?,
        },
        "scan" => {
            let prefix = argument("a prefix")?;
            let limit = match words.word_until('\0')? {
                None => None,
                Some(limit) => Some(
                    limit
                        .parse::<usize>()
                        .map_err(|_| format!("scan's limit is a whole number, not {limit:?}"))?,
                ),
            };
            TxnOp::Scan { prefix, limit }
        }
        "" => return Err("expected an operation".to_string()),
        other => {
            return Err(format!(
                "unknown operation {other:?}; expected put, del, get or scan"
            ))
        }
    };
    words.end()?;
    Ok(op)
}

fn op_text(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Equal => "=",
        CompareOp::NotEqual => "!=",
        CompareOp::Less => "<",
        CompareOp::Greater => ">",
    }
}

/// A cursor over one line's words: bare words, or double-quoted strings with escapes.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Words<'a> {
        Words { rest: line }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Whether the next thing (after spaces) is `expected`; consumes it if so.
    fn eat(&mut self, expected: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(expected) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// A bare word ending at a space or `stop`.
    fn bare_until(&mut self, stop: char) -> String {
        self.skip_space();
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == stop)
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        word.to_string()
    }

    /// A quoted string or a bare word ending at a space or `stop`; `None` at the line's end.
    fn word_until(&mut self, stop: char) -> Result<Option<String>, String> {
        self.skip_space();
        if self.rest.is_empty() || self.rest.starts_with(stop) {
            return Ok(None);
        }
        if !self.rest.starts_with('"') {
            let word = self.bare_until(stop);
            if word.contains('"') {
                return Err(format!(
                    "a quote inside the word {word:?}; quote the whole word"
                ));
            }
            return Ok(Some(word));
        }
        let mut word = String::new();
        let mut chars = self.rest[1..].char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[1 + index + 1..];
                    if self
                        .rest
                        .chars()
                        .next()
                        .is_some_and(|next| !next.is_whitespace() && next != stop)
                    {
                        return Err(format!("expected a space after the quoted {word:?}"));
                    }
                    return Ok(Some(word));
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => word.push('"'),
                    Some((_, '\\')) => word.push('\\'),
                    Some((_, 'n')) => word.push('\n'),
                    Some((_, 't')) => word.push('\t'),
                    Some((_, other)) => {
                        return Err(format!(
                            "unknown escape \\{other} (known: \\\" \\\\ \\n \\t)"
                        ))
                    }
                    None => break,
                },
                other => word.push(other),
            }
        }
        Err("a quoted string is not closed".to_string())
    }

    fn operator(&mut self) -> Result<CompareOp, String> {
        self.skip_space();
        let (op, length) = if self.rest.starts_with("!=") {
            (CompareOp::NotEqual, 2)
        } else if self.rest.starts_with("==") {
            (CompareOp::Equal, 2)
        } else if self.rest.starts_with('=') {
            (CompareOp::Equal, 1)
        } else if self.rest.starts_with('<') {
            (CompareOp::Less, 1)
        } else if self.rest.starts_with('>') {
            (CompareOp::Greater, 1)
        } else {
            return Err(format!(
                "expected an operator (=, !=, <, >), got {:?}",
                self.rest
            ));
        };
        self.rest = &self.rest[length..];
        Ok(op)
    }

    fn end(&mut self) -> Result<(), String> {
        self.skip_space();
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unexpected {:?} at the end of the line (quote a value with spaces)",
                self.rest
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> TxnOp {
        TxnOp::Put {
            key: key.to_string(),
            value: Some(value.to_string()),
            value_base64: None,
            lease: None,
        }
    }

    fn compare(key: &str, op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: key.to_string(),
            op,
            target,
        }
    }

    #[test]
    fn three_blocks_with_every_form() {
        let text = "# take the lock if nobody holds it\n\
            version(lock) = 0\n\
            value(\"owner key\") != \"bob smith\"\n\
            mod(config) > 5\n\
            create(config)<9\n\
            exists(gone) == false\n\
            \n\
            put lock me\n\
            put \"a \\\"b\\\"\" \"line\\none\"\n\
            del old\n\
            del --prefix tmp/\n\
            \n\
            get lock\n\
            scan svc/ 10\n\
            scan svc/\n";
        let request = parse_txn(text).expect("valid");
        assert_eq!(
            request.compare,
            [
                compare("lock", CompareOp::Equal, CompareTarget::Version(0)),
                compare(
                    "owner key",
                    CompareOp::NotEqual,
                    CompareTarget::Value("bob smith".to_string())
                ),
                compare("config", CompareOp::Greater, CompareTarget::ModRevision(5)),
                compare("config", CompareOp::Less, CompareTarget::CreateRevision(9)),
                compare("gone", CompareOp::Equal, CompareTarget::Exists(false)),
            ]
        );
        assert_eq!(
            request.success,
            [
                put("lock", "me"),
                put("a \"b\"", "line\none"),
                TxnOp::Delete {
                    key: "old".to_string()
                },
                TxnOp::DeletePrefix {
                    prefix: "tmp/".to_string()
                },
            ]
        );
        assert_eq!(
            request.failure,
            [
                TxnOp::Get {
                    key: "lock".to_string()
                },
                TxnOp::Scan {
                    prefix: "svc/".to_string(),
                    limit: Some(10)
                },
                TxnOp::Scan {
                    prefix: "svc/".to_string(),
                    limit: None
                },
            ]
        );
    }

    #[test]
    fn leases_are_compared_and_attached_in_hexadecimal() {
        let request =
            parse_txn("lease(svc/a) = 0\nlease(svc/b) != abc\n\nput svc/a up --lease 0x1f\n")
                .expect("valid");
        assert_eq!(
            request.compare,
            [
                compare("svc/a", CompareOp::Equal, CompareTarget::Lease(0)),
                compare("svc/b", CompareOp::NotEqual, CompareTarget::Lease(0xabc)),
            ]
        );
        assert_eq!(
            request.success,
            [TxnOp::Put {
                key: "svc/a".to_string(),
                value: Some("up".to_string()),
                value_base64: None,
                lease: Some(0x1f),
            }]
        );
    }

    #[test]
    fn a_leading_blank_line_means_no_comparisons_and_trailing_ones_are_fine() {
        let request = parse_txn("\nput k v\n\n\n\n").expect("valid");
        assert!(request.compare.is_empty());
        assert_eq!(request.success, [put("k", "v")]);
        assert!(request.failure.is_empty());
        assert_eq!(parse_txn("").expect("empty"), TxnRequest::default());
        // CRLF line ends, as a file from another system has them.
        let crlf = parse_txn("version(k) = 1\r\n\r\nget k\r\n").expect("valid");
        assert_eq!(crlf.compare.len(), 1);
        assert_eq!(crlf.success.len(), 1);
    }

    #[test]
    fn errors_name_the_line_and_the_fault() {
        let cases: [(&str, &str); 18] = [
            ("lease(k) = xyz", "line 1: \"xyz\" is not a lease id: lease ids are hexadecimal, as `lease grant` prints them"),
            ("\nput k v --lease", "line 2: `put ... --lease` needs a lease id"),
            ("vers(k) = 0", "line 1: unknown comparison target \"vers\"; expected value, version, create, mod, exists or lease"),
            ("version k = 0", "line 1: expected a comparison such as `version(KEY) = 0`, got \"version k = 0\""),
            ("version() = 0", "line 1: a comparison needs a key inside the parentheses"),
            ("version(k = 0", "line 1: expected `)` after the key \"k\""),
            ("version(k) ~ 0", "line 1: expected an operator (=, !=, <, >), got \"~ 0\""),
            ("version(k) =", "line 1: version(k) = needs an operand"),
            ("version(k) = x", "line 1: version compares with a whole number, not \"x\""),
            ("exists(k) < true", "line 1: exists compares with = or != only"),
            ("exists(k) = yes", "line 1: exists compares with true or false, not \"yes\""),
            ("value(k) = \"open", "line 1: a quoted string is not closed"),
            ("\nput k", "line 2: `put` needs a value after the key"),
            ("\nput k two words", "line 2: unexpected \"words\" at the end of the line (quote a value with spaces; `--lease ID` attaches the key to a lease)"),
            ("\n\nfrob k", "line 3: unknown operation \"frob\"; expected put, del, get or scan"),
            ("\nscan p ten", "line 2: scan's limit is a whole number, not \"ten\""),
            ("\ndel --prefix \"\"", "line 2: del --prefix needs a prefix that is not empty"),
            ("\n\n\nget k", "line 4: a transaction has three blocks (comparisons, success, failure), each ended by a blank line; this is a fourth"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_txn(text).expect_err(text), expected, "{text:?}");
        }
        assert_eq!(
            parse_txn("value(k) = \"a\\qb\"").expect_err("escape"),
            "line 1: unknown escape \\q (known: \\\" \\\\ \\n \\t)"
        );
        assert_eq!(
            parse_txn("\nput a\"b c").expect_err("quote"),
            "line 2: a quote inside the word \"a\\\"b\"; quote the whole word"
        );
    }
}
