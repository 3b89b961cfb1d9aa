// short, in JavaScript: `STATUS: <Result>` (plain), like formatters/short; same cases.
// Build: guest-sdk/build.sh javascript
import { messageFormatter, plain, titleCase } from "./tidings.js";

export const run = messageFormatter((request) => plain("STATUS: " + titleCase(request.results_text)));
