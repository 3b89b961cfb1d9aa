//! What every HTTP sink shares (HTTP push today; GitHub, Bitbucket Server, GitLab and Gerrit's
//! REST transport next): the client builder (timeouts, extra CA, client certificate, `verify`,
//! fixed headers), authentication through reqwest's own helpers, the default map from a status
//! code to a [`RetryClass`], `Retry-After`, and transport errors in words.
//!
//! A sink keeps its own decisions (which statuses mean "rate limited" for GitHub, say) and calls
//! [`classify`] for the rest, so the defaults stay in one place.

use crate::config::Secret;
use crate::outbox::{RetryClass, SinkError};
use crate::tls::TlsOptions;
use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// HTTP authentication: `{ user = "…", password = "…" }` (Basic) or `{ bearer = "…" }`.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    Basic { user: String, password: Secret },
    Bearer { bearer: Secret },
}

impl<'de> Deserialize<'de> for HttpAuth {
    /// Says what is expected and which key is wrong, never a value (they are secrets).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HttpAuth, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str =
            "expected { user = \"…\", password = \"…\" } (Basic) or { bearer = \"…\" }";
        let table = BTreeMap::<String, String>::deserialize(d)
            .map_err(|_| D::Error::custom(format!("auth: {EXPECTED}, with string values")))?;
        let secret = |k: &str| Secret::resolve(&table[k]).map_err(D::Error::custom);
        let keys: Vec<&str> = table.keys().map(String::as_str).collect();
        match keys.as_slice() {
            ["password", "user"] => Ok(HttpAuth::Basic {
                user: table["user"].clone(),
                password: secret("password")?,
            }),
            ["bearer"] => Ok(HttpAuth::Bearer {
                bearer: secret("bearer")?,
            }),
            _ => Err(D::Error::custom(format!(
                "auth: {EXPECTED}; got the keys [{}]",
                keys.join(", ")
            ))),
        }
    }
}

impl HttpAuth {
    /// Adds the `Authorization` header to a request (reqwest marks it sensitive).
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            HttpAuth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
            HttpAuth::Bearer { bearer } => request.bearer_auth(bearer.expose()),
        }
    }
}

/// How to build a sink's HTTP client.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions<'a> {
    /// The most one request may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Verify the server's certificate (only an operator's explicit `verify = false` turns
    /// this off).
    pub verify: bool,
    /// Extra CA certificates (PEM) to trust, and self-signed server certificates to accept as
    /// they are (see [`crate::tls`]).
    pub ca_file: Option<&'a Path>,
    /// A client certificate and its key, both in one PEM file.
    pub client_cert: Option<&'a Path>,
    /// Headers sent with every request.
    pub headers: Option<&'a BTreeMap<String, String>>,
}

/// Builds a client: `User-Agent: tidings/<version>`, a 10 s connect timeout, the options'
/// request timeout, TLS settings and fixed headers. Errors name the option that is wrong.
pub fn client(o: &ClientOptions<'_>) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    for (k, v) in o.headers.into_iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes())
            .with_context(|| format!("header name {k:?} is not valid"))?;
        let value = HeaderValue::from_str(v)
            .with_context(|| format!("the value of header {k:?} is not valid"))?;
        headers.insert(name, value);
    }
    let b = reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .timeout(o.timeout)
        .connect_timeout(Duration::from_secs(10).min(o.timeout))
        .use_preconfigured_tls(
            crate::tls::client_config(&TlsOptions {
                ca_file: o.ca_file,
                insecure: !o.verify,
                client_cert: o.client_cert,
            })?
            .as_ref()
            .clone(),
        );
    b.build().context("cannot build the HTTP client")
}

/// `s` percent-encoded as one path segment (`tools/widget` → `tools%2Fwidget`).
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The default retry class of an answer: 408, 425, 429 and 5xx are transient (a `Retry-After`
/// says when to come back); any other status is permanent.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> RetryClass {
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    match (transient, retry_after) {
        (true, Some(d)) => RetryClass::RetryAfter(d),
        (true, None) => RetryClass::Backoff,
        (false, _) => RetryClass::Never,
    }
}

/// `Retry-After` of an answer, if it has a valid one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// `Retry-After`: delay-seconds or an HTTP date (a date in the past is "now").
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// A failed request as a [`SinkError`]: nothing reached the peer when it could not connect
/// (retried with backoff); after that (a timeout, a connection cut while waiting for the
/// answer) the peer may have acted on it ([`RetryClass::MaybeDelivered`]: the outbox retries it
/// only for an idempotent sink).
pub fn transport_error(e: &reqwest::Error) -> SinkError {
    if let Some(why) = crate::tls::certificate_problem(e) {
        return SinkError::new(RetryClass::Never, format!("TLS: {why}"));
    }
    let class = if e.is_connect() || e.is_builder() {
        RetryClass::Backoff
    } else {
        RetryClass::MaybeDelivered
    };
    SinkError::new(class, describe(e))
}

/// A transport error in words, with its whole cause chain (reqwest's `Display` hides it).
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    out.push_str(&error_chain(e));
    out
}

/// `: cause: its cause: …` for every source of `e`, leaving out a cause whose text was
/// already said (libraries often repeat their source in their own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut said = e.to_string();
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !said.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
            said.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A short excerpt of an answer's body for the delivery log: at most 200 characters, trimmed.
pub fn snippet(text: &str) -> String {
    text.chars().take(200).collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("tools/widget"), "tools%2Fwidget");
        assert_eq!(encode_segment("a b~c"), "a%20b~c");
    }

    #[test]
    fn statuses_map_to_retry_classes() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(500), None), RetryClass::Backoff);
        assert_eq!(classify(s(503), None), RetryClass::Backoff);
        assert_eq!(
            classify(s(429), Some(Duration::from_secs(2))),
            RetryClass::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(classify(s(408), None), RetryClass::Backoff);
        assert_eq!(classify(s(400), None), RetryClass::Never);
        assert_eq!(classify(s(401), None), RetryClass::Never);
        assert_eq!(
            classify(s(404), Some(Duration::from_secs(2))),
            RetryClass::Never
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn auth_errors_say_what_is_expected_and_never_a_value() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            auth: HttpAuth,
        }
        let ok: T = toml::from_str("auth = { user = \"u\", password = \"p\" }").unwrap();
        assert!(matches!(ok.auth, HttpAuth::Basic { ref user, .. } if user == "u"));
        let ok: T = toml::from_str("auth = { bearer = \"t\" }").unwrap();
        assert!(matches!(ok.auth, HttpAuth::Bearer { .. }));
        for bad in [
            "auth = { user = \"u\", password = \"LEAKME\", extra = 1 }",
            "auth = { user = \"u\", password = \"LEAKME\", extra = \"x\" }",
            "auth = { token = \"LEAKME\" }",
            "auth = \"LEAKME\"",
        ] {
            let e = toml::from_str::<T>(bad).unwrap_err().message().to_owned();
            assert!(e.contains("expected { user"), "{bad}: {e}");
            assert!(!e.contains("LEAKME"), "{bad}: {e}");
        }
        let e = toml::from_str::<T>("auth = { token = \"x\" }")
            .unwrap_err()
            .message()
            .to_owned();
        assert!(e.contains("got the keys [token]"), "{e}");
    }

    #[test]
    fn a_client_names_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        fn o<'a>(ca: Option<&'a Path>, cert: Option<&'a Path>) -> ClientOptions<'a> {
            ClientOptions {
                timeout: Duration::from_secs(1),
                verify: true,
                ca_file: ca,
                client_cert: cert,
                headers: None,
            }
        }
        let e = client(&o(Some(&dir.path().join("none.pem")), None)).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read the CA file"),
            "{e:#}"
        );
        assert!(format!("{e:#}").contains("none.pem"), "{e:#}");
        let e = client(&o(Some(&not_pem), None)).unwrap_err();
        assert!(format!("{e:#}").contains("holds no certificate"), "{e:#}");
        let e = client(&o(None, Some(&not_pem))).unwrap_err();
        assert!(
            format!("{e:#}").contains("must hold a certificate and its private key"),
            "{e:#}"
        );
        assert!(client(&o(None, None)).is_ok());
    }

    /// A self-signed certificate for 127.0.0.1 as `openssl req -x509` makes it (CA:TRUE):
    /// (cert.pem, key.pem).
    fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=peer",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (dir.join("cert.pem"), dir.join("key.pem"))
    }

    #[tokio::test]
    async fn an_https_peer_with_a_self_signed_certificate_is_trusted_when_pinned() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(&cert).unwrap()],
            PrivateKeyDer::from_pem_file(&key).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let options = |ca| ClientOptions {
            timeout: Duration::from_secs(5),
            verify: true,
            ca_file: ca,
            client_cert: None,
            headers: None,
        };
        // Pinned in ca_file: trusted, as curl --cacert trusts it.
        let pinned = client(&options(Some(&cert))).unwrap();
        let answer = pinned.get(&url).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "ok");
        // Not in ca_file: refused, and said in a sentence (a dead letter for a sink).
        let e = client(&options(None))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap_err();
        let why = crate::tls::certificate_problem(&e).expect("a certificate problem");
        assert!(why.contains("put its certificate in the CA file"), "{why}");
        assert!(matches!(transport_error(&e).class, RetryClass::Never));
    }
}
