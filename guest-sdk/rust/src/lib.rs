//! `tidings-guest`: write tidings formatters in Rust.
//!
//! A formatter is an ordinary WASI command (`wasm32-wasip1`): it reads one JSON request on stdin,
//! writes one JSON result on stdout and exits 0; anything else is a failed call whose stderr the
//! host logs. This crate adds the types of ABI v1 ([`abi`], [`build`]) and one macro that turns
//! hook functions into `main`:
//!
//! ```no_run
//! use tidings_guest::{Message, MessageArgs};
//!
//! fn format(args: MessageArgs) -> Result<Option<Message>, String> {
//!     Ok(Some(Message::plain(format!("{} is {}", args.name, args.results_text))))
//! }
//!
//! tidings_guest::main!(message_formatter = format);
//! ```
//!
//! A hook function takes any `Deserialize` type (the argument structs here, or a smaller view of
//! your own: fields you do not name are skipped, which is faster, and a struct with no `build`
//! field does not even skip the build dict, which the host writes last) and returns
//! `Result<impl Serialize, impl Display>`. `Ok(None)` writes `null`: "send nothing". `Err(e)`
//! prints `e` on stderr and exits 1, which the host reports as a failed call.
//!
//! The same crate builds natively, so a formatter's logic has ordinary `cargo test` unit tests,
//! and the binary runs as `./my-formatter messageFormatter < request.json`.
//!
//! [`main!`] also exports the warm entry points: a module ([`warm`]) keeps its instance for
//! many calls (`instances = "warm"`). Built for `wasm32-wasip2` the formatter is a component,
//! and its warm entry point is the component's `format` export (the module `component`, which
//! exists only on that target).

pub mod abi;
pub mod build;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
pub mod component;
pub mod text;

pub use abi::{
    ABI_VERSION, BuildInfo, Hook, Master, Message, MessageArgs, MessageType, MissingWorkerArgs,
    ReporterInfo, Review, ReviewArgs, StartArgs, StartMessage, SummaryArgs, WorkerInfo,
};
pub use build::{Build, Change, Log, Results, Step};
pub use serde;
pub use serde_json;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::io::{Read, Write};

/// Why a call failed before or after the hook function ran.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    /// An error with a message for stderr.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// The error for a hook this formatter does not implement.
    pub fn unsupported(hook: Hook) -> Error {
        Error(format!("this formatter does not implement the {hook} hook"))
    }
}

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes `input` as `I`, calls `f`, and encodes its result: the glue [`main!`] generates for
/// each hook. Public so a hand-written `main` can use it too.
pub fn call<I, O, E>(input: &[u8], f: fn(I) -> Result<O, E>) -> Result<Vec<u8>, Error>
where
    I: DeserializeOwned,
    O: Serialize,
    E: Display,
{
    // A struct with no `build` field skips the build dict anyway: when the host wrote it last,
    // decode the rest alone (most of a small formatter's work is skipping the build).
    let head = without_build::<I>(input);
    let args: I = head
        .and_then(|head| serde_json::from_slice(&head).ok())
        .map_or_else(|| serde_json::from_slice(input), Ok)
        .map_err(|e| Error(format!("cannot decode the hook's arguments: {e}")))?;
    let out = f(args).map_err(|e| Error(e.to_string()))?;
    serde_json::to_vec(&out).map_err(|e| Error(format!("cannot encode the result: {e}")))
}

/// The request without its `build` member, closed after the member before it, when `I` is a
/// struct with no `build` field and the request is one the host wrote with `build` last. `None`
/// otherwise (decode all of it).
///
/// `,"build":` can only be structural (a quote inside a JSON string is escaped), and the text
/// before it closed by one `}` is JSON only when it is at the top level, so a nested `build`
/// key makes the head fail to decode, and the caller decodes the whole request. Hosts before
/// the one that writes `build` last wrote it right after `name` (`messageFormatter`) or
/// `builderName` (`reviewCB`, `startCB`): their head lacks `buildbot_url` and `arg`, which come
/// before `build` now.
fn without_build<I: DeserializeOwned>(input: &[u8]) -> Option<Vec<u8>> {
    if reads_build::<I>() {
        return None;
    }
    const KEY: &[u8] = br#","build":"#;
    let at = find(input, KEY)?;
    let head = &input[..at];
    // Both are written just before `build` (only `extra` may come between): look from the end.
    let written_last = |name: &[u8]| head.windows(name.len()).rev().any(|w| w == name);
    if !written_last(br#""buildbot_url":"#) && !written_last(br#""arg":"#) {
        return None;
    }
    let mut out = Vec::with_capacity(at + 1);
    out.extend_from_slice(head);
    out.push(b'}');
    Some(out)
}

/// Where `needle` first occurs in `hay`: memchr's word-at-a-time scan for its first byte, then a
/// comparison there. (`windows` calls `memcmp` at every position, and `memmem` builds a searcher
/// per call; in wasm either made the search a quarter of a small warm call.)
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Whether decoding an `I` may read a top-level `build`: true unless `I` is a struct (derived
/// `Deserialize`, no `flatten`) without a field of that name. Asks `I` which fields it has by
/// letting it start to decode from a deserializer that only listens.
fn reads_build<I: DeserializeOwned>() -> bool {
    use serde::de::{self, Deserializer, Visitor};
    struct Listen<'a>(&'a mut Option<bool>);
    #[derive(Debug)]
    struct Heard;
    impl std::fmt::Display for Heard {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("only listening")
        }
    }
    impl std::error::Error for Heard {}
    impl de::Error for Heard {
        fn custom<T: Display>(_: T) -> Heard {
            Heard
        }
    }
    impl<'de> Deserializer<'de> for Listen<'_> {
        type Error = Heard;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Heard> {
            Err(Heard)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Heard> {
            *self.0 = Some(fields.contains(&"build"));
            Err(Heard)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut heard = None;
    let _ = I::deserialize(Listen(&mut heard));
    heard.unwrap_or(true)
}

/// Reads the request from stdin, works out the hook, calls `dispatch` and writes its result to
/// stdout. On any error it prints the error on stderr and exits with status 1. This is what
/// [`main!`] expands to.
///
/// The hook is read from the request's `{"abi":1,"hook":"…"` prefix, which the host always
/// writes first; for other input it is argv\[1\], else `TIDINGS_HOOK`, else the request's `hook`
/// field, so a request file works with any WASI runtime or natively.
pub fn run(dispatch: impl FnOnce(Hook, &[u8]) -> Result<Vec<u8>, Error>) {
    let result = read_request().and_then(|(hook, input)| dispatch(hook, &input));
    match result {
        Ok(out) => {
            // One write: each WASI call costs, and a partial write is retried by write_all.
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&out).and_then(|_| stdout.flush()) {
                fail(&format!("cannot write the result to stdout: {e}"));
            }
        }
        Err(e) => fail(&e.0),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tidings-guest: {message}");
    std::process::exit(1)
}

/// The head of a request: what `run` needs before the hook's own types take over.
#[derive(serde::Deserialize)]
struct Head {
    abi: Option<u32>,
    hook: Option<String>,
}

fn read_request() -> Result<(Hook, Vec<u8>), Error> {
    // 16 KiB holds a typical request in one read (each WASI call costs) without growing a
    // small guest's memory; a larger request just takes more reads.
    let mut input = Vec::with_capacity(16 * 1024);
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| Error(format!("cannot read the request from stdin: {e}")))?;
    parse_head(input)
}

/// Works out the hook of a request (see [`run`]) and checks its ABI version.
fn parse_head<T: AsRef<[u8]>>(input: T) -> Result<(Hook, T), Error> {
    // The host writes `{"abi":1,"hook":"<hook>",` first: reading the hook from that prefix saves
    // both a second parse of the request and the WASI calls argv costs. Anything else (a
    // hand-written file, another host) gets argv, TIDINGS_HOOK, then a full look at its head.
    let (abi, hook_name) = match fast_head(input.as_ref()) {
        Some(hook) => (Some(1), Some(hook.to_owned())),
        None => {
            let head: Head = serde_json::from_slice(input.as_ref())
                .map_err(|e| Error(format!("the request is not a JSON object: {e}")))?;
            let from_env = std::env::args()
                .nth(1)
                .or_else(|| std::env::var("TIDINGS_HOOK").ok());
            (head.abi, from_env.or(head.hook))
        }
    };
    match abi {
        Some(ABI_VERSION) | None => {}
        Some(other) => {
            return Err(Error(format!(
                "the host speaks ABI {other}; this formatter was built for ABI {ABI_VERSION}"
            )));
        }
    }
    let hook_name = hook_name.ok_or_else(|| {
        Error("no hook given: pass it as the first argument or in the request's \"hook\"".into())
    })?;
    let hook = hook_name
        .parse::<Hook>()
        .map_err(|e| Error(e.to_string()))?;
    Ok((hook, input))
}

/// The hook named by a request that starts the way the host writes it:
/// `{"abi":1,"hook":"<hook>"`, with a plain (unescaped) name.
fn fast_head(input: &[u8]) -> Option<&str> {
    let rest = input.strip_prefix(br#"{"abi":1,"hook":""#)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let name = std::str::from_utf8(&rest[..end]).ok()?;
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric())
        .then_some(name)
}

/// Warm calls: the second entry point of ABI v1, which [`main!`] exports beside `main`.
///
/// A host that keeps an instance for many calls (`instances = "warm"`) asks
/// `tidings_alloc_v1(len)` for room for the request, writes the request there, and calls
/// `tidings_format_v1(ptr, len)`, which takes the buffer back, answers exactly as `main` would
/// (the result on stdout, an error on stderr) and returns the exit status main would have had:
/// 0, or 1 on an error. Nothing else changes for the formatter's functions.
pub mod warm {
    use super::{Error, Hook};
    use std::io::Write;

    /// Room for a request of `len` bytes, owned by the caller until it is passed to [`call`].
    pub fn alloc(len: usize) -> *mut u8 {
        // Not zeroed: the host writes all `len` bytes before `call` reads them (zeroing first
        // was a `memory.fill` of the whole request on every call).
        let mut room = Vec::<u8>::with_capacity(len);
        let ptr = room.as_mut_ptr();
        std::mem::forget(room);
        ptr
    }

    /// Answers the request at `ptr` (from [`alloc`], `len` bytes, written by the host) with
    /// `dispatch`, writes the result on stdout, and returns the exit status.
    ///
    /// # Safety
    /// `ptr` and `len` must come from one [`alloc`] call, all `len` bytes written, and the buffer
    /// must not be used after.
    pub unsafe fn call(
        ptr: *mut u8,
        len: usize,
        dispatch: impl FnOnce(Hook, &[u8]) -> Result<Vec<u8>, Error>,
    ) -> i32 {
        // SAFETY: the caller passes back what `alloc` leaked (a `Vec` of capacity `len`),
        // with all `len` bytes written.
        let input: Vec<u8> = unsafe { Vec::from_raw_parts(ptr, len, len) };
        let result = super::parse_head(input).and_then(|(hook, input)| dispatch(hook, &input));
        match result {
            Ok(out) => {
                let mut stdout = std::io::stdout().lock();
                match stdout.write_all(&out).and_then(|_| stdout.flush()) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("tidings-guest: cannot write the result to stdout: {e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("tidings-guest: {}", e.0);
                1
            }
        }
    }
}

/// Turns hook functions into the program's `main`.
///
/// ```text
/// tidings_guest::main!(message_formatter = format);
/// tidings_guest::main!(review_cb = review, start_cb = start, summary_cb = summary);
/// ```
///
/// Hook keys: `message_formatter`, `review_cb`, `start_cb`, `summary_cb`,
/// `message_formatter_missing_worker`. A hook not listed
/// fails with "this formatter does not implement the … hook".
///
/// Besides `main` it exports the warm entry points, which answer every call as `main` does:
/// `tidings_alloc_v1` and `tidings_format_v1` in a module ([`warm`]), the `format` export of
/// the world `tidings:formatter/warm` in a `wasm32-wasip2` component.
#[macro_export]
macro_rules! main {
    ($($hook:ident = $f:path),+ $(,)?) => {
        fn __tidings_dispatch(
            hook: $crate::Hook,
            input: &[u8],
        ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::Error> {
            $( if hook == $crate::__hook!($hook) { return $crate::call(input, $f); } )+
            Err($crate::Error::unsupported(hook))
        }

        fn main() {
            $crate::run(__tidings_dispatch)
        }

        /// The warm entry points (see `tidings_guest::warm`): room for a request.
        #[cfg(target_family = "wasm")]
        #[unsafe(no_mangle)]
        pub extern "C" fn tidings_alloc_v1(len: usize) -> *mut u8 {
            $crate::warm::alloc(len)
        }

        /// The warm entry points: one call, answered as `main` answers it.
        #[cfg(target_family = "wasm")]
        #[unsafe(no_mangle)]
        pub extern "C" fn tidings_format_v1(ptr: *mut u8, len: usize) -> i32 {
            // SAFETY: the host passes back what `tidings_alloc_v1` returned, with its length.
            unsafe { $crate::warm::call(ptr, len, __tidings_dispatch) }
        }

        // Built for wasm32-wasip2: the component's `format` export (see
        // `tidings_guest::component`).
        #[cfg(all(target_os = "wasi", target_env = "p2"))]
        const _: () = {
            struct Format;
            impl $crate::component::Guest for Format {
                fn format(
                    request: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::component::answer(request, __tidings_dispatch)
                }
            }
            $crate::component::export_format!(Format with_types_in $crate::component);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hook {
    (message_formatter) => {
        $crate::Hook::MessageFormatter
    };
    (review_cb) => {
        $crate::Hook::ReviewCb
    };
    (start_cb) => {
        $crate::Hook::StartCb
    };
    (summary_cb) => {
        $crate::Hook::SummaryCb
    };
    (message_formatter_missing_worker) => {
        $crate::Hook::MessageFormatterMissingWorker
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A formatter's own view that does not read the build.
    #[derive(Deserialize, Debug, PartialEq)]
    struct Short {
        results_text: String,
        #[serde(default)]
        results: Option<i64>,
    }

    /// One that does.
    #[derive(Deserialize)]
    struct WithBuild {
        #[allow(dead_code)]
        build: Build,
    }

    fn echo(s: Short) -> Result<String, String> {
        Ok(format!("{} {:?}", s.results_text, s.results))
    }

    // As this host writes it (build last), as hosts before it did (build after name), and with
    // a `build` key nested before the real one.
    const NEW: &[u8] = br#"{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","results":2,"results_text":"failure","buildbot_url":"u","build":{"number":3,"results":2}}"#;
    const OLD: &[u8] = br#"{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","build":{"number":3,"results":2},"results":2,"results_text":"failure","buildbot_url":"u"}"#;
    const NESTED: &[u8] = br#"{"abi":1,"hook":"messageFormatter","changes":[{"build":1}],"results":2,"results_text":"failure","buildbot_url":"u","build":{"number":3}}"#;
    // The first `,"build":` is a nested one: its head is not JSON, so all of it is decoded.
    const NESTED_FIRST: &[u8] = br#"{"abi":1,"hook":"messageFormatter","buildbot_url":"u","changes":[{"a":1,"build":1}],"results":2,"results_text":"failure","build":{"number":3}}"#;

    #[test]
    fn find_gives_the_first_occurrence_as_a_search_at_every_position_does() {
        let naive = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
        let needle = br#","build":"#;
        let hays: [&[u8]; 9] = [
            b"",
            b",",
            br#","build""#,
            br#","build":"#,
            br#",,,"build":{}"#,
            br#"{"a":1,"builds":2,"build":3,"build":4}"#,
            br#"{"a":","build":","b":1,"build":2}"#,
            br#"x,"buil"#,
            NEW,
        ];
        for hay in hays.into_iter().chain([OLD, NESTED, NESTED_FIRST]) {
            assert_eq!(
                find(hay, needle),
                naive(hay, needle),
                "{}",
                String::from_utf8_lossy(hay)
            );
        }
        assert_eq!(find(b"abc", b""), None);
    }

    #[test]
    fn a_struct_says_whether_it_reads_the_build() {
        assert!(!reads_build::<Short>());
        assert!(reads_build::<WithBuild>());
        assert!(reads_build::<MessageArgs>());
        assert!(reads_build::<ReviewArgs>());
        // Not a struct: anything may be read.
        assert!(reads_build::<serde_json::Value>());
        assert!(reads_build::<
            std::collections::HashMap<String, serde_json::Value>,
        >());
    }

    #[test]
    fn the_head_is_decoded_alone_only_when_the_build_is_last() {
        assert_eq!(
            without_build::<Short>(NEW).as_deref(),
            Some(&br#"{"abi":1,"hook":"messageFormatter","mode":[],"name":"b","results":2,"results_text":"failure","buildbot_url":"u"}"#[..])
        );
        assert_eq!(without_build::<Short>(OLD), None);
        // A head that is not JSON: the caller decodes the whole request.
        assert!(
            without_build::<Short>(NESTED_FIRST)
                .is_some_and(|head| serde_json::from_slice::<Short>(&head).is_err())
        );
        assert_eq!(without_build::<WithBuild>(NEW), None);
    }

    #[test]
    fn every_order_gives_the_same_arguments() {
        for input in [NEW, OLD, NESTED, NESTED_FIRST] {
            let out = call(input, echo).unwrap();
            assert_eq!(
                out,
                br#""failure Some(2)""#,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        // And a formatter that reads the build gets it.
        let build = call(NEW, |a: WithBuild| Ok::<_, String>(a.build.number)).unwrap();
        assert_eq!(build, b"3");
    }
}
