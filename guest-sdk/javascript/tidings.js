// tidings.js -- the JavaScript SDK for tidings formatters, built as WASI preview 2 components
// with componentize-qjs (QuickJS). A formatter reads one JSON request on stdin and writes one
// JSON result on stdout (guest-sdk/README.md); this module does the I/O through the
// wasi:cli/stdin and wasi:cli/stdout imports and the UTF-8 coding (QuickJS here has no
// TextEncoder/TextDecoder), and decodes the request's `build` only when it is read (see
// parseRequest), so a formatter is:
//
//   import { messageFormatter, plain, titleCase } from "./tidings.js";
//   export const run = messageFormatter((req) => plain("STATUS: " + titleCase(req.results_text)));
//   export const format = run.format; // optional: a fast warm instance (tidings:formatter/warm)
//
// Return null to send nothing; throw to fail the call: the stack and the error go to stderr
// (tidings logs them under the formatter's name; the error ends with the file, line and column
// where it was thrown, which the call's error shows), and the exit status is 1.
import { getStdin } from "wasi:cli/stdin@0.2.12";
import { getStdout } from "wasi:cli/stdout@0.2.12";
import { getStderr } from "wasi:cli/stderr@0.2.12";
import { exit } from "wasi:cli/exit@0.2.12";

/** UTF-8 bytes to a string. */
export function decodeUtf8(bytes) {
  return utf8Of(latin1Of(bytes), bytes);
}

/** The text of UTF-8 `bytes`, given them as Latin-1 too (`latin1Of(bytes)`). QuickJS runs a
 * loop over bytes in its interpreter (~80 ns a turn), so this leaves the work to native code:
 * ASCII is its own text; else the Latin-1 is percent-escaped and decoded by decodeURIComponent.
 * The ASCII test is a regular expression, which costs ~14 ns a character here, so the request
 * is tested (and decoded) a part at a time, as each is needed. */
function utf8Of(latin1, bytes) {
  if (!/[^\x00-\x7f]/.test(latin1)) return latin1;
  try {
    return decodeURIComponent(escape(latin1));
  } catch (e) {
    return decodeUtf8Loose(bytes); // not valid UTF-8
  }
}

/** Bytes as a string of the same char codes (Latin-1). */
function latin1Of(bytes) {
  if (typeof bytes.toBase64 === "function") return atob(bytes.toBase64());
  let latin1 = "";
  for (let k = 0; k < bytes.length; k += 4096) {
    latin1 += String.fromCharCode.apply(null, bytes.subarray(k, k + 4096));
  }
  return latin1;
}

/** UTF-8 bytes to a string, a malformed sequence read as U+FFFD. */
function decodeUtf8Loose(bytes) {
  const units = new Uint16Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp, len;
    if (b < 0x80) { cp = b; len = 1; }
    else if (b >= 0xf0) { cp = b & 0x07; len = 4; }
    else if (b >= 0xe0) { cp = b & 0x0f; len = 3; }
    else if (b >= 0xc0) { cp = b & 0x1f; len = 2; }
    else { cp = 0xfffd; len = 1; }
    for (let k = 1; k < len; k++) cp = (cp << 6) | (bytes[i + k] & 0x3f);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units[n++] = 0xd800 + (cp >> 10);
      units[n++] = 0xdc00 + (cp & 0x3ff);
    } else {
      units[n++] = cp;
    }
    i += len;
  }
  let out = "";
  for (let k = 0; k < n; k += 4096) {
    out += String.fromCharCode.apply(null, units.subarray(k, Math.min(n, k + 4096)));
  }
  return out;
}

/** A string to UTF-8 bytes. */
export function encodeUtf8(s) {
  // In C where QuickJS can: UTF-8 as a Latin-1 string (encodeURIComponent, then unescape), and
  // that string as bytes through base64. A lone surrogate (encodeURIComponent refuses it) takes
  // the loop below.
  if (typeof Uint8Array.fromBase64 === "function") {
    try {
      const latin1 = /[^\x00-\x7f]/.test(s) ? unescape(encodeURIComponent(s)) : s;
      return Uint8Array.fromBase64(btoa(latin1));
    } catch (e) {
      // a lone surrogate
    }
  }
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp < 0x80) {
      out[n++] = cp;
      continue;
    }
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < s.length) {
      const low = s.charCodeAt(i + 1);
      if (low >= 0xdc00 && low < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; // a lone surrogate is not UTF-8
    if (cp < 0x800) {
      out[n++] = 0xc0 | (cp >> 6);
      out[n++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      out[n++] = 0xe0 | (cp >> 12);
      out[n++] = 0x80 | ((cp >> 6) & 0x3f);
      out[n++] = 0x80 | (cp & 0x3f);
    } else {
      out[n++] = 0xf0 | (cp >> 18);
      out[n++] = 0x80 | ((cp >> 12) & 0x3f);
      out[n++] = 0x80 | ((cp >> 6) & 0x3f);
      out[n++] = 0x80 | (cp & 0x3f);
    }
  }
  return out.subarray(0, n);
}

/** All of stdin, as a string. */
export function readStdin() {
  return decodeUtf8(readStdinBytes());
}

/** All of stdin, as bytes. */
export function readStdinBytes() {
  const input = getStdin();
  const parts = [];
  for (;;) {
    let chunk;
    try {
      chunk = input.blockingRead(65536);
    } catch (e) {
      break; // the stream is closed: the request is complete
    }
    if (!chunk || chunk.length === 0) break;
    parts.push(chunk);
  }
  if (parts.length === 1) return parts[0];
  let total = 0;
  for (const p of parts) total += p.length;
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  return all;
}

function write(stream, text) {
  const bytes = encodeUtf8(text);
  // blocking-write-and-flush takes at most 4096 bytes at a time.
  for (let i = 0; i < bytes.length; i += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
  }
}

/** Writes text on stdout. */
export function writeStdout(text) { write(getStdout(), text); }

/** Writes text on stderr (tidings logs each line under the formatter's name). */
export function writeStderr(text) { write(getStderr(), text); }

/** A lone surrogate (a JavaScript string that is not Unicode text) as U+FFFD: JSON.stringify
 * would write it as an escape that JSON readers, tidings among them, refuse. A replacer for
 * JSON.stringify. */
function wellFormed(key, value) {
  if (typeof value !== "string") return value;
  if (typeof value.toWellFormed === "function") return value.toWellFormed();
  return value.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** A plain-text message. */
export function plain(body, subject) { return subject === undefined ? { body, type: "plain" } : { body, type: "plain", subject }; }

/** An HTML message. */
export function html(body, subject) { return subject === undefined ? { body, type: "html" } : { body, type: "html", subject }; }

const RESULT_NAMES = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"];

/** Buildbot's name of a result code (a build's or a step's `results`): "failure", …; "not finished"
 * for null. The request's `result_name` already says it for the build. */
export function resultName(code) {
  if (code === null || code === undefined) return "not finished";
  return code >= 0 && code < RESULT_NAMES.length ? RESULT_NAMES[code] : `unknown result ${code}`;
}

/** The build's steps, in order (empty unless the reporter asked for steps or logs). */
export function steps(build) { return (build && build.steps) || []; }

/** The steps whose result is FAILURE (2) or EXCEPTION (4). */
export function failedSteps(build) { return steps(build).filter((s) => s.results === 2 || s.results === 4); }

/** The last `lines` lines of a log's text, when the reporter attached it (want_logs_content); ""
 * otherwise. A stdio log's lines lose their channel letter (o, e, h), as Buildbot shows them. */
export function logTail(log, lines = 20) {
  let text = (log && log.content) || "";
  if (typeof text === "object") text = text.content || "";
  let all = text.split("\n");
  if (all.length && all[all.length - 1] === "") all.pop();
  if (log && log.type === "s") all = all.map((l) => ("hoe".includes(l[0] || "x") ? l.slice(1) : l));
  return all.slice(-lines).join("\n");
}

/** Python's str.title() on ASCII words: "not finished" -> "Not Finished". */
export function titleCase(s) {
  return String(s).replace(/[A-Za-z]+/g, (w) => w[0].toUpperCase() + w.slice(1).toLowerCase());
}

/**
 * An exception as the call's error says it: the stack (without this module's frames), then
 * `TypeError: … (app.js:12:20)`, the innermost frame last so it is in the error's tail.
 */
export function describeError(e) {
  const name = e && e.name ? e.name : "Error";
  const message = e && e.message !== undefined ? e.message : String(e);
  const frames = String((e && e.stack) || "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("at ") && !l.includes("tidings.js"));
  // The innermost frame's file (without its directory), line and column.
  const at = frames.length ? frames[0].match(/([^ ()/]+:\d+(:\d+)?)\)?$/) : null;
  const where = at ? ` (${at[1]})` : "";
  const stack = frames.map((l) => `    ${l}\n`).join("");
  return `${stack}${name}: ${message}${where}\n`;
}

/**
 * The request in stdin's `bytes`, with its `build` decoded (from UTF-8, then JSON) when first
 * read. Decoding the build dict is most of what a small formatter costs; the host writes
 * `build` after every other argument, so the rest is decoded alone and a formatter that reads
 * only `results_text` never pays for the build. `build` is an enumerable property (a getter until it is read): `in`, Object.keys and
 * JSON.stringify see it as usual.
 */
export function parseRequest(bytes) {
  const text = (from, to) => {
    const part = bytes.subarray(from, to);
    return utf8Of(latin1Of(part), part);
  };
  // `,"build":` can only be structural (a quote inside a string is escaped), and the text
  // before it closed by one `}` is JSON only when it is at the top level. It is looked for in
  // the first KiB, then more: the bytes after it are not even made into a string until read.
  let at = -1;
  let window = "";
  for (let n = 1024; ; n *= 4) {
    window = latin1Of(bytes.subarray(0, n));
    at = window.indexOf(',"build":');
    if (at >= 0 || n >= bytes.length) break;
  }
  let head;
  if (at > 0) {
    try {
      head = JSON.parse(utf8Of(window.slice(0, at), bytes.subarray(0, at)) + "}");
    } catch (e) {
      head = undefined;
    }
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x20 || bytes[end - 1] === 0x0a ||
                     bytes[end - 1] === 0x0d || bytes[end - 1] === 0x09)) end--;
  if (!head || typeof head !== "object" || Array.isArray(head) || bytes[end - 1] !== 0x7d) {
    return JSON.parse(text(0, bytes.length));
  }
  return withLazyBuild(head, () => JSON.parse(text(at + 9, end - 1)),
                       () => JSON.parse(text(0, bytes.length)));
}

/**
 * `head` with a `build` property that is `build()` when first read (a getter until then), or,
 * when that throws (`build` was not the last member after all: a host other than tidings), the
 * build of `whole()`, the whole request, whose other members `head` lacks are added too.
 */
function withLazyBuild(head, build, whole) {
  const settle = (value) => {
    Object.defineProperty(head, "build", { value, writable: true, enumerable: true, configurable: true });
    return value;
  };
  Object.defineProperty(head, "build", {
    enumerable: true,
    configurable: true,
    get() {
      let value;
      try {
        value = build();
      } catch (e) {
        const all = whole();
        for (const key of Object.keys(all)) if (!(key in head)) head[key] = all[key];
        value = all.build;
      }
      return settle(value);
    },
    set: settle,
  });
  return head;
}

/**
 * The request in `text` (a string), with its `build` decoded when first read: parseRequest's
 * way, for a request that arrives as a string (the `format` export).
 */
export function parseRequestText(text) {
  const at = text.indexOf(',"build":');
  let head;
  if (at > 0) {
    try {
      head = JSON.parse(text.slice(0, at) + "}");
    } catch (e) {
      head = undefined;
    }
  }
  const end = text.trimEnd().length;
  if (!head || typeof head !== "object" || Array.isArray(head) || text[end - 1] !== "}") {
    return JSON.parse(text);
  }
  return withLazyBuild(head, () => JSON.parse(text.slice(at + 9, end - 1)), () => JSON.parse(text));
}

/** The result of `f` for `request`, as the JSON text a formatter prints. */
function answer(f, request) {
  if (request.abi !== 1 || request.hook !== "messageFormatter") {
    throw new Error(`this formatter serves messageFormatter (ABI 1), not ${request.hook}`);
  }
  const message = f(request);
  return JSON.stringify(message === undefined ? null : message, wellFormed) + "\n";
}

/**
 * The exports for a messageFormatter function `f`: `run` (wasi:cli/run: the request on stdin,
 * the result on stdout), and `format`, which tidings calls instead when it keeps an instance
 * warm (the world tidings:formatter/warm: the request as a string argument, the result as the
 * return value, an error thrown). Export both:
 *
 *   export const run = messageFormatter(f);
 *   export const format = run.format;
 *
 * (`export const run = messageFormatter(f)` alone builds in the world tidings:formatter, whose
 * components run warm, when the operator asks, by having `run` called again.)
 */
export function messageFormatter(f) {
  return {
    run() {
      let out;
      try {
        out = answer(f, parseRequest(readStdinBytes()));
      } catch (e) {
        // Said on stderr, then exit status 1: the call fails with this error, not a trap.
        writeStderr(describeError(e));
        exit({ tag: "err", val: undefined });
        return;
      }
      writeStdout(out);
    },
    format(request) {
      try {
        return answer(f, parseRequestText(request));
      } catch (e) {
        // Thrown, the error's message is format's `err`: what a fresh call says on stderr.
        throw new Error(describeError(e));
      }
    },
  };
}
