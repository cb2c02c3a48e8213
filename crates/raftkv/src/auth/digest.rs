//! Tokens as SHA-256 digests: the form a token file may keep them in (64 hex digits, read
//! with the `hex` crate) and the form every token is compared in, with the `subtle` crate, in
//! time that does not depend on where two digests differ.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a token. No `Debug`: nothing prints it.
#[derive(Clone, Copy)]
pub(super) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub(super) fn of(token: &[u8]) -> TokenDigest {
        TokenDigest(Sha256::digest(token).into())
    }

    /// 64 hex digits (either case, surrounding white space ignored) as a digest. The reason
    /// quotes nothing of `text`.
    pub(super) fn from_hex(text: &str) -> Result<TokenDigest, String> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!(
                "token_sha256 must be 64 hex digits, not {}",
                text.len()
            ));
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text, &mut digest)
            .map_err(|_| "token_sha256 must be hex digits only".to_string())?;
        Ok(TokenDigest(digest))
    }

    /// Whether `self` and `other` are the same digest, looking at every byte whatever the
    /// first difference.
    pub(super) fn matches(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_read_from_64_hex_digits_of_either_case_and_matches_its_token() {
        let token = b"writer-token-0123456789";
        let hex_digits = hex::encode(Sha256::digest(token));
        for text in [
            hex_digits.clone(),
            hex_digits.to_uppercase(),
            format!(" {hex_digits}\n"),
        ] {
            let digest = TokenDigest::from_hex(&text).expect("64 hex digits");
            assert!(digest.matches(&TokenDigest::of(token)), "{text}");
            assert!(!digest.matches(&TokenDigest::of(b"writer-token-0123456788")));
        }
        let short = TokenDigest::from_hex(&hex_digits[..62]).err();
        assert_eq!(
            short.as_deref(),
            Some("token_sha256 must be 64 hex digits, not 62")
        );
        let mut not_hex = hex_digits.clone();
        not_hex.replace_range(10..11, "g");
        assert_eq!(
            TokenDigest::from_hex(&not_hex).err().as_deref(),
            Some("token_sha256 must be hex digits only")
        );
        // 64 bytes, but not 64 digits: a character of two bytes.
        let wide = format!("é{}", &hex_digits[2..]);
        assert_eq!(wide.len(), 64);
        assert!(TokenDigest::from_hex(&wide).is_err());
    }
}
