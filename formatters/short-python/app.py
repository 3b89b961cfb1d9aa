"""short, in Python: `STATUS: <Result>` (plain), like formatters/short; same cases.
Build: guest-sdk/build.sh python"""
import tidings
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        tidings.message_formatter(
            lambda req: tidings.plain("STATUS: " + str(req["results_text"]).title()))
