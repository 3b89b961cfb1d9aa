//! Throw-away certificates for the tests' TLS peers (SMTP, IRC), made with the openssl
//! command (`scripts/install-aiosmtpd` and `scripts/install-irc` make sure it is there).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl args` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A throw-away CA and a server certificate it signed for 127.0.0.1: (ca.pem, cert.pem,
/// key.pem). (rustls, rightly, takes no self-signed server certificate as its own anchor.)
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let ext = p("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tidings test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// A self-signed server certificate as `openssl req -x509` makes it (CA:TRUE), for the
/// subject alternative name `san` (`IP:127.0.0.1`, `DNS:…`): (cert.pem, key.pem) in `dir`,
/// named after `name`. `expired`: valid only on 2020-01-01 (made with `openssl ca`, whose
/// `-startdate`/`-enddate` can put the period in the past).
pub fn self_signed(dir: &Path, name: &str, san: &str, expired: bool) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| openssl(dir, args);
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let subj = format!("/CN={name}");
    if !expired {
        let ext = format!("subjectAltName={san}");
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            &ext,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            &key,
            "-out",
            &cert,
        ]);
    } else {
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName={san}\nbasicConstraints=critical,CA:TRUE\n"),
        )
        .unwrap();
        let csr = format!("{name}.csr");
        run(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr,
        ]);
        run(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            &key,
            "-in",
            &csr,
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extfile",
            &ext,
            "-notext",
            "-out",
            &cert,
        ]);
    }
    (dir.join(cert), dir.join(key))
}
