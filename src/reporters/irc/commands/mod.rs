//! The bot's commands, as Buildbot's `words.py` and `irc.py` answer them: one file per command,
//! dispatched from [`Command`]. A command comes from a channel when the line addresses the bot
//! (`nick: …` or `nick, …`) and from any private message.
//!
//! Unknown commands, usage errors and refusals get Buildbot's replies: `What you say!` (a line
//! ending in `!`), `I don't get this '<word>'...` and the command list, the command's usage, and
//! `Thou shall not pass, <nick>!!!`.

mod data;
mod force;
mod hello;
mod help;
mod join;
mod last;
mod leave;
mod list;
mod list_commands;
mod mute;
mod notify;
mod shutdown;
mod source;
mod status;
mod stop;
mod unmute;
mod version;
mod watch;

use super::bot::IrcBot;
use super::config::Acl;
use super::text::fold;
use std::sync::Arc;

/// A line for the bot: who said it, where the answer goes, and the command text.
#[derive(Debug, Clone)]
pub struct Request {
    pub nick: String,
    /// The channel it came from, or the nick for a private message.
    pub reply_to: String,
    /// The channel, when it came from one.
    pub channel: Option<String>,
    pub text: String,
}

/// Why a command did not do its work.
pub enum Failure {
    /// Wrong use: the reply is the usage (Buildbot's `UsageError`).
    Usage(String),
    /// Something broke: logged; the user is told "Something bad happened (see logs)".
    Broken(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Broken(e)
    }
}

/// What a command runs with.
pub struct Cx<'a> {
    pub bot: &'a Arc<IrcBot>,
    pub req: &'a Request,
}

impl Cx<'_> {
    /// Answers where the command came from.
    pub fn reply(&self, text: &str) {
        self.bot.say(&self.req.reply_to, text);
    }

    /// Buildbot's `describeUser`: the nick, with the channel when said on one.
    pub fn user(&self) -> String {
        match &self.req.channel {
            Some(c) => format!("{} on {c}", self.req.nick),
            None => self.req.nick.clone(),
        }
    }

    /// Whether the command needs channel-operator status here and the user lacks it
    /// (`mute`, `unmute`, channel `notify on|off`), unless `authz` names the user for it.
    pub fn op_required(&self, command: &str) -> bool {
        let Some(channel) = &self.req.channel else {
            return false;
        };
        let nick = fold(&self.req.nick);
        if let Some(acl) = self.bot.settings.authz.get(&command.to_uppercase())
            && matches!(acl, Acl::Nicks(n) if n.iter().any(|x| fold(x) == nick))
        {
            return false;
        }
        !self
            .bot
            .state()
            .ops
            .get(&fold(channel))
            .is_some_and(|ops| ops.contains(&nick))
    }
}

macro_rules! commands {
    ($($variant:ident = $name:literal, $module:ident, dangerous = $dangerous:literal,)*) => {
        /// The commands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Command {
            $($variant,)*
        }

        impl Command {
            /// Every command's name, sorted (the `commands` reply).
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The command called `word` (any case).
            pub fn parse(word: &str) -> Option<Command> {
                match word.to_ascii_lowercase().as_str() {
                    $($name => Some(Command::$variant),)*
                    _ => None,
                }
            }

            /// Its name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => $name,)*
                }
            }

            /// Whether it is dangerous (Buildbot's `dangerousCommand`: refused unless `authz`
            /// allows it).
            pub fn dangerous(self) -> bool {
                match self {
                    $(Command::$variant => $dangerous,)*
                }
            }

            /// One line about it (`help`).
            pub fn doc(self) -> &'static str {
                match self {
                    $(Command::$variant => $module::DOC,)*
                }
            }

            /// Its usage (`help <command>`, and the reply to wrong use).
            pub fn usage(self) -> &'static str {
                match self {
                    $(Command::$variant => $module::USAGE,)*
                }
            }

            async fn run(self, cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
                match self {
                    $(Command::$variant => $module::run(cx, args).await,)*
                }
            }
        }
    };
}

commands! {
    Commands = "commands", list_commands, dangerous = false,
    Force = "force", force, dangerous = true,
    Hello = "hello", hello, dangerous = false,
    Help = "help", help, dangerous = false,
    Join = "join", join, dangerous = true,
    Last = "last", last, dangerous = false,
    Leave = "leave", leave, dangerous = true,
    List = "list", list, dangerous = false,
    Mute = "mute", mute, dangerous = false,
    Notify = "notify", notify, dangerous = false,
    Shutdown = "shutdown", shutdown, dangerous = true,
    Source = "source", source, dangerous = false,
    Status = "status", status, dangerous = false,
    Stop = "stop", stop, dangerous = true,
    Unmute = "unmute", unmute, dangerous = false,
    Version = "version", version, dangerous = false,
    Watch = "watch", watch, dangerous = false,
}

/// Whether `nick` may run `command` (Buildbot's `getCommandMethod`): the command's own `authz`
/// entry; else `"!"` (default no) for a dangerous command or `""` (default yes) for another,
/// either overridden by `"*"`.
pub fn allowed(bot: &IrcBot, command: Command, nick: &str) -> bool {
    let authz = &bot.settings.authz;
    let acl = authz
        .get(&command.name().to_uppercase())
        .cloned()
        .unwrap_or_else(|| {
            let fallback = if command.dangerous() {
                authz.get("!").cloned().unwrap_or(Acl::All(false))
            } else {
                authz.get("").cloned().unwrap_or(Acl::All(true))
            };
            authz.get("*").cloned().unwrap_or(fallback)
        });
    let nick = fold(nick);
    match acl {
        Acl::All(b) => b,
        Acl::Nicks(n) => n.iter().any(|x| fold(x) == nick),
        Acl::Nick(x) => fold(&x) == nick,
    }
}

/// Splits arguments as a shell would (Buildbot uses `shlex.split`): quotes group words.
pub fn split_args(args: &str) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(n) => cur.push(n),
                            None => return Err(Failure::Usage("No escaped character".into())),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(Failure::Usage("No closing quotation".into())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err(Failure::Usage("No escaped character".into())),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Runs one command line and answers it.
pub async fn handle(bot: Arc<IrcBot>, req: Request) {
    let text = req.text.trim_start();
    if text.is_empty() {
        return;
    }
    let (word, args) = text.split_once(' ').unwrap_or((text, ""));
    let cx = Cx {
        bot: &bot,
        req: &req,
    };
    tracing::info!(reporter = %bot.name, from = %cx.user(), command = %word, "IRC: command");
    let Some(command) = Command::parse(word) else {
        if text.ends_with('!') {
            cx.reply("What you say!");
        } else {
            cx.reply(&format!("I don't get this '{word}'..."));
            let _ = list_commands::run(&cx, "").await;
        }
        return;
    };
    if !allowed(&bot, command, &req.nick) {
        cx.reply(&format!("Thou shall not pass, {}!!!", req.nick));
        return;
    }
    match command.run(&cx, args.trim()).await {
        Ok(()) => {}
        Err(Failure::Usage(text)) => cx.reply(&text),
        Err(Failure::Broken(e)) => {
            tracing::error!(reporter = %bot.name, command = %word, error = %format!("{e:#}"), "IRC: a command failed");
            cx.reply("Something bad happened (see logs)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_shlex_does() {
        let ok = |s: &str| match split_args(s) {
            Ok(v) => v,
            Err(_) => panic!("{s}"),
        };
        assert_eq!(
            ok("build  runtests 'two words' \"a \\\"q\\\"\""),
            ["build", "runtests", "two words", "a \"q\""]
        );
        assert_eq!(ok(""), Vec::<String>::new());
        assert!(matches!(split_args("'open"), Err(Failure::Usage(_))));
    }

    fn bot(authz: &str) -> IrcBot {
        let text =
            format!("[[reporter.irc]]\nname = \"irc\"\nhost = \"h\"\nnick = \"bot\"\n{authz}\n");
        let settings = crate::reporters::irc::config::test_settings(&text).remove(0);
        IrcBot::new("irc", settings, None)
    }

    #[test]
    fn authz_is_looked_up_as_buildbot_does() {
        use Command::*;
        // Defaults: dangerous commands for no one, the others for everyone.
        let b = bot("");
        assert!(allowed(&b, Status, "anyone") && !allowed(&b, Force, "anyone"));
        assert!(!allowed(&b, Join, "anyone") && !allowed(&b, Shutdown, "anyone"));
        // Explicit entries, "!" and "" fallbacks; nicks compare as IRC folds them.
        let b = bot(r#"authz = { force = ["Alice"], "!" = ["root"], "" = false, status = true }"#);
        assert!(allowed(&b, Force, "alice") && !allowed(&b, Force, "root"));
        assert!(allowed(&b, Stop, "root") && !allowed(&b, Stop, "alice"));
        assert!(!allowed(&b, Hello, "alice") && allowed(&b, Status, "x"));
        // "*" overrides both fallbacks, not explicit entries.
        let b = bot(r#"authz = { "*" = true, shutdown = false }"#);
        assert!(allowed(&b, Leave, "x") && allowed(&b, Hello, "x"));
        assert!(!allowed(&b, Shutdown, "x"));
        // A single nick.
        let b = bot(r#"authz = { stop = "carol" }"#);
        assert!(allowed(&b, Stop, "carol") && !allowed(&b, Stop, "dave"));
    }

    #[test]
    fn names_are_sorted_and_parse_back() {
        let mut sorted = Command::NAMES.to_vec();
        sorted.sort();
        assert_eq!(sorted, Command::NAMES);
        for n in Command::NAMES {
            assert_eq!(Command::parse(n).map(Command::name), Some(*n));
            assert_eq!(
                Command::parse(&n.to_uppercase()).map(Command::name),
                Some(*n)
            );
        }
    }
}
