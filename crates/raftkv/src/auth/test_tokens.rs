//! The tokens and the token file the auth modules' unit tests share.

use sha2::{Digest, Sha256};

use super::TokenStore;

pub(super) const READER: &str = "reader-token-0123456789";
pub(super) const WRITER: &str = "writer-token-0123456789";
pub(super) const ADMIN: &str = "admin-token-0123456789";

/// The SHA-256 of `text` in lower-case hex, as `sha256sum` prints it.
pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A store of the three tokens: the reader's as an upper-case digest, the others as tokens.
pub(super) fn store() -> TokenStore {
    let text = format!(
        "[[token]]\nname = \"reader\"\nrole = \"read-only\"\ntoken_sha256 = \"{}\"\n\
         [[token]]\nname = \"writer\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
         [[token]]\nname = \"admin\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n",
        sha256_hex(READER).to_uppercase()
    );
    TokenStore::parse(&text).expect("a valid file")
}
