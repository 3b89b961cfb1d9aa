// Fails on purpose, kept warm through `format` (tests/guests.rs): an error thrown ends the call
// with its text on stderr and status 1, a result over the output cap and a call that never ends
// are stopped, and each costs only its instance.
import { messageFormatter, plain } from "./tidings.js";

// Calls answered by this instance: the answer says it, so a reused instance shows.
let calls = 0;

export const run = messageFormatter((request) => {
  calls += 1;
  if (request.results === 2) throw new Error("the build failed");
  if (request.results === null) return plain("x".repeat(2 << 20));
  if (request.results === 4) for (;;) {}
  return plain(`${request.results_text} (call ${calls})`);
});
export const format = run.format;
