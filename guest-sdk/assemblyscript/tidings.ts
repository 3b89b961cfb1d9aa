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

/** All of stdin, decoded from UTF-8. */
export function readRequest(): string {
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
  let i = ws(json, 0);
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
