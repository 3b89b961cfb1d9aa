//! IRC messages as they arrive (RFC 1459 §2.3.1, with IRCv3 tags): parsed once, here.

/// One message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// `nick!user@host` or a server name; empty when absent.
    pub prefix: String,
    /// The command or three-digit numeric, upper case.
    pub command: String,
    /// The parameters, the trailing one included.
    pub params: Vec<String>,
}

impl Incoming {
    /// Parses a line (without CR LF; invalid UTF-8 replaced). `None` for an empty line.
    pub fn parse(line: &str) -> Option<Incoming> {
        let mut rest = line.trim_end_matches(['\r', '\n']);
        if let Some(tagged) = rest.strip_prefix('@') {
            rest = tagged.split_once(' ').map_or("", |(_, r)| r);
        }
        rest = rest.trim_start_matches(' ');
        let mut prefix = String::new();
        if let Some(p) = rest.strip_prefix(':') {
            let (p, r) = p.split_once(' ')?;
            prefix = p.to_owned();
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            match rest.split_once(' ') {
                Some((p, r)) => {
                    params.push(p.to_owned());
                    rest = r;
                }
                None => {
                    params.push(rest.to_owned());
                    break;
                }
            }
        }
        Some(Incoming {
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The nick of the prefix (`nick` of `nick!user@host`).
    pub fn nick(&self) -> &str {
        self.prefix.split(['!', '@']).next().unwrap_or("")
    }

    /// Parameter `i`, or "".
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_tags_and_trailing_parameters() {
        let m =
            Incoming::parse(":alice!~a@host PRIVMSG #builds :tidingsbot: status all\r\n").unwrap();
        assert_eq!(m.nick(), "alice");
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#builds", "tidingsbot: status all"]);
        let m = Incoming::parse("@time=x :srv 353 bot = #b :@alice bob").unwrap();
        assert_eq!(m.command, "353");
        assert_eq!(m.param(3), "@alice bob");
        let m = Incoming::parse("PING :irc.example").unwrap();
        assert_eq!((m.prefix.as_str(), m.param(0)), ("", "irc.example"));
        assert_eq!(Incoming::parse("AUTHENTICATE +").unwrap().param(0), "+");
        assert!(Incoming::parse("").is_none() && Incoming::parse(":only").is_none());
    }
}
