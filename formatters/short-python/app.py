"""short, in Python: `STATUS: <Result>` (plain), like formatters/short; same cases.
Build: guest-sdk/build.sh python"""
import tidings
from wit_world import exports


def short(req):
    return tidings.plain("STATUS: " + str(req["results_text"]).title())


class Run(exports.Run):
    def run(self) -> None:
        tidings.message_formatter(short)


# Warm calls pass the request to `format` and take its result back, with no stdin or stdout in
# between (the world tidings:formatter/warm). Without this line the component still runs warm,
# by having `run` called again, only more slowly.
WitWorld = tidings.warm(short)
