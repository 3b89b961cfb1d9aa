//! The TLS client side every client of tidings shares — SMTP, the HTTP sinks, a Buildbot
//! master's API and event stream, and every reporter to come — so that one setting means the
//! same thing everywhere:
//!
//! - Servers are verified against the Mozilla roots (`webpki-roots`) plus every certificate in
//!   the client's CA file (`tls_ca_file` / `ca_file`), host name included. Nothing is ever
//!   accepted blindly unless the operator says so for an HTTP sink (`verify = false`).
//! - A server certificate that is byte for byte one of the certificates in the CA file is
//!   accepted as it is (pinning), after its host name and validity period are checked: that is
//!   how Python, curl and Buildbot take a self-signed server (`openssl req -x509 …`, which marks
//!   the certificate CA:TRUE and which webpki, rightly, refuses as a CA of itself). Trusting a
//!   certificate by its bytes is at least as strict as trusting it as a CA.
//! - A certificate that cannot be verified is found in an error chain ([`certificate_problem`])
//!   and said in one plain sentence; the delivery is dead-lettered at once, because retrying
//!   cannot fix a certificate and an endless retry hides the problem from the operator.

use anyhow::{Context, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How one TLS client verifies servers and identifies itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsOptions<'a> {
    /// Extra CA certificates (PEM), and self-signed server certificates to accept as they are.
    pub ca_file: Option<&'a Path>,
    /// Accept any certificate (an HTTP sink's explicit `verify = false`; nothing else sets it).
    pub insecure: bool,
    /// A client certificate (with its chain) and its private key, both in one PEM file.
    pub client_cert: Option<&'a Path>,
}

/// The rustls configuration for `o`. Errors name the file and what is wrong with it.
pub fn client_config(o: &TlsOptions<'_>) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut pinned = Vec::new();
    if let Some(path) = o.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("the CA file {} is not PEM: {e}", path.display()))?;
        if certs.is_empty() {
            bail!("the CA file {} holds no certificate", path.display());
        }
        for cert in certs {
            // A certificate webpki cannot take as an anchor (a v1 certificate, say) can still be
            // pinned; one that is not a certificate at all is an error.
            ParsedCertificate::try_from(&cert).map_err(|e| {
                anyhow::anyhow!(
                    "the CA file {} holds a certificate that cannot be read: {e}",
                    path.display()
                )
            })?;
            let _ = roots.add(cert.clone());
            pinned.push(cert);
        }
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS settings")?;
    let check = if o.insecure {
        Check::Nothing
    } else {
        Check::Verify {
            webpki: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("TLS settings")?,
            pinned,
        }
    };
    let verifier = Arc::new(Verifier { check, provider });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match o.client_cert {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| {
                format!("cannot read the client certificate {}", path.display())
            })?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|c| !c.is_empty());
            let key = PrivateKeyDer::from_pem_slice(&pem).ok();
            let (Some(chain), Some(key)) = (chain, key) else {
                bail!(
                    "{} must hold a certificate and its private key, both in PEM",
                    path.display()
                );
            };
            builder
                .with_client_auth_cert(chain, key)
                .with_context(|| format!("the client certificate {}", path.display()))?
        }
    };
    Ok(Arc::new(config))
}

/// How server certificates are checked; the handshake's signatures are always verified, so the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
enum Check {
    /// As webpki does, except that a certificate from the CA file is accepted by its bytes
    /// (its host name and validity period still checked).
    Verify {
        webpki: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
    },
    /// `verify = false`: any certificate, any name.
    Nothing,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Check::Verify { webpki, pinned } = &self.check else {
            return Ok(ServerCertVerified::assertion());
        };
        if !pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&cert, server_name)?;
        let (not_before, not_after) = validity(end_entity.as_ref())
            .ok_or(TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0) as u64));
        let time = now;
        let now = now.as_secs() as i64;
        if now < not_before {
            return Err(TlsError::InvalidCertificate(
                CertificateError::NotValidYetContext {
                    time,
                    not_before: at(not_before),
                },
            ));
        }
        if now > not_after {
            return Err(TlsError::InvalidCertificate(
                CertificateError::ExpiredContext {
                    time,
                    not_after: at(not_after),
                },
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One DER item: (tag, contents, what follows). Definite lengths up to 4 bytes, as X.509 has.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A certificate's validity period (notBefore, notAfter) in Unix seconds.
fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der(rest)?.2; // version
    }
    for _ in 0..3 {
        rest = der(rest)?.2; // serialNumber, signature, issuer
    }
    let (0x30, validity, _) = der(rest)? else {
        return None;
    };
    let (t1, not_before, rest) = der(validity)?;
    let (t2, not_after, _) = der(rest)?;
    Some((asn1_time(t1, not_before)?, asn1_time(t2, not_after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) in Unix seconds.
fn asn1_time(tag: u8, s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (month, day, h, m, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// The certificate verification failure somewhere in `e`'s chain, as a sentence; `None` when
/// the failure is not about the server's certificate.
pub fn certificate_problem(e: &(dyn Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = find_tls(err) {
            return sentence(t);
        }
        next = err.source();
    }
    None
}

/// A rustls error itself, or one inside an `io::Error` — or inside one inside another, as
/// connectors nest them (`io::Error::source` skips the error it wraps).
fn find_tls<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a TlsError> {
    if let Some(t) = err.downcast_ref::<TlsError>() {
        return Some(t);
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_tls(inner)
}

fn sentence(e: &TlsError) -> Option<String> {
    let TlsError::InvalidCertificate(c) = e else {
        return None;
    };
    let date = |t: &UnixTime| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs());
        humantime::format_rfc3339_seconds(t).to_string()
    };
    Some(match c {
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a CA tidings trusts: add the issuing CA (or, for a self-signed server, that certificate itself) to the CA file".into(),
        CertificateError::Expired => "the server's certificate has expired".into(),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("the server's certificate expired on {}", date(not_after))
        }
        CertificateError::NotValidYet => {
            "the server's certificate is not valid yet (check the clocks)".into()
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {} (check the clocks)",
            date(not_before)
        ),
        CertificateError::NotValidForName => {
            "the server's certificate is not valid for the host name tidings connected to".into()
        }
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "the server's certificate is for {}, not for {}, the host name tidings connected to",
            if presented.is_empty() {
                "no host name".to_owned()
            } else {
                presented.iter().map(|p| plain_name(p)).collect::<Vec<_>>().join(", ")
            },
            server_name(expected)
        ),
        CertificateError::Revoked => "the server's certificate has been revoked".into(),
        CertificateError::Other(o) if format!("{:?}", o.0).contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate as its own and that certificate is not in the CA file: to trust a self-signed server, put its certificate in the CA file".into()
        }
        CertificateError::Other(o) => {
            format!("the server's certificate cannot be verified: {}", o.0)
        }
        other => format!("the server's certificate cannot be verified ({other:?})"),
    })
}

/// A name the certificate presents, as webpki describes it (`DnsName("ci.example")`,
/// `IpAddress(10.0.0.1)`), as a person would write it.
fn plain_name(p: &str) -> &str {
    p.split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(p, |inner| inner.trim_matches('"'))
}

/// A host name or address as the operator wrote it.
fn server_name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_is_found_inside_io_errors() {
        let tls = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::other(tls);
        let s = certificate_problem(&io).unwrap();
        assert!(s.contains("not signed by a CA tidings trusts"), "{s}");
        let expired = TlsError::InvalidCertificate(CertificateError::Expired);
        assert!(certificate_problem(&expired).unwrap().contains("expired"));
        assert_eq!(certificate_problem(&std::io::Error::other("refused")), None);
        assert_eq!(certificate_problem(&TlsError::DecryptError), None);
        assert_eq!(plain_name("DnsName(\"ci.example\")"), "ci.example");
        assert_eq!(plain_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(plain_name("ci.example"), "ci.example");
    }

    #[test]
    fn asn1_times_are_read_as_unix_seconds() {
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(0x17, b"200102000000Z"), Some(1_577_923_200));
        assert_eq!(asn1_time(0x18, b"20491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(0x17, b"2001020000Z"), None);
        assert_eq!(asn1_time(0x18, b"20200102000000"), None);
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
    }
}
