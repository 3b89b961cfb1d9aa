// short, in AssemblyScript: `STATUS: <Result>` (plain), like formatters/short; same cases.
// Build: guest-sdk/build.sh assemblyscript
import { readRequest, find, str, writeMessage, titleCase, fail } from "./tidings";

const request = readRequest();
const text = str(request, find(request, "results_text"));
if (text !== null) {
  writeMessage("STATUS: " + titleCase(text!), "plain");
} else {
  fail("the request has no results_text");
}
