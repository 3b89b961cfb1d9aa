// A JavaScript formatter with a bug: it reads a field of something undefined (tests/guests.rs
// checks that the error names the file and line).
import { messageFormatter, plain } from "./tidings.js";

function link(request) {
  return request.build.buildUrl.href;
}

export const run = messageFormatter((request) => plain("see " + link(request)));
