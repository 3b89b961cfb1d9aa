"""Raises in `Run.run` before the SDK is called (tests/guests.rs): the SDK's excepthook reports
it like an error in the hook, with exit status 1, instead of the runtime's panic."""
import tidings
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        settings = {}
        branch = settings["branch"]
        tidings.message_formatter(lambda req: tidings.plain(branch))
