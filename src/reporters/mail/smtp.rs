//! One SMTP delivery: the connection and TLS are ours (the shared [`crate::tls`] client, so a
//! self-signed relay in `tls_ca_file` works as it does everywhere else in tidings), the SMTP
//! dialogue after it is lettre's.
//!
//! lettre takes no rustls configuration of ours, but takes any stream. For implicit TLS the
//! stream is TLS from the first byte. For STARTTLS, tidings reads the greeting, says `EHLO`, asks
//! for `STARTTLS` (refusing to go on in clear when the server does not offer it) and does the
//! handshake; lettre then gets the encrypted stream with the server's greeting replayed in front
//! of it, and starts as on a new connection: `EHLO` (now over TLS, as RFC 3207 requires), AUTH,
//! the mail.

use crate::tls::certificate_problem;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How the connection is secured.
#[derive(Clone)]
pub enum Security {
    /// Plain text (`use_tls` and `use_smtps` both off).
    None,
    /// STARTTLS, required (`use_tls`).
    StartTls(Arc<rustls::ClientConfig>),
    /// TLS from the first byte (`use_smtps`).
    Wrapper(Arc<rustls::ClientConfig>),
}

/// An SMTP relay and how to talk to it.
#[derive(Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
}

/// Why a delivery failed, in the terms the sink classifies.
#[derive(Debug)]
pub enum Failure {
    /// Connecting, the TLS handshake or the dialogue before it failed; nothing was sent.
    Connect(io::Error),
    /// The server's certificate cannot be verified (a sentence).
    Certificate(String),
    /// The server answered before TLS with a code that says no (e.g. 421 at the greeting,
    /// 554 to `STARTTLS`); nothing was sent.
    Refused { code: u16, text: String },
    /// TLS was required and the server does not offer STARTTLS; nothing was sent in clear.
    NoStartTls,
    /// lettre's part: AUTH, the envelope, the data.
    Smtp(lettre::transport::smtp::Error),
}

impl Relay {
    /// Connects, secures the connection as configured, says EHLO and authenticates; what
    /// [`send`](Self::send) needs. Nothing of the mail has been sent when this fails.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let hello = ClientId::default();
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.security {
            Security::None => Stream::plain(tcp),
            Security::Wrapper(tls) => Stream::tls(self.handshake(tls, tcp).await?, Vec::new()),
            Security::StartTls(tls) => {
                let (tcp, greeting) = starttls(tcp, &hello).await?;
                Stream::tls(self.handshake(tls, tcp).await?, greeting)
            }
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
            .await
            .map_err(Failure::Smtp)?;
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(Failure::Smtp)?;
        }
        Ok(conn)
    }

    /// Sends one message over a connection from [`connect`](Self::connect), then says QUIT.
    pub async fn send(
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, Failure> {
        let response = conn.send(envelope, message).await.map_err(Failure::Smtp)?;
        // The mail is taken: a failed QUIT changes nothing.
        let _ = conn.quit().await;
        Ok(response)
    }

    async fn handshake(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Failure> {
        let name = ServerName::try_from(self.host.clone()).map_err(|_| {
            Failure::Connect(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not a host name or address", self.host),
            ))
        })?;
        TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| match certificate_problem(&e) {
                Some(why) => Failure::Certificate(why),
                None => Failure::Connect(e),
            })
    }
}

/// The dialogue up to STARTTLS's 220: returns the connection, ready for the handshake, and the
/// server's greeting (to replay to lettre).
async fn starttls(tcp: TcpStream, hello: &ClientId) -> Result<(TcpStream, Vec<u8>), Failure> {
    let mut r = BufReader::new(tcp);
    let (code, greeting) = reply(&mut r).await?;
    if code != 220 {
        return Err(refused(code, &greeting));
    }
    r.get_mut()
        .write_all(format!("EHLO {hello}\r\n").as_bytes())
        .await
        .map_err(Failure::Connect)?;
    let (code, ehlo) = reply(&mut r).await?;
    if code != 250 {
        return Err(refused(code, &ehlo));
    }
    let offered = String::from_utf8_lossy(&ehlo).lines().skip(1).any(|l| {
        l.get(4..)
            .is_some_and(|kw| kw.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    if !offered {
        return Err(Failure::NoStartTls);
    }
    r.get_mut()
        .write_all(b"STARTTLS\r\n")
        .await
        .map_err(Failure::Connect)?;
    let (code, text) = reply(&mut r).await?;
    if code != 220 {
        return Err(refused(code, &text));
    }
    // Anything the server sent after its 220 would be read as if it came over TLS (the STARTTLS
    // command injection of CVE-2011-0411): refuse it.
    if !r.buffer().is_empty() {
        return Err(Failure::Connect(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent data after agreeing to STARTTLS",
        )));
    }
    Ok((r.into_inner(), greeting))
}

fn refused(code: u16, text: &[u8]) -> Failure {
    Failure::Refused {
        code,
        text: String::from_utf8_lossy(text).trim_end().to_owned(),
    }
}

/// One SMTP reply (all its lines, as received) and its code. Lines are capped at 4 KiB and
/// replies at 100 lines, so a broken server cannot make tidings read forever.
async fn reply(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>), Failure> {
    let bad = |what: String| Failure::Connect(io::Error::new(io::ErrorKind::InvalidData, what));
    let mut all = Vec::new();
    for _ in 0..100 {
        let mut line = Vec::new();
        let n = (&mut *r)
            .take(4096)
            .read_until(b'\n', &mut line)
            .await
            .map_err(Failure::Connect)?;
        if n == 0 {
            return Err(Failure::Connect(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        if !line.ends_with(b"\n") || line.len() < 4 {
            return Err(bad(format!(
                "not an SMTP reply: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        let code = std::str::from_utf8(&line[..3])
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "not an SMTP reply: {:?}",
                    String::from_utf8_lossy(&line)
                ))
            })?;
        let last = line[3] != b'-';
        all.extend_from_slice(&line);
        if last {
            return Ok((code, all));
        }
    }
    Err(bad("an SMTP reply of more than 100 lines".into()))
}

/// What lettre reads and writes: plain TCP, or TLS with the greeting received before STARTTLS
/// in front of it.
#[derive(Debug)]
struct Stream {
    replay: Vec<u8>,
    at: usize,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn plain(tcp: TcpStream) -> Stream {
        Stream {
            replay: Vec::new(),
            at: 0,
            inner: Inner::Plain(tcp),
        }
    }

    fn tls(tls: TlsStream<TcpStream>, replay: Vec<u8>) -> Stream {
        Stream {
            replay,
            at: 0,
            inner: Inner::Tls(Box::new(tls)),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.replay.len() {
            let n = (this.replay.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.replay[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncTokioStream for Stream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Plain(s) => s.peer_addr(),
            Inner::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }
}
