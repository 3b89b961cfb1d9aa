// short, in AssemblyScript: `STATUS: <Result>` (plain), like formatters/short; same cases.
// Build: guest-sdk/build.sh assemblyscript
import { readRequest, find, str, writeMessage, titleCase, fail, messageFormatter } from "./tidings";
// The warm entry points: with them the build makes a reactor that runs fresh and warm (the
// function given to messageFormatter answers each call).
export { tidings_alloc_v1, tidings_format_v1 } from "./tidings";

messageFormatter((): void => {
  const request = readRequest();
  const text = str(request, find(request, "results_text"));
  if (text !== null) {
    writeMessage("STATUS: " + titleCase(text!), "plain");
  } else {
    fail("the request has no results_text");
  }
});
