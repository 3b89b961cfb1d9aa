//! What goes on the wire: text from build data made harmless, long text split at the protocol
//! limit, and the raw lines (`PRIVMSG`, `NOTICE`) built in one place.
//!
//! IRC has no escaping: a CR or LF in a message ends it, and whatever follows is a command of
//! its own. Every text that reaches [`message_lines`] has each control character (C0, DEL, C1,
//! and the Unicode line and paragraph separators) replaced by a space first, so a commit
//! message holding `\r\nQUIT :x` arrives as one harmless line. The colour codes the bot adds
//! itself are inserted after that, and are the only control characters it ever sends.

/// The longest line a server accepts, CR LF included (RFC 1459 §2.3).
pub const MAX_LINE: usize = 512;

/// Room kept for the prefix the server puts before our message when it relays it
/// (`:nick!user@host `), when we have not seen our own yet: a nick, a 10-byte user and a
/// 63-byte host.
pub const UNKNOWN_HOST_ROOM: usize = 1 + 10 + 1 + 63 + 1;

/// mIRC colour codes (`\x03NN`) and the reset (`\x0f`) the bot adds around result words.
pub const COLOR: char = '\x03';
pub const RESET: char = '\x0f';

/// Whether `c` is a character that must never reach the wire from data: C0 controls (CR, LF,
/// NUL, CTCP's `\x01`, colour codes…), DEL, C1 controls, and the Unicode line separators.
fn is_control(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `text` with every control character replaced by a space: one harmless line.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if is_control(c) { ' ' } else { c })
        .collect()
}

/// Whether `name` can be a message target (a nick or a channel) as written: not empty, no
/// spaces, commas, colons at the start, or control characters, at most 64 bytes.
pub fn valid_target(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(':')
        && !name.contains([' ', ','])
        && !name.chars().any(is_control)
}

/// Whether `target` names a channel.
pub fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '+', '!'])
}

/// IRC's case folding (rfc1459): ASCII lower case, with `[]\~` as the upper case of `{}|^`.
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Splits `text` (one line, already clean) into pieces of at most `budget` bytes, on UTF-8
/// boundaries, preferring the last space before the limit; never splits a colour code from the
/// text it colours (a code is at most 3 bytes: `\x03NN`).
pub fn split(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(16);
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > budget {
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Do not leave a colour code cut in two.
        if let Some(at) = rest[..cut].rfind(COLOR)
            && cut - at < 3
        {
            cut = at;
        }
        if let Some(space) = rest[..cut].rfind(' ')
            && space > cut / 2
        {
            cut = space;
        }
        if cut == 0 {
            cut = rest.chars().next().map_or(1, char::len_utf8);
        }
        out.push(rest[..cut].to_owned());
        rest = rest[cut..].trim_start_matches(' ');
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// The raw lines (without CR LF) that send `text` to `target` with `command` (`PRIVMSG` or
/// `NOTICE`): one or more lines of text (split on `\n`), each cleaned and split so that the
/// relayed line, with `prefix_room` bytes of the server's `:nick!user@host ` before it, fits
/// in [`MAX_LINE`]. Empty lines are dropped. `colour` codes the bot itself added are passed
/// with `keep_colours` (only for text the bot composed from cleaned parts).
pub fn message_lines(
    command: &str,
    target: &str,
    text: &str,
    prefix_room: usize,
    keep_colours: bool,
) -> Vec<String> {
    debug_assert!(valid_target(target));
    let head = format!("{command} {target} :");
    let budget = MAX_LINE.saturating_sub(2 + prefix_room + head.len());
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = if keep_colours {
            line.chars()
                .map(|c| {
                    if is_control(c) && c != COLOR && c != RESET {
                        ' '
                    } else {
                        c
                    }
                })
                .collect::<String>()
        } else {
            clean(line)
        };
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        for piece in split(line, budget) {
            out.push(format!("{head}{piece}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_wire() {
        let hostile = "fix\r\nQUIT :x\r\nPRIVMSG #chan :injected\0\x01ACTION\x01\u{85}\u{2028}end";
        // Build data is cleaned into one line before it is composed into a text…
        let one = clean(hostile);
        let lines = message_lines("PRIVMSG", "#builds", &one, UNKNOWN_HOST_ROOM, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!lines[0].chars().any(|c| c.is_control()), "{:?}", lines[0]);
        assert!(lines[0].starts_with("PRIVMSG #builds :fix  QUIT :x"));
        // …and even raw text with line breaks only ever makes messages to the target.
        for keep in [false, true] {
            let lines = message_lines("PRIVMSG", "#builds", hostile, UNKNOWN_HOST_ROOM, keep);
            for l in &lines {
                assert!(l.starts_with("PRIVMSG #builds :"), "{l:?}");
                assert!(!l.contains(['\r', '\n', '\0', '\x01']), "{l:?}");
            }
        }
    }

    #[test]
    fn long_text_splits_on_utf8_boundaries_within_the_limit() {
        let text = "é".repeat(700) + " and the end";
        let lines = message_lines("PRIVMSG", "#b", &text, UNKNOWN_HOST_ROOM, false);
        assert!(lines.len() >= 3);
        for l in &lines {
            assert!(l.len() + 2 + UNKNOWN_HOST_ROOM <= MAX_LINE, "{}", l.len());
            assert!(l.starts_with("PRIVMSG #b :"));
        }
        let joined: String = lines
            .iter()
            .map(|l| l.trim_start_matches("PRIVMSG #b :"))
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(joined.replace(' ', ""), text.replace(' ', ""));
    }

    #[test]
    fn colour_codes_stay_whole_and_only_ours_pass() {
        let text = format!("Build {COLOR}4failed{RESET}: x\x03 y");
        let ours = message_lines("PRIVMSG", "#b", &text, 0, true);
        assert_eq!(
            ours,
            [format!("PRIVMSG #b :Build {COLOR}4failed{RESET}: x\x03 y")]
        );
        let theirs = message_lines("PRIVMSG", "#b", &text, 0, false);
        assert_eq!(theirs, ["PRIVMSG #b :Build  4failed : x  y"]);
        let coloured = format!("{}{COLOR}12skipped", "a".repeat(40));
        for piece in split(&coloured, 41) {
            assert!(!piece.ends_with(COLOR) && !piece.ends_with(&format!("{COLOR}1")));
        }
    }

    #[test]
    fn targets_and_folding() {
        assert!(valid_target("#builds") && valid_target("alice"));
        assert!(!valid_target("#a b") && !valid_target("a,b") && !valid_target("a\r"));
        assert!(!valid_target(":x") && !valid_target(""));
        assert_eq!(fold("Alice[1]"), "alice{1}");
        assert!(is_channel("#x") && !is_channel("x"));
    }
}
