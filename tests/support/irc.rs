//! Real IRC servers for the IRC tests (`scripts/install-irc`), on ports of the test's own:
//! ngIRCd, InspIRCd 3 and Atheme services linked to either (NickServ, SaslServ); and a small
//! IRC client that reads what the bot says.

use super::daemon::wait_until;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running ngIRCd; stopped when dropped.
pub struct Ngircd {
    child: Option<Child>,
    conf: PathBuf,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub log: PathBuf,
}

/// How the server is set up.
#[derive(Default)]
pub struct Setup<'a> {
    /// A predefined channel and its key.
    pub channel: Option<(&'a str, &'a str)>,
    /// A TLS port with this certificate and key.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Accept Atheme ([`Atheme::start`]) as the services server.
    pub services: bool,
}

/// The services link password.
const LINK_PASSWORD: &str = "linkpass";

impl Ngircd {
    /// Writes a config into `dir` and starts the server on free ports.
    pub fn start(dir: &Path, setup: Setup<'_>) -> Ngircd {
        super::install("install-irc");
        let port = super::free_port();
        let tls_port = setup.tls.map(|_| super::free_port());
        let mut conf = format!(
            "[Global]\nName = irc.tidings.test\nInfo = tidings test server\nListen = 127.0.0.1\n\
             Ports = {port}\nMotdPhrase = tidings test\nAdminInfo1 = tidings\nAdminInfo2 = tests\n\
             AdminEMail = tests@example.org\n\
             [Limits]\nPingTimeout = 120\nPongTimeout = 20\nMaxNickLength = 30\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n"
        );
        if let (Some((cert, key)), Some(tls_port)) = (setup.tls, tls_port) {
            // ngIRCd reads them after it dropped to `nobody`.
            for f in [cert, key] {
                let copy = dir.join(format!(
                    "ngircd-{}",
                    f.file_name().unwrap().to_string_lossy()
                ));
                std::fs::copy(f, &copy).unwrap();
                set_mode(&copy, 0o644);
            }
            conf.push_str(&format!(
                "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
                dir.join(format!(
                    "ngircd-{}",
                    cert.file_name().unwrap().to_string_lossy()
                ))
                .display(),
                dir.join(format!(
                    "ngircd-{}",
                    key.file_name().unwrap().to_string_lossy()
                ))
                .display()
            ));
        }
        if let Some((name, key)) = setup.channel {
            conf.push_str(&format!("[Channel]\nName = {name}\nModes = +k {key}\n"));
        }
        if setup.services {
            conf.push_str(&format!(
                "[Server]\nName = services.tidings.test\nMyPassword = {LINK_PASSWORD}\n\
                 PeerPassword = {LINK_PASSWORD}\nServiceMask = *Serv\n"
            ));
        }
        set_mode(dir, 0o755);
        let path = dir.join("ngircd.conf");
        std::fs::write(&path, conf).unwrap();
        set_mode(&path, 0o644);
        let mut n = Ngircd {
            child: None,
            conf: path,
            port,
            tls_port,
            log: dir.join("ngircd.log"),
        };
        n.restart();
        n
    }

    /// Starts the server again (after [`Ngircd::kill`]) on the same ports.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("ngircd")
            .args(["-n", "-f"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ngircd");
        self.child = Some(child);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        wait_until("ngircd to listen", Duration::from_secs(20), || {
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
    }

    /// Stops the server (every connection drops).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running InspIRCd 3 (it has SASL, with services); stopped when dropped.
pub struct Inspircd {
    _child: Running,
    pub port: u16,
    /// Where services link.
    pub server_port: u16,
    pub log: PathBuf,
}

impl Inspircd {
    pub fn start(dir: &Path) -> Inspircd {
        super::install("install-irc");
        let (port, server_port) = (super::free_port(), super::free_port());
        let d = dir.display();
        let conf = dir.join("inspircd.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<config format="xml">
<server name="irc.tidings.test" description="tidings test server" network="tidingstest">
<admin name="tidings" nick="tidings" email="tests@example.org">
<bind address="127.0.0.1" port="{port}" type="clients">
<bind address="127.0.0.1" port="{server_port}" type="servers">
<connect allow="*" timeout="60" flood="20" threshold="1" pingfreq="120" sendq="262144" recvq="8192" localmax="100" globalmax="100" useident="no">
<power diepass="x" restartpass="x">
<pid file="{d}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{d}/inspircd.log">
<performance nouserdns="yes">
<module name="spanningtree">
<module name="sasl">
<module name="services_account">
<module name="cap">
<link name="services.tidings.test" ipaddr="127.0.0.1" port="{server_port}" allowmask="127.0.0.1" sendpass="{LINK_PASSWORD}" recvpass="{LINK_PASSWORD}">
<uline server="services.tidings.test" silent="yes">
<sasl target="services.tidings.test">
"#
            ),
        )
        .unwrap();
        let log = dir.join("inspircd.out");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("inspircd");
        cmd.arg("--nofork")
            .arg(format!("--config={}", conf.display()));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--runasroot");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start inspircd");
        let i = Inspircd {
            _child: Running(child),
            port,
            server_port,
            log,
        };
        wait_until("inspircd to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        i
    }
}

/// Atheme services (NickServ, SaslServ) linked to a server; stopped when dropped.
pub struct Atheme {
    _child: Running,
    pub log: PathBuf,
}

impl Atheme {
    /// Starts Atheme with `protocol` (`ngircd` or `inspircd`), linking to `port`, and waits
    /// until it has synchronised with the server.
    pub fn start(dir: &Path, protocol: &str, port: u16) -> Atheme {
        let data = dir.join("atheme-data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("atheme.conf");
        std::fs::write(
            &conf,
            format!(
                r#"loadmodule "modules/protocol/{protocol}";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/posix";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
serverinfo {{
	name = "services.tidings.test"; desc = "tidings test services"; numeric = "00A";
	recontime = 2; netname = "tidings test"; hidehostsuffix = "users.tidings.test";
	adminname = "tidings"; adminemail = "tests@example.org";
	registeremail = "noreply@example.org"; mta = "/bin/true";
	loglevel = {{ error; info; admin; network; }};
	maxlogins = 5; maxusers = 5; mdlimit = 30; emaillimit = 10; emailtime = 300;
	auth = none; casemapping = rfc1459;
}};
uplink "irc.tidings.test" {{
	host = "127.0.0.1"; port = {port};
	send_password = "{LINK_PASSWORD}"; receive_password = "{LINK_PASSWORD}";
}};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "services.tidings.test"; real = "Nickname Services"; maxnicks = 5; expire = 30; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "services.tidings.test"; real = "SASL Authentication Agent"; }};
general {{
	permissive_mode; uflags = {{ hidemail; }}; cflags = {{ verbose; }};
	flood_msgs = 100; flood_time = 10; ratelimit_uses = 100; ratelimit_period = 1;
	vhost_change = 30; expire = 2592000; commit_interval = 5;
	default_clone_allowed = 5; default_clone_warn = 4; uplink_sendq_limit = 1048576;
	language = "en"; immune_level = immune;
}};
"#
            ),
        )
        .unwrap();
        let log = dir.join("atheme.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("atheme-services")
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("atheme.log"))
            .arg("-p")
            .arg(dir.join("atheme.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start atheme-services");
        let a = Atheme {
            _child: Running(child),
            log,
        };
        wait_until("Atheme to link", Duration::from_secs(30), || {
            std::fs::read_to_string(&a.log)
                .unwrap_or_default()
                .contains("finished synching with uplink")
        });
        a
    }
}

/// Registers `nick` with NickServ (password `password`), as a user would.
pub fn register(port: u16, nick: &str, password: &str) {
    let mut c = Client::connect(port, nick);
    c.say(
        "NickServ",
        &format!("REGISTER {password} {nick}@example.org"),
    );
    c.expect_message("NickServ", nick, "the registration", |t| {
        t.contains("is now registered")
    });
    c.send("QUIT");
    c.expect("the server to close", Duration::from_secs(20), |l| {
        l.command == "ERROR"
    });
}

/// Whether `nick` is logged in to an account, as WHOIS (330) says, asked by client `c`.
pub fn logged_in(c: &mut Client, nick: &str) -> bool {
    c.send(&format!("WHOIS {nick}"));
    let n = nick.to_owned();
    let mut logged = false;
    loop {
        let l = c.expect("the WHOIS", Duration::from_secs(20), |l| {
            l.params.get(1).is_some_and(|x| x.eq_ignore_ascii_case(&n))
                && matches!(l.command.as_str(), "330" | "318")
        });
        if l.command == "330" {
            logged = true;
        } else {
            return logged;
        }
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One line the client received, parsed.
#[derive(Debug, Clone)]
pub struct Line {
    pub raw: String,
    /// The sender's nick (or server).
    pub from: String,
    pub command: String,
    pub params: Vec<String>,
}

impl Line {
    fn parse(raw: &str) -> Line {
        let mut rest = raw;
        let mut from = String::new();
        if let Some(r) = rest.strip_prefix(':') {
            let (p, r) = r.split_once(' ').unwrap_or((r, ""));
            from = p.split(['!', '@']).next().unwrap_or("").to_owned();
            rest = r;
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(t) = rest.strip_prefix(':') {
                params.push(t.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r;
        }
        Line {
            raw: raw.to_owned(),
            from,
            command: command.to_owned(),
            params,
        }
    }

    /// The text of a PRIVMSG or NOTICE.
    pub fn text(&self) -> &str {
        self.params.get(1).map_or("", String::as_str)
    }

    /// Whether this is a message from `from` to `to`.
    pub fn is_message(&self, from: &str, to: &str) -> bool {
        matches!(self.command.as_str(), "PRIVMSG" | "NOTICE")
            && self.from.eq_ignore_ascii_case(from)
            && self
                .params
                .first()
                .is_some_and(|t| t.eq_ignore_ascii_case(to))
    }
}

/// A plain IRC client.
pub struct Client {
    pub nick: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Every line received, in order.
    pub seen: Vec<Line>,
    /// How far [`Client::expect`] has looked.
    cursor: usize,
    /// A line not complete yet.
    partial: Vec<u8>,
}

impl Client {
    /// Connects and registers as `nick`.
    pub fn connect(port: u16, nick: &str) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut c = Client {
            nick: nick.to_owned(),
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
            seen: Vec::new(),
            cursor: 0,
            partial: Vec::new(),
        };
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :test client"));
        c.expect("the welcome", Duration::from_secs(20), |l| {
            l.command == "001"
        });
        c
    }

    /// Joins `channel` (with `key`) and waits until the server confirmed.
    pub fn join(&mut self, channel: &str, key: Option<&str>) {
        match key {
            Some(k) => self.send(&format!("JOIN {channel} {k}")),
            None => self.send(&format!("JOIN {channel}")),
        }
        let ch = channel.to_owned();
        self.expect("the end of NAMES", Duration::from_secs(20), |l| {
            l.command == "366" && l.params.get(1).is_some_and(|c| c.eq_ignore_ascii_case(&ch))
        });
    }

    pub fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// Says `text` to `target`.
    pub fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}"));
    }

    /// Reads what has arrived (one line, or nothing within the read timeout), answering PINGs;
    /// false when the connection closed. A line cut by the timeout is kept for the next call.
    fn pump(&mut self) -> bool {
        match self.reader.read_until(b'\n', &mut self.partial) {
            Ok(0) => false,
            Ok(_) if self.partial.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                let l = Line::parse(text.trim_end_matches(['\r', '\n']));
                if l.command == "PING" {
                    let token = l.params.first().cloned().unwrap_or_default();
                    self.send(&format!("PONG :{token}"));
                }
                self.seen.push(l);
                true
            }
            Ok(_) => true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(e) => panic!("{}: reading: {e}", self.nick),
        }
    }

    /// Waits for the next line (after those already matched) that `pred` accepts.
    pub fn expect(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.seen.len() {
                let l = &self.seen[self.cursor];
                self.cursor += 1;
                if pred(l) {
                    return l.clone();
                }
            }
            self.read_more(what, deadline);
        }
    }

    /// Reads what arrives next, or fails the test (showing every line received) once `deadline`
    /// passed or the server closed the connection.
    fn read_more(&mut self, what: &str, deadline: Instant) {
        assert!(
            Instant::now() < deadline,
            "{}: timed out waiting for {what}; received:\n{}",
            self.nick,
            self.seen
                .iter()
                .map(|l| l.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.pump(),
            "{}: the server closed the connection",
            self.nick
        );
    }

    /// Waits until, among the lines after those already matched, each of `preds` accepts one
    /// (in any order); then every line received counts as matched.
    pub fn expect_each(&mut self, what: &str, timeout: Duration, preds: &[&dyn Fn(&Line) -> bool]) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut found = vec![false; preds.len()];
            for l in &self.seen[self.cursor..] {
                if let Some(i) = (0..preds.len()).find(|i| !found[*i] && preds[*i](l)) {
                    found[i] = true;
                }
            }
            if found.iter().all(|f| *f) {
                self.cursor = self.seen.len();
                return;
            }
            self.read_more(what, deadline);
        }
    }

    /// Waits for a message from `from` to `to` whose text `pred` accepts.
    pub fn expect_message(
        &mut self,
        from: &str,
        to: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let (f, t) = (from.to_owned(), to.to_owned());
        self.expect(what, Duration::from_secs(30), move |l| {
            l.is_message(&f, &t) && pred(l.text())
        })
        .text()
        .to_owned()
    }

    /// The messages `bot` sends from now until it answers a `version` asked in private: the
    /// bot says everything in order, so once the answer is here, whatever it had queued before
    /// is here too (call it after the daemon settled, for "nothing else was said").
    pub fn messages_until_reply(&mut self, bot: &str) -> Vec<Line> {
        let from = self.cursor;
        self.say(bot, "version");
        let me = self.nick.clone();
        self.expect_message(bot, &me, "the bot's version", |t| {
            t.starts_with("This is tidings")
        });
        self.seen[from..self.cursor - 1]
            .iter()
            .filter(|l| {
                matches!(l.command.as_str(), "PRIVMSG" | "NOTICE")
                    && l.from.eq_ignore_ascii_case(bot)
            })
            .cloned()
            .collect()
    }
}
