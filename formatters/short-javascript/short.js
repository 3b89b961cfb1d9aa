// short, in JavaScript: `STATUS: <Result>` (plain), like formatters/short; same cases.
// Build: guest-sdk/build.sh javascript
import { messageFormatter, plain, titleCase } from "./tidings.js";

export const run = messageFormatter((request) => plain("STATUS: " + titleCase(request.results_text)));
// Kept warm, tidings calls this instead of `run`: the request as an argument, no stdin.
export const format = run.format;
