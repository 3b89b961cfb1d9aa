"""Times Buildbot's own formatters in-process on a captured build dict, for
scripts/bench-vs-buildbot: the anchor tidings' formatters are compared with.

    python buildbot-formatter-timing.py BUILD.json CALLS

Prints one line per formatter: `<name> <median µs> <p99 µs>`. Run it with the Python of a venv
that has buildbot 4.3 (scripts/install-buildbot prints one)."""
import json
import sys
import time
from types import SimpleNamespace

from buildbot.process.results import Results
from buildbot.reporters.message import MessageFormatter, MessageFormatterFunction


def status_line(ctx):
    """The one-line function formatter Buildbot users write (tidings' `short`)."""
    return "STATUS: " + Results[ctx["build"]["results"]].title()


def timed(formatter, master, build, calls):
    def one():
        results = []
        d = formatter.format_message_for_build(
            master, build, is_buildset=False, users=["alice"],
            mode=("failing", "passing", "warnings"))
        d.addBoth(results.append)
        if not results or not isinstance(results[0], dict):
            raise SystemExit(f"the formatter did not answer synchronously: {results!r}")
    for _ in range(min(100, calls)):
        one()
    took = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        one()
        took.append(time.perf_counter_ns() - start)
    took.sort()
    return took[len(took) // 2] / 1000, took[min(len(took) - 1, len(took) * 99 // 100)] / 1000


def main():
    build = json.load(open(sys.argv[1]))
    build.setdefault("prev_build", None)
    calls = int(sys.argv[2])
    master = SimpleNamespace(config=SimpleNamespace(
        title="Buildbot", buildbotURL="http://127.0.0.1:8010/"))
    for name, formatter in [
        ("function", MessageFormatterFunction(status_line, "plain")),
        ("jinja-plain", MessageFormatter(template_type="plain")),
    ]:
        median, p99 = timed(formatter, master, build, calls)
        print(f"{name} {median:.1f} {p99:.1f}")


main()
