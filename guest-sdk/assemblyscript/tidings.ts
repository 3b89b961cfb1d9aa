// tidings.ts -- the AssemblyScript SDK for tidings formatters: WASI preview 1 commands built
// with asc and @assemblyscript/wasi-shim (both from npm).
//
// A formatter reads one JSON request on stdin and writes one JSON result on stdout (the ABI:
// guest-sdk/README.md). AssemblyScript has no JSON in its standard library, so this module
// has a small reader, like the C SDK's: find a value by a dotted path of keys and array
// indexes in the request text, read strings (all escapes) and integers.
//
//   import { readRequest, find, str, writeMessage } from "./tidings";
//   const req = readRequest();
//   writeMessage("STATUS: " + titleCase(str(req, find(req, "results_text"))), "plain");
//
// Top-level code like this runs once per instance, so it runs fresh only. To run warm too,
// hand the same code to messageFormatter and re-export the warm entry points from your file
// (the build makes it a reactor when it sees them; see "Warm instances" in the README):
//
//   export { tidings_alloc_v1, tidings_format_v1 } from "./tidings";
//   messageFormatter((): void => { const req = readRequest(); … });

/** All of stdin, decoded from UTF-8 (in a call through the warm entry points, its request). */
export function readRequest(): string {
  if (warmRequest !== null) return warmRequest!;
  const chunks = new Array<ArrayBuffer>();
  let total = 0;
  while (true) {
    const buf = new ArrayBuffer(65536);
    const n = process.stdin.read(buf);
    if (n <= 0) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (let i = 0; i < chunks.length; i++) {
    all.set(Uint8Array.wrap(chunks[i]), off);
    off += chunks[i].byteLength;
  }
  return String.UTF8.decode(all.buffer);
}

function ws(s: string, i: i32): i32 {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    i++;
  }
  return i;
}

function skipString(s: string, i: i32): i32 {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x5c) i++;
    else if (c == 0x22) return i + 1;
  }
  return -1;
}

function skipValue(s: string, i: i32): i32 {
  let depth = 0;
  i = ws(s, i);
  do {
    if (i >= s.length) return -1;
    const c = s.charCodeAt(i);
    if (c == 0x22) {
      i = skipString(s, i);
      if (i < 0) return -1;
    } else if (c == 0x7b || c == 0x5b) {
      depth++;
      i++;
    } else if (c == 0x7d || c == 0x5d) {
      if (--depth < 0) return -1;
      i++;
    } else if (c == 0x2c || c == 0x3a) {
      if (depth == 0) return -1;
      i++;
    } else {
      while (i < s.length && ",:]} \t\r\n".indexOf(s.charAt(i)) < 0) i++;
    }
    i = ws(s, i);
  } while (depth > 0);
  return i;
}

/** The index where the value at `path` (dot-separated keys and array indexes) starts in
 * `json`, or -1 when there is none. */
export function find(json: string, path: string): i32 {
  return findFrom(json, 0, path);
}

/** Like `find`, from the value starting at index `at` (from `find`): find a parent once and
 * its members from there, `findFrom(req, find(req, "build"), "number")`, instead of scanning
 * the request from its start for each. -1 when `at` is -1. */
export function findFrom(json: string, at: i32, path: string): i32 {
  if (at < 0) return -1;
  let i = ws(json, at);
  const parts = path.length ? path.split(".") : new Array<string>();
  for (let p = 0; p < parts.length; p++) {
    const key = parts[p];
    i = ws(json, i);
    if (i >= json.length) return -1;
    const c = json.charCodeAt(i);
    if (c == 0x5b) {
      const want = I32.parseInt(key);
      i = ws(json, i + 1);
      let k = 0;
      while (i < json.length && json.charCodeAt(i) != 0x5d) {
        if (k == want) break;
        i = skipValue(json, i);
        if (i < 0) return -1;
        if (json.charCodeAt(i) == 0x2c) i = ws(json, i + 1);
        k++;
      }
      if (k != want || i >= json.length || json.charCodeAt(i) == 0x5d) return -1;
    } else if (c == 0x7b) {
      i = ws(json, i + 1);
      let found = false;
      while (i < json.length && json.charCodeAt(i) == 0x22) {
        const end = skipString(json, i);
        if (end < 0) return -1;
        const name = json.substring(i + 1, end - 1);
        i = ws(json, end);
        if (json.charCodeAt(i) != 0x3a) return -1;
        i = ws(json, i + 1);
        if (name == key) { found = true; break; }
        i = skipValue(json, i);
        if (i < 0) return -1;
        if (json.charCodeAt(i) == 0x2c) i = ws(json, i + 1);
      }
      if (!found) return -1;
    } else {
      return -1;
    }
  }
  return ws(json, i);
}

/** The string value at index `at` (from `find`), unescaped; null if it is not a string. */
export function str(json: string, at: i32): string | null {
  if (at < 0 || at >= json.length || json.charCodeAt(at) != 0x22) return null;
  const end = skipString(json, at);
  if (end < 0) return null;
  let out = "";
  for (let i = at + 1; i < end - 1; i++) {
    const c = json.charCodeAt(i);
    if (c != 0x5c) { out += String.fromCharCode(c); continue; }
    const e = json.charCodeAt(++i);
    if (e == 0x6e) out += "\n";
    else if (e == 0x74) out += "\t";
    else if (e == 0x72) out += "\r";
    else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x75) {
      out += String.fromCharCode(<i32>I32.parseInt(json.substring(i + 1, i + 5), 16));
      i += 4;
    } else out += String.fromCharCode(e);
  }
  return out;
}

/** The integer at index `at`, or `fallback` when it is not a number. */
export function int(json: string, at: i32, fallback: i64 = 0): i64 {
  if (at < 0) return fallback;
  const c = json.charCodeAt(at);
  if (c != 0x2d && (c < 0x30 || c > 0x39)) return fallback;
  return I64.parseInt(json.substring(at, skipValue(json, at)));
}

/** `s` as a JSON string literal. */
export function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** Writes the messageFormatter result {"body","type"[,"subject"]} on stdout. */
export function writeMessage(body: string, type: string, subject: string | null = null): void {
  let out = "{\"body\":" + quote(body) + ",\"type\":" + quote(type);
  if (subject !== null) out += ",\"subject\":" + quote(subject);
  process.stdout.write(out + "}\n");
}

/** Writes null (send nothing). */
export function writeNothing(): void {
  process.stdout.write("null\n");
}

/** Buildbot's name of a result code (a build's or a step's `results`): "failure", …; "unknown"
 * for another code. The request's `result_name` already says it for the build. */
export function resultName(code: i64): string {
  const names = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"];
  return code >= 0 && code < 7 ? names[<i32>code] : "unknown";
}

/** Where each element of the array starting at `at` starts (empty when `at` is not an
 * array): one pass, however long the array. */
export function elements(json: string, at: i32): i32[] {
  const out = new Array<i32>();
  if (at < 0 || at >= json.length || json.charCodeAt(at) != 0x5b) return out;
  let i = ws(json, at + 1);
  while (i >= 0 && i < json.length && json.charCodeAt(i) != 0x5d) {
    out.push(i);
    i = skipValue(json, i);
    if (i < 0) break;
    if (json.charCodeAt(i) == 0x2c) i = ws(json, i + 1);
  }
  return out;
}

/** Where each of the build's steps starts (`build.steps`; empty unless the reporter asked for
 * steps or logs). Read a step with `findFrom(req, step, "name")`, `"results"`, `"logs.0"`. */
export function steps(req: string): i32[] {
  return elements(req, find(req, "build.steps"));
}

/** The steps whose result is FAILURE (2) or EXCEPTION (4). */
export function failedSteps(req: string): i32[] {
  const all = steps(req);
  const out = new Array<i32>();
  for (let i = 0; i < all.length; i++) {
    const r = int(req, findFrom(req, all[i], "results"), -1);
    if (r == 2 || r == 4) out.push(all[i]);
  }
  return out;
}

/** The last `lines` lines of the text of the log starting at `log` (e.g. `findFrom(req, step,
 * "logs.0")`), when the reporter attached it (want_logs_content); "" otherwise. A stdio log's
 * lines lose their channel letter (h, o, e), as Buildbot shows them. */
export function logTail(req: string, log: i32, lines: i32 = 20): string {
  const text = str(req, findFrom(req, log, "content.content"));
  if (text === null || text.length == 0) return "";
  const stdio = str(req, findFrom(req, log, "type")) == "s";
  const body = text.endsWith("\n") ? text.substring(0, text.length - 1) : text;
  const all = body.split("\n");
  const from = all.length > lines ? all.length - lines : 0;
  let out = "";
  for (let i = from; i < all.length; i++) {
    let line = all[i];
    if (stdio && line.length > 0 && "hoe".indexOf(line.charAt(0)) >= 0) line = line.substring(1);
    out += (i > from ? "\n" : "") + line;
  }
  return out;
}

/** Python's str.title() on ASCII: "not finished" -> "Not Finished". */
export function titleCase(s: string): string {
  let out = "";
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const upper = c >= 0x41 && c <= 0x5a;
    const lower = c >= 0x61 && c <= 0x7a;
    if (upper || lower) {
      out += String.fromCharCode(inWord ? (upper ? c + 32 : c) : (lower ? c - 32 : c));
      inWord = true;
    } else {
      out += String.fromCharCode(c);
      inWord = false;
    }
  }
  return out;
}

/** Fails the call: the reason on stderr, exit status 1. */
export function fail(reason: string): void {
  process.stderr.write(reason + "\n");
  process.exit(1);
}

// ABI v1's warm entry points (guest-sdk/README.md, "Warm instances"). A formatter that hands its
// code to messageFormatter and re-exports these two from its own file (AssemblyScript exports
// only from the entry file) is built as a reactor: its top-level code runs once per instance
// (as `_initialize`), and each call, fresh or warm, is one call of tidings_format_v1, which runs
// the handler with readRequest answering from the request the host wrote. Globals keep their
// values from one call to the next.

/** The formatter's code, given to messageFormatter. */
let handler: (() => void) | null = null;
/** The buffer tidings_alloc_v1 gave, kept alive until tidings_format_v1 takes it. */
let warmBuffer: ArrayBuffer | null = null;
/** The request of the call in progress. */
let warmRequest: string | null = null;

/** Runs `f` for each request: read it with readRequest, answer with writeMessage. */
export function messageFormatter(f: () => void): void {
  handler = f;
}

/** Room for a request of `len` bytes. */
export function tidings_alloc_v1(len: i32): usize {
  warmBuffer = new ArrayBuffer(len);
  return changetype<usize>(warmBuffer);
}

/** One call: the request at `ptr` answered by the handler. The exit status: 0, or 1 when no
 * handler was given (fail() exits with 1 itself). */
export function tidings_format_v1(ptr: usize, len: i32): i32 {
  warmRequest = String.UTF8.decodeUnsafe(ptr, <usize>len);
  warmBuffer = null;
  const f = handler;
  if (f === null) {
    process.stderr.write("no formatter: pass your code to messageFormatter\n");
    warmRequest = null;
    return 1;
  }
  f();
  warmRequest = null;
  return 0;
}
