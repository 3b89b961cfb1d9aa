// Uses the AssemblyScript SDK's helpers on a real build (tests/guests.rs compares the result
// with the Rust SDK's answers for the same build).
import { readRequest, find, findFrom, str, int, failedSteps, steps, logTail, resultName, writeMessage } from "./tidings";

const req = readRequest();
const failed = failedSteps(req);
let names = "";
for (let i = 0; i < failed.length; i++) {
  if (i > 0) names += ", ";
  names += str(req, findFrom(req, failed[i], "name"))! + " ("
    + resultName(int(req, findFrom(req, failed[i], "results"), -1)) + ")";
}
let tail = "";
if (failed.length > 0) {
  const log = findFrom(req, failed[failed.length - 1], "logs.0");
  if (log >= 0) tail = logTail(req, log, 2);
}
const count = steps(req).length;
writeMessage(count.toString() + " steps; failed: " + names + "\n" + tail, "plain");
if (find(req, "build") < 0) process.exit(1);
