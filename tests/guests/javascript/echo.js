// Says the build's state_string back: tests/guests.rs checks that text outside ASCII (accents,
// CJK, emoji outside the BMP) crosses the SDK's UTF-8 decoding and encoding unchanged, and that
// a lone surrogate (a JavaScript string that is not Unicode text) comes out as U+FFFD.
import { messageFormatter, plain } from "./tidings.js";

export const run = messageFormatter((request) => {
  const said = request.build.state_string;
  // The summary (BUILD FAILED: <state_string>) is decoded with the request's head, the
  // state_string with its build: both parts cross the SDK's UTF-8 decoding.
  return plain(`«${said}»` + (said.includes("lone surrogate") ? "\ud800" : ""), request.summary);
});
// Kept warm, the request arrives through `format` as a string, not through stdin.
export const format = run.format;
