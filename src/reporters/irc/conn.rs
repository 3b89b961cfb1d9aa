//! The connection task: connect (TCP, or TLS verified by [`crate::tls`]), register (`PASS`, or
//! SASL PLAIN; `NICK`, `USER`), identify to NickServ, join the channels, then answer `PING`s,
//! hand commands to [`super::commands`], and write queued lines through flood control. When
//! the connection fails or is lost it reconnects, forever, waiting 1 s, 2 s, 4 s… capped at
//! `failed_delay` (could not connect or register) or `lost_delay` (lost after registering).

use super::bot::{IrcBot, Link, Outbound, Up};
use super::flood::Bucket;
use super::text::{UNKNOWN_HOST_ROOM, fold, is_channel};
use super::wire::Incoming;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

/// Longest line read from the server (IRCv3 tags included).
const MAX_READ: usize = 16 * 1024;
/// Connect and TLS handshake limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Registration limit (from connected to the server's welcome).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);
/// Silence after which the bot pings the server; twice that and the connection is lost.
const IDLE: Duration = Duration::from_secs(90);
/// How long a stopping bot waits for the server to close the link after its QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(3);
/// Most queued lines written when the bot stops.
const FLUSH_AT_STOP: usize = 10;
/// Limit on writing one line.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How a session ended.
enum Ended {
    /// Asked to stop.
    Shutdown,
    /// Could not connect or register.
    Failed(String),
    /// Lost after registering.
    Lost(String),
}

/// Runs the bot's connection until `shutdown`.
pub async fn run(bot: Arc<IrcBot>, mut shutdown: watch::Receiver<bool>) {
    let s = &bot.settings;
    let mut delay = Duration::from_secs(1);
    loop {
        let stopping = *shutdown.borrow();
        if stopping {
            break;
        }
        let began = Instant::now();
        let (why, cap) = match session(&bot, &mut shutdown).await {
            Ended::Shutdown => break,
            Ended::Failed(why) => (why, s.failed_delay),
            Ended::Lost(why) => {
                if began.elapsed() > Duration::from_secs(60) {
                    delay = Duration::from_secs(1);
                }
                (why, s.lost_delay)
            }
        };
        {
            let mut st = bot.state();
            st.joined.clear();
            st.ops.clear();
        }
        let wait = delay.min(cap);
        delay = (delay * 2).min(cap.max(Duration::from_secs(1)));
        tracing::warn!(reporter = %bot.name, server = %format!("{}:{}", s.host, s.port), "IRC: {why}; reconnecting in {wait:?}");
        bot.link.send_replace(Link::Down(why));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    bot.link.send_replace(Link::Down("the bot stopped".into()));
}

async fn connect(bot: &IrcBot) -> Result<Box<dyn Stream>, String> {
    let s = &bot.settings;
    let tcp = match timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(format!("cannot connect to {}:{}: {e}", s.host, s.port)),
        Err(_) => return Err(format!("connecting to {}:{} timed out", s.host, s.port)),
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &s.tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(s.host.clone())
        .map_err(|e| format!("{:?} is not a TLS server name: {e}", s.host))?;
    match timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(t)) => Ok(Box::new(t)),
        Ok(Err(e)) => Err(format!(
            "TLS with {}:{} failed: {}",
            s.host,
            s.port,
            crate::tls::certificate_problem(&e).unwrap_or_else(|| e.to_string())
        )),
        Err(_) => Err(format!(
            "the TLS handshake with {}:{} timed out",
            s.host, s.port
        )),
    }
}

/// Reads one line of at most [`MAX_READ`] bytes; `None` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok((!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        if let Some(i) = available.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&available[..i]);
            r.consume(i + 1);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        let n = available.len();
        buf.extend_from_slice(available);
        r.consume(n);
        if buf.len() > MAX_READ {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server sent a line longer than 16 KiB",
            ));
        }
    }
}

/// Writes raw lines (CR LF added).
async fn write<W: AsyncWrite + Unpin>(w: &mut W, lines: &[String]) -> Result<(), String> {
    let mut out = String::new();
    for l in lines {
        debug_assert!(!l.contains(['\r', '\n', '\0']), "{l:?}");
        out.push_str(l);
        out.push_str("\r\n");
    }
    match timeout(WRITE_TIMEOUT, async {
        w.write_all(out.as_bytes()).await?;
        w.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing to the server failed: {e}")),
        Err(_) => Err("writing to the server timed out".into()),
    }
}

/// One connection, from connect to its end.
async fn session(bot: &Arc<IrcBot>, shutdown: &mut watch::Receiver<bool>) -> Ended {
    let s = &bot.settings;
    let stream = tokio::select! {
        r = connect(bot) => match r {
            Ok(st) => st,
            Err(why) => return Ended::Failed(why),
        },
        _ = stopped(shutdown) => return Ended::Shutdown,
    };
    let (r, mut w) = tokio::io::split(stream);
    // Lines are read by a task of their own: reading is then never cut in the middle of a
    // line by the select below.
    let (lines_tx, mut lines) = mpsc::channel::<Result<String, String>>(64);
    let reader = tokio::spawn(async move {
        let mut r = BufReader::new(r);
        loop {
            let item = match read_line(&mut r).await {
                Ok(Some(l)) => Ok(l),
                Ok(None) => Err("the server closed the connection".to_owned()),
                Err(e) => Err(format!("reading from the server failed: {e}")),
            };
            let end = item.is_err();
            if lines_tx.send(item).await.is_err() || end {
                break;
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    // Commands run one after the other, in the order they came (a `mute` before a `hello`
    // silences it), beside the connection, which keeps reading and writing meanwhile.
    let (commands, mut queued) = mpsc::unbounded_channel::<super::commands::Request>();
    let worker = tokio::spawn({
        let bot = bot.clone();
        async move {
            while let Some(request) = queued.recv().await {
                super::commands::handle(bot.clone(), request).await;
            }
        }
    });
    let _abort_worker = AbortOnDrop(worker);

    let sasl = s.use_sasl && s.password.is_some();
    let mut nick = s.nick.clone();
    let mut hello = Vec::new();
    if sasl {
        hello.push("CAP REQ :sasl".to_owned());
    } else if let (Some(p), true) = (&s.password, s.send_pass) {
        hello.push(format!("PASS {p}"));
    }
    let sent_pass = !sasl && s.password.is_some() && s.send_pass;
    // A refused PASS, explained: the server may have no password of its own.
    let pass_hint = |text: &str| -> String {
        if sent_pass && text.to_ascii_lowercase().contains("password") {
            format!(
                "{text} (tidings sends `password` as PASS too, as Buildbot does; for a server without a password of its own set send_pass = false)"
            )
        } else {
            text.to_owned()
        }
    };
    hello.push(format!("NICK {nick}"));
    hello.push(format!("USER {} 0 * :tidings build notifications", s.nick));
    if let Err(why) = write(&mut w, &hello).await {
        return Ended::Failed(why);
    }

    // Registration: until the welcome (001).
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    loop {
        let line = tokio::select! {
            l = lines.recv() => l,
            _ = sleep_until(deadline) => return Ended::Failed(format!("{}:{} did not welcome the bot within {REGISTER_TIMEOUT:?}", s.host, s.port)),
            _ = stopped(shutdown) => { let _ = write(&mut w, &["QUIT :tidings is stopping".into()]).await; return Ended::Shutdown }
        };
        let line = match line {
            Some(Ok(l)) => l,
            Some(Err(why)) => return Ended::Failed(format!("{why} while registering")),
            None => return Ended::Failed("the connection ended while registering".into()),
        };
        let Some(m) = Incoming::parse(&line) else {
            continue;
        };
        let reply: Option<Vec<String>> = match m.command.as_str() {
            "PING" => Some(vec![format!("PONG :{}", m.param(0))]),
            "CAP" if m.param(1).eq_ignore_ascii_case("ACK") && sasl => {
                Some(vec!["AUTHENTICATE PLAIN".into()])
            }
            "CAP" if m.param(1).eq_ignore_ascii_case("NAK") && sasl => {
                return Ended::Failed(format!(
                    "{}:{} does not offer SASL (CAP NAK); use_sasl cannot log in there",
                    s.host, s.port
                ));
            }
            "AUTHENTICATE" if m.param(0) == "+" && sasl => {
                Some(sasl_plain(&s.nick, s.password.as_deref().unwrap_or("")))
            }
            "903" => Some(vec!["CAP END".into()]),
            "902" | "904" | "905" | "906" | "908" => {
                let _ = write(&mut w, &["QUIT".into()]).await;
                return Ended::Failed(format!(
                    "SASL login as {:?} failed: {}",
                    s.nick,
                    m.params.last().map_or("", String::as_str)
                ));
            }
            "433" | "436" => {
                if nick.len() >= 30 {
                    return Ended::Failed(format!("every nick up to {nick:?} is taken"));
                }
                nick.push('_');
                Some(vec![format!("NICK {nick}")])
            }
            "432" => {
                return Ended::Failed(format!(
                    "the server refuses the nick {nick:?}: {}",
                    m.params.last().map_or("", String::as_str)
                ));
            }
            "464" | "465" => {
                return Ended::Failed(format!(
                    "the server refused the bot: {}",
                    pass_hint(m.params.last().map_or("", String::as_str))
                ));
            }
            "ERROR" => {
                return Ended::Failed(format!(
                    "the server closed the link: {}",
                    pass_hint(m.param(0))
                ));
            }
            "001" => {
                nick = m.param(0).to_owned();
                break;
            }
            _ => None,
        };
        if let Some(reply) = reply
            && let Err(why) = write(&mut w, &reply).await
        {
            return Ended::Failed(why);
        }
    }

    tracing::info!(reporter = %bot.name, server = %format!("{}:{}", s.host, s.port), nick = %nick, tls = s.tls.is_some(), sasl, "IRC: registered");
    let mut first = Vec::new();
    if let (Some(p), false) = (&s.password, sasl) {
        first.push(format!("PRIVMSG NickServ :IDENTIFY {p}"));
    }
    let channels: Vec<(String, Option<String>)> = bot.state().channels.values().cloned().collect();
    for (c, key) in channels {
        first.push(match key {
            Some(k) => format!("JOIN {c} {k}"),
            None => format!("JOIN {c}"),
        });
    }
    if let Err(why) = write(&mut w, &first).await {
        return Ended::Lost(why);
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let prefix_room = Arc::new(AtomicUsize::new(nick.len() + UNKNOWN_HOST_ROOM));
    bot.link.send_replace(Link::Up(Up {
        tx,
        nick: nick.clone(),
        prefix_room: prefix_room.clone(),
    }));
    let mut queue: VecDeque<(Outbound, usize)> = VecDeque::new();
    let mut bucket = Bucket::new(s.flood_burst, s.flood_interval, Instant::now());
    let mut last_read = Instant::now();
    let mut pinged = false;
    loop {
        let now = Instant::now();
        let next_send = (!queue.is_empty()).then(|| bucket.ready_at(now));
        let idle_at = if pinged {
            last_read + 2 * IDLE
        } else {
            last_read + IDLE
        };
        tokio::select! {
            biased;
            _ = stopped(shutdown) => {
                // What is queued (a last reply, a notification being said) goes first, unpaced
                // but bounded; then QUIT.
                let mut last = Vec::new();
                let mut flushed = Vec::new();
                while let Some((item, at)) = queue.pop_front() {
                    let rest = &item.lines[at.min(item.lines.len())..];
                    if last.len() + rest.len() > FLUSH_AT_STOP {
                        break;
                    }
                    last.extend_from_slice(rest);
                    flushed.push(item);
                }
                last.push("QUIT :tidings is stopping".into());
                if write(&mut w, &last).await.is_ok() {
                    for mut item in flushed {
                        item.sent.store(item.lines.len(), Ordering::SeqCst);
                        if let Some(done) = item.done.take() {
                            let _ = done.send(());
                        }
                    }
                    // The server closes the link once it has handled the QUIT: then the nick
                    // is free for a bot that replaces this one (a reload that changed it).
                    let _ = timeout(QUIT_WAIT, async {
                        while let Some(Ok(_)) = lines.recv().await {}
                    })
                    .await;
                }
                return Ended::Shutdown;
            }
            line = lines.recv() => {
                let line = match line {
                    Some(Ok(l)) => l,
                    Some(Err(why)) => return Ended::Lost(why),
                    None => return Ended::Lost("the connection ended".into()),
                };
                last_read = Instant::now();
                pinged = false;
                let Some(m) = Incoming::parse(&line) else { continue };
                match handle(bot, &m, &nick, &prefix_room, &commands) {
                    Handled::Reply(lines) => {
                        if let Err(why) = write(&mut w, &lines).await {
                            return Ended::Lost(why);
                        }
                    }
                    Handled::Nick(n) => nick = n,
                    Handled::Closed(why) => return Ended::Lost(why),
                    Handled::Nothing => {}
                }
            }
            item = rx.recv() => {
                if let Some(item) = item {
                    queue.push_back((item, 0));
                }
            }
            _ = sleep_until(next_send.unwrap_or(now)), if next_send.is_some() => {
                let Some((item, at)) = queue.front_mut() else { continue };
                let line = item.lines[*at].clone();
                bucket.take(Instant::now());
                if let Err(why) = write(&mut w, &[line]).await {
                    return Ended::Lost(why);
                }
                item.sent.fetch_add(1, Ordering::SeqCst);
                *at += 1;
                if *at >= item.lines.len()
                    && let Some((mut item, _)) = queue.pop_front()
                    && let Some(done) = item.done.take()
                {
                    let _ = done.send(());
                }
            }
            _ = sleep_until(idle_at) => {
                if pinged {
                    return Ended::Lost(format!("the server did not answer for {:?}", 2 * IDLE));
                }
                pinged = true;
                if let Err(why) = write(&mut w, &["PING :tidings".into()]).await {
                    return Ended::Lost(why);
                }
            }
        }
    }
}

/// What the main loop does after a message.
enum Handled {
    Nothing,
    /// Lines to send at once (a `PONG`), not paced.
    Reply(Vec<String>),
    /// Our nick changed.
    Nick(String),
    /// The server closed the link.
    Closed(String),
}

/// Handles one message after registration.
fn handle(
    bot: &Arc<IrcBot>,
    m: &Incoming,
    nick: &str,
    prefix_room: &AtomicUsize,
    commands: &mpsc::UnboundedSender<super::commands::Request>,
) -> Handled {
    let me = fold(nick);
    let from = m.nick();
    match m.command.as_str() {
        "PING" => return Handled::Reply(vec![format!("PONG :{}", m.param(0))]),
        "ERROR" => return Handled::Closed(format!("the server closed the link: {}", m.param(0))),
        "PRIVMSG" => {
            let (target, text) = (m.param(0), m.param(1));
            if text.starts_with('\x01') || from.is_empty() {
                return Handled::Nothing;
            }
            let request = if fold(target) == me {
                Some(super::commands::Request {
                    nick: from.to_owned(),
                    reply_to: from.to_owned(),
                    channel: None,
                    text: text.to_owned(),
                })
            } else if is_channel(target) {
                addressed(text, nick).map(|rest| super::commands::Request {
                    nick: from.to_owned(),
                    reply_to: target.to_owned(),
                    channel: Some(target.to_owned()),
                    text: rest.to_owned(),
                })
            } else {
                None
            };
            if let Some(request) = request {
                let _ = commands.send(request);
            }
        }
        "JOIN" => {
            let channel = fold(m.param(0));
            if fold(from) == me {
                // Our own prefix as the server relays it: the room our lines must leave.
                prefix_room.store(1 + m.prefix.len() + 1, Ordering::Relaxed);
                tracing::info!(reporter = %bot.name, channel = %m.param(0), "IRC: joined");
                bot.state().joined.insert(channel);
            }
        }
        "PART" | "KICK" => {
            let channel = fold(m.param(0));
            let who = if m.command == "KICK" {
                fold(m.param(1))
            } else {
                fold(from)
            };
            let mut st = bot.state();
            if who == me {
                st.joined.remove(&channel);
                st.ops.remove(&channel);
                if m.command == "KICK" {
                    tracing::warn!(reporter = %bot.name, channel = %m.param(0), by = %from, reason = %m.param(2), "IRC: kicked from the channel");
                }
            } else if let Some(ops) = st.ops.get_mut(&channel) {
                ops.remove(&who);
            }
        }
        "QUIT" => {
            let who = fold(from);
            for ops in bot.state().ops.values_mut() {
                ops.remove(&who);
            }
        }
        "NICK" => {
            let (old, new) = (fold(from), m.param(0));
            if old == me {
                return Handled::Nick(new.to_owned());
            }
            for ops in bot.state().ops.values_mut() {
                if ops.remove(&old) {
                    ops.insert(fold(new));
                }
            }
        }
        "MODE" if is_channel(m.param(0)) => {
            let channel = fold(m.param(0));
            let mut adding = true;
            let mut args = m.params.iter().skip(2);
            let mut st = bot.state();
            for c in m.param(1).chars() {
                match c {
                    '+' => adding = true,
                    '-' => adding = false,
                    'o' | 'h' | 'q' | 'a' => {
                        if let Some(who) = args.next() {
                            let ops = st.ops.entry(channel.clone()).or_default();
                            if adding {
                                ops.insert(fold(who));
                            } else {
                                ops.remove(&fold(who));
                            }
                        }
                    }
                    // Modes with an argument (`l` only when set).
                    'v' | 'b' | 'k' | 'e' | 'I' => {
                        args.next();
                    }
                    'l' if adding => {
                        args.next();
                    }
                    _ => {}
                }
            }
        }
        // RPL_NAMREPLY: `353 me = #chan :@alice bob`.
        "353" => {
            let channel = fold(m.param(2));
            let mut st = bot.state();
            let ops = st.ops.entry(channel).or_default();
            for name in m.param(3).split(' ') {
                if name.starts_with(['@', '&', '~', '%']) {
                    ops.insert(fold(name.trim_start_matches(['@', '&', '~', '%', '+'])));
                }
            }
        }
        "403" | "405" | "471" | "473" | "474" | "475" | "477" => {
            tracing::warn!(reporter = %bot.name, channel = %m.param(1), "IRC: cannot join: {}", m.params.last().map_or("", String::as_str));
        }
        _ => {}
    }
    Handled::Nothing
}

/// The command in `text` when it addresses the bot on a channel (`nick: …` or `nick, …`).
pub fn addressed<'a>(text: &'a str, nick: &str) -> Option<&'a str> {
    let head = text.get(..nick.len())?;
    if fold(head) != fold(nick) {
        return None;
    }
    let rest = &text[nick.len()..];
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix(','))?;
    Some(rest.trim_start())
}

/// The SASL PLAIN exchange's `AUTHENTICATE` lines: `nick\0nick\0password` in base64, in
/// pieces of 400 bytes, and `+` after a last piece of exactly 400.
fn sasl_plain(nick: &str, password: &str) -> Vec<String> {
    use base64::Engine as _;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{nick}\0{nick}\0{password}"));
    let mut out: Vec<String> = token
        .as_bytes()
        .chunks(400)
        .map(|c| format!("AUTHENTICATE {}", String::from_utf8_lossy(c)))
        .collect();
    if token.len() % 400 == 0 {
        out.push("AUTHENTICATE +".into());
    }
    out
}

/// Returns when `shutdown` turns true (the guard `wait_for` returns is not kept: it is not
/// `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_recognised_only_when_addressed() {
        assert_eq!(
            addressed("tidingsbot: status", "tidingsbot"),
            Some("status")
        );
        assert_eq!(addressed("TidingsBot, hello", "tidingsbot"), Some("hello"));
        assert_eq!(addressed("tidingsbot status", "tidingsbot"), None);
        assert_eq!(addressed("tidingsbotx: status", "tidingsbot"), None);
        assert_eq!(addressed("hi", "tidingsbot"), None);
    }

    #[test]
    fn sasl_plain_is_chunked() {
        assert_eq!(sasl_plain("bot", "pw"), ["AUTHENTICATE Ym90AGJvdABwdw=="]);
        let long = sasl_plain("b", &"x".repeat(600));
        assert!(long.len() == 3 && long[0].len() == 13 + 400);
    }
}
