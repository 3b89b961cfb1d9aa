//! What every TLS client shares when the handshake fails: a certificate that cannot be verified
//! is found in an error chain ([`certificate_problem`]) and said in one plain sentence, and the
//! delivery is dead-lettered at once — retrying cannot fix a certificate, and an endless retry
//! hides the problem from the operator.

use rustls::{CertificateError, Error as TlsError};
use std::error::Error;

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

/// A rustls error itself, or one inside an `io::Error` (whose `source()` skips it).
fn find_tls<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a TlsError> {
    if let Some(t) = err.downcast_ref::<TlsError>() {
        return Some(t);
    }
    err.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<TlsError>())
}

fn sentence(e: &TlsError) -> Option<String> {
    let TlsError::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a CA tidings trusts: add the issuing CA (or, for a self-signed server, its certificate) to the reporter's CA file".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (check the clocks)".into()
        }
        CertificateError::NotValidForName => {
            "the server's certificate is not valid for the host name tidings connected to".into()
        }
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "the server's certificate is for {}, not for {expected:?}, the host name tidings connected to",
            if presented.is_empty() {
                "no host name".to_owned()
            } else {
                presented.join(", ")
            }
        ),
        CertificateError::Revoked => "the server's certificate has been revoked".into(),
        other => format!("the server's certificate cannot be verified ({other:?})"),
    })
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
    }
}
