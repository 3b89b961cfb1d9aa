"""Fails on purpose, kept warm through `format` (tests/guests.rs): an exception ends the call
with its traceback on stderr and status 1, a result over the output cap and a call that never
ends are stopped, and each costs only its instance."""
import tidings
from wit_world import exports

# Calls answered by this instance: the answer says it, so a reused instance shows.
calls = 0


def count(request):
    global calls
    calls += 1
    if request["results"] == 2:
        raise RuntimeError("the build failed")
    if request["results"] is None:
        return tidings.plain("x" * (2 << 20))
    if request["results"] == 4:
        while True:
            pass
    return tidings.plain(f"{request['results_text']} (call {calls})")


class Run(exports.Run):
    def run(self) -> None:
        tidings.message_formatter(count)


WitWorld = tidings.warm(count)
