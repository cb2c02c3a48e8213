//! Where a request goes: endpoints as users write them turned into base URLs, and keys and query
//! values percent-encoded into paths.
//!
//! ```text
//!  "node-1:8001", "http://node-1:8001/", "https://node-1:8001" (with TLS)
//!      └─► parse_endpoint ─► "http://node-1:8001" / "https://node-1:8001"   (the base URL)
//!  key "a/b c" ─► key_path ─► "/v1/kv/a%2Fb%20c"                          (one path segment)
//! ```

use hyper::Uri;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{ClientError, ClientOptions};
use crate::api::KEY_BYTES_MAX;

/// Characters left as they are in a path segment or query value: RFC 3986's unreserved set.
/// Everything else, `/` and `?` included, is percent-encoded, so a key is always one segment.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Refuses a zero request timeout, and parses each endpoint (trimmed) with [`parse_endpoint`]:
/// the endpoints as given and their base URLs, in the same order.
pub(super) fn parse_endpoints<I, S>(
    endpoints: I,
    options: ClientOptions,
    https: bool,
) -> Result<(Vec<String>, Vec<String>), ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    if options.request_timeout.is_zero() {
        return Err(ClientError::InvalidInput(
            "request_timeout must not be zero".to_string(),
        ));
    }
    let mut given = Vec::new();
    let mut base_urls = Vec::new();
    for endpoint in endpoints {
        let endpoint = endpoint.as_ref().trim();
        base_urls.push(parse_endpoint(endpoint, https)?);
        given.push(endpoint.to_string());
    }
    if given.is_empty() {
        return Err(ClientError::InvalidInput(
            "at least one endpoint is needed".to_string(),
        ));
    }
    assert_eq!(given.len(), base_urls.len(), "one base URL per endpoint");
    Ok((given, base_urls))
}

/// `scheme://authority` for an endpoint given as `host:port`, `http://host:port` or (with TLS,
/// `https` true) `https://host:port`; without a scheme it is `https` when `https`, else `http`.
/// A trailing `/` is tolerated. Anything with a path, a query, user information or another
/// scheme is refused.
pub(super) fn parse_endpoint(endpoint: &str, https: bool) -> Result<String, ClientError> {
    let invalid = |why: &str| ClientError::InvalidInput(format!("endpoint {endpoint:?}: {why}"));
    if endpoint.is_empty() {
        return Err(invalid("empty"));
    }
    let default_scheme = if https { "https" } else { "http" };
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("{default_scheme}://{endpoint}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|error| invalid(&format!("{error}")))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") if https => "https",
        Some("https") => {
            return Err(invalid(
                "https:// needs TLS settings (a CA certificate: Client::with_tls, --ca-cert)",
            ))
        }
        _ => return Err(invalid("only http:// and https:// are supported")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user information is not supported"));
    }
    if !(uri.path().is_empty() || uri.path() == "/") || uri.query().is_some() {
        return Err(invalid("expected host:port without a path"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `/v1/kv/{key}` with the key percent-encoded as one path segment.
pub(super) fn key_path(key: &str) -> Result<String, ClientError> {
    if key.is_empty() {
        return Err(ClientError::InvalidInput("empty key".to_string()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ClientError::InvalidInput(format!(
            "key of {} bytes is longer than {KEY_BYTES_MAX} bytes",
            key.len()
        )));
    }
    Ok(format!("/v1/kv/{}", encode(key)))
}

/// `text` percent-encoded for a path segment or a query value.
pub(super) fn encode(text: &str) -> impl std::fmt::Display + '_ {
    utf8_percent_encode(text, UNRESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_to_base_urls() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8001", false).ok(),
            Some("http://127.0.0.1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("http://node-1:8001/", false).ok(),
            Some("http://node-1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("[::1]:8001", false).ok(),
            Some("http://[::1]:8001".to_string())
        );
        for bad in [
            "",
            "https://node:1",
            "node:1/path",
            "http://",
            "user@node:1",
            "node:1?x=1",
        ] {
            assert!(
                matches!(
                    parse_endpoint(bad, false),
                    Err(ClientError::InvalidInput(_))
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn with_tls_endpoints_default_to_https_and_http_stays_possible() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8001", true).ok(),
            Some("https://127.0.0.1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("https://node-1:8001/", true).ok(),
            Some("https://node-1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("http://node-1:8001", true).ok(),
            Some("http://node-1:8001".to_string())
        );
        let error = parse_endpoint("https://node-1:8001", false).expect_err("no TLS settings");
        assert!(error.to_string().contains("--ca-cert"), "{error}");
        assert!(parse_endpoint("ftp://node-1:8001", true).is_err());
    }

    #[test]
    fn keys_are_one_encoded_path_segment() {
        assert_eq!(key_path("a/b c").ok(), Some("/v1/kv/a%2Fb%20c".to_string()));
        assert_eq!(
            key_path("A-z_0.9~").ok(),
            Some("/v1/kv/A-z_0.9~".to_string())
        );
        assert_eq!(
            key_path("é?#%").ok(),
            Some("/v1/kv/%C3%A9%3F%23%25".to_string())
        );
        assert!(matches!(key_path(""), Err(ClientError::InvalidInput(_))));
        assert!(key_path(&"k".repeat(KEY_BYTES_MAX)).is_ok());
        assert!(matches!(
            key_path(&"k".repeat(KEY_BYTES_MAX + 1)),
            Err(ClientError::InvalidInput(_))
        ));
    }
}
