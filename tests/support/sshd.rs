//! A real OpenSSH server for the Gerrit tests (`scripts/install-sshd`), on a port of the
//! test's own, with a throw-away host key and user key. Its `ForceCommand` is a fake `gerrit`
//! that answers `gerrit version` with the version the test chose and records every command line
//! it receives, exactly as ssh delivered it.

use super::daemon::wait_until;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running sshd; stopped when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The user the bot logs in as (the one running the tests).
    pub user: String,
    /// The key it logs in with, and a known_hosts file with the server's key.
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    dir: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tidings-test", "-f"])
        .arg(path));
}

impl Sshd {
    /// Starts sshd in `dir` (created) whose fake gerrit says it is `version`.
    pub fn start(dir: &Path, version: &str) -> Sshd {
        super::install("install-sshd");
        std::fs::create_dir_all(dir).unwrap();
        let port = super::free_port();
        let p = |n: &str| dir.join(n);
        keygen(&p("host_key"));
        keygen(&p("id_ed25519"));
        std::fs::copy(p("id_ed25519.pub"), p("authorized_keys")).unwrap();
        std::fs::write(p("version"), version).unwrap();
        let gerrit = p("fake-gerrit");
        std::fs::write(
            &gerrit,
            format!(
                r#"#!/bin/sh
# Records the command line as ssh delivered it (NUL-terminated), then acts as gerrit.
dir='{d}'
printf '%s\0' "$SSH_ORIGINAL_COMMAND" >> "$dir/commands"
if [ "$SSH_ORIGINAL_COMMAND" = "gerrit version" ]; then
  if [ -f "$dir/probe-fails" ]; then rm -f "$dir/probe-fails"; echo "fatal: not now" >&2; exit 1; fi
  echo "gerrit version $(cat "$dir/version")"
  exit 0
fi
if [ -f "$dir/review-fails" ]; then rm -f "$dir/review-fails"; echo "fatal: not this time" >&2; exit 1; fi
exit 0
"#,
                d = dir.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gerrit, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = p("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nForceCommand {gerrit}\n\
                 PidFile {pid}\nLogLevel VERBOSE\n",
                hk = p("host_key").display(),
                ak = p("authorized_keys").display(),
                gerrit = gerrit.display(),
                pid = p("sshd.pid").display(),
            ),
        )
        .unwrap();
        let host_pub = std::fs::read_to_string(p("host_key.pub")).unwrap();
        let known_hosts = p("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        // sshd's privilege separation directory (a package install makes it at boot).
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(p("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let s = Sshd {
            child,
            port,
            user,
            identity: p("id_ed25519"),
            known_hosts,
            dir: dir.to_owned(),
        };
        wait_until("sshd to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }

    /// The command lines the fake gerrit received, in order.
    pub fn commands(&self) -> Vec<String> {
        let raw = std::fs::read(self.dir.join("commands")).unwrap_or_default();
        raw.split(|b| *b == 0)
            .filter(|c| !c.is_empty())
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    }

    /// Makes the next `gerrit version` fail once.
    pub fn fail_next_probe(&self) {
        std::fs::write(self.dir.join("probe-fails"), "").unwrap();
    }

    /// Makes the next `gerrit review` fail once (exit 1).
    pub fn fail_next_review(&self) {
        std::fs::write(self.dir.join("review-fails"), "").unwrap();
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
