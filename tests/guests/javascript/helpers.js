// Uses the JavaScript SDK's helpers on a real build (tests/guests.rs compares the result with
// the Python SDK's for the same build).
import { failedSteps, logTail, messageFormatter, plain, resultName, steps } from "./tidings.js";

export const run = messageFormatter((request) => {
  const build = request.build;
  const failed = failedSteps(build);
  const names = failed.map((s) => `${s.name} (${resultName(s.results)})`).join(", ");
  const last = failed.length && failed[failed.length - 1].logs ? failed[failed.length - 1].logs[0] : {};
  return plain(`${steps(build).length} steps; failed: ${names}\n` + logTail(last, 2));
});
