//! Turns a documented command's words into ones that run here: the documented ports become
//! free ports (the same free port for the same documented port throughout a page), the
//! machines `10.0.0.N` become `127.0.0.N`, and absolute paths land in the page's temporary
//! directory.
//!
//! ```text
//!  "https://10.0.0.1:8001/v1/kv"  ─►  "https://127.0.0.1:41234/v1/kv"
//!  "--raft-addr 0.0.0.0:9001"     ─►  "--raft-addr 127.0.0.N:41237"   (machine N's own address)
//!  "/var/lib/raftkv"              ─►  "TMP/machine-N/var/lib/raftkv"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::{free_port, free_port_run};

/// Documented port → free port, for one page.
pub struct Ports {
    map: HashMap<u16, u16>,
}

impl Ports {
    /// The dev cluster's ports (HTTP 8001.., Raft 9001.., etcd gRPC 2379..) come as runs of
    /// consecutive free ports, as `raftkv dev --http-port P --raft-port Q --grpc-port R` uses
    /// P, P+1, P+2, Q, Q+1, Q+2 and R, R+1, R+2.
    pub fn new() -> Ports {
        let first = free_port_run(9);
        let mut map = HashMap::new();
        for offset in 0..3 {
            map.insert(8001 + offset, first + offset);
            map.insert(9001 + offset, first + 3 + offset);
            map.insert(2379 + offset, first + 6 + offset);
        }
        Ports { map }
    }

    /// The free port standing for `documented`.
    pub fn get(&mut self, documented: u16) -> u16 {
        *self.map.entry(documented).or_insert_with(free_port)
    }
}

/// What a rewrite needs to know about where the command runs.
pub struct Place<'a> {
    pub dir: &'a Path,
    /// The machine (1, 2, 3) a multi-machine command runs as; `None` for one machine.
    pub machine: Option<u32>,
}

impl Place<'_> {
    /// Where an absolute path of the docs lands.
    pub fn path(&self, absolute: &str) -> PathBuf {
        let root = match self.machine {
            Some(machine) => self.dir.join(format!("machine-{machine}")),
            None => self.dir.join("root"),
        };
        root.join(absolute.trim_start_matches('/'))
    }

    /// This machine's own loopback address.
    pub fn own_ip(&self) -> String {
        format!("127.0.0.{}", self.machine.unwrap_or(1))
    }
}

/// The flags whose address is the node's own (what it binds or announces).
const OWN_ADDRESS_FLAGS: [&str; 4] = [
    "--raft-addr",
    "--http-addr",
    "--grpc-addr",
    "--advertise-raft-addr",
];

/// Rewrites every word of a command (see the module's doc).
pub fn rewrite_words(words: &[String], ports: &mut Ports, place: &Place) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    for (index, word) in words.iter().enumerate() {
        let own = index > 0 && OWN_ADDRESS_FLAGS.contains(&words[index - 1].as_str());
        let mut word = rewrite_addresses(word, ports, own.then(|| place.own_ip()));
        if word.starts_with('/') && !word.starts_with("/dev/") {
            word = place.path(&word).display().to_string();
        }
        out.push(word);
    }
    out
}

/// Rewrites each `A.B.C.D[:PORT]` inside `word`. `own_ip`, for a node's own-address flag,
/// replaces the host (a bind to `0.0.0.0` or the machine's `10.0.0.N`).
pub fn rewrite_addresses(word: &str, ports: &mut Ports, own_ip: Option<String>) -> String {
    let bytes = word.as_bytes();
    let mut out = String::new();
    let mut index = 0;
    while index < bytes.len() {
        let boundary =
            index == 0 || !(bytes[index - 1].is_ascii_digit() || bytes[index - 1] == b'.');
        if boundary && bytes[index].is_ascii_digit() {
            if let Some((ip, port, length)) = address_at(&word[index..]) {
                let host = match (&own_ip, ip.as_str()) {
                    (Some(own), _) => own.clone(),
                    (None, ip) => match ip.strip_prefix("10.0.0.") {
                        Some(machine) => format!("127.0.0.{machine}"),
                        None if ip == "0.0.0.0" => "127.0.0.1".to_string(),
                        None => ip.to_string(),
                    },
                };
                out.push_str(&host);
                if let Some(port) = port {
                    out.push_str(&format!(":{}", ports.get(port)));
                }
                index += length;
                continue;
            }
        }
        let c = word[index..].chars().next().expect("inside the word");
        out.push(c);
        index += c.len_utf8();
    }
    out
}

/// `A.B.C.D[:PORT]` at the start of `text`: the address, the port and the length matched.
fn address_at(text: &str) -> Option<(String, Option<u16>, usize)> {
    let ip_length = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let ip = text[..ip_length].trim_end_matches('.');
    let ip_length = ip.len();
    if ip.split('.').count() != 4 || ip.split('.').any(|part| part.parse::<u8>().is_err()) {
        return None;
    }
    let Some(rest) = text[ip_length..].strip_prefix(':') else {
        return Some((ip.to_string(), None, ip_length));
    };
    let port_length = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    match rest[..port_length].parse::<u16>() {
        Ok(port) => Some((ip.to_string(), Some(port), ip_length + 1 + port_length)),
        Err(_) => Some((ip.to_string(), None, ip_length)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_ports_and_paths() {
        let mut ports = Ports::new();
        let p8001 = ports.get(8001);
        let p9001 = ports.get(9001);
        assert_eq!(ports.get(8002), p8001 + 1);
        let dir = Path::new("/tmp/x");
        let place = Place {
            dir,
            machine: Some(2),
        };
        let words: Vec<String> = [
            "--raft-addr",
            "0.0.0.0:9001",
            "--peers",
            "1=10.0.0.1:9001,2=10.0.0.2:9001",
            "--data-dir",
            "/var/lib/raftkv",
            "https://10.0.0.1:8001/v1/kv",
            "1=10.0.0.1,3=10.0.0.3",
        ]
        .iter()
        .map(|word| word.to_string())
        .collect();
        let out = rewrite_words(&words, &mut ports, &place);
        assert_eq!(out[1], format!("127.0.0.2:{p9001}"));
        assert_eq!(out[3], format!("1=127.0.0.1:{p9001},2=127.0.0.2:{p9001}"));
        assert_eq!(out[5], "/tmp/x/machine-2/var/lib/raftkv");
        assert_eq!(out[6], format!("https://127.0.0.1:{p8001}/v1/kv"));
        assert_eq!(out[7], "1=127.0.0.1,3=127.0.0.3");
    }
}
