"""Uses the Python SDK's helpers on a real build (tests/guests.rs compares the result with the
Rust SDK's answers for the same build)."""
import tidings
from wit_world import exports


def format(request):
    build = request["build"]
    failed = tidings.failed_steps(build)
    names = ", ".join(f"{s['name']} ({tidings.result_name(s['results'])})" for s in failed)
    last = failed[-1]["logs"][0] if failed and failed[-1].get("logs") else {}
    return tidings.plain(f"{len(tidings.steps(build))} steps; failed: {names}\n"
                         + tidings.log_tail(last, 2))


class Run(exports.Run):
    def run(self) -> None:
        tidings.message_formatter(format)
