"""A Python formatter with a bug: it asks for a field the build does not have (tests/guests.rs
checks that the error names the file and line)."""
import tidings
from wit_world import exports


def link(request):
    return request["build"]["buildUrl"]


def format(request):
    return tidings.plain("see " + link(request))


class Run(exports.Run):
    def run(self) -> None:
        tidings.message_formatter(format)
