"""Regenerates tests/data/irc-notify.json from Buildbot itself.

For every notify event the IRC bot knows and every pair (previous result, result) of Buildbot's
results (and "no previous build"), asks Buildbot 4.3's own `Channel.notify_for_finished` (in
`buildbot/reporters/words.py`) whether a channel with only that event enabled announces the
finished build. The previous build is handed over as Buildbot's data API would return it.

Usage: <venv with buildbot==4.3.0>/bin/python scripts/buildbot-irc-table.py
"""
import json, pathlib
from twisted.internet import defer
from buildbot.process.results import Results
from buildbot.reporters.words import Channel, StatusBot

NAMES = ["success", "warnings", "failure", "exception", "cancelled"]
EVENTS = ["started", "finished", "success", "warnings", "failure", "exception", "cancelled",
          "problem", "recovery", "worse", "better", "worker"] + [
    f"{a}To{b.capitalize()}" for a in ["success", "warnings", "failure", "exception"]
    for b in ["success", "warnings", "failure", "exception"]]


class Data:
    def __init__(self, prev):
        self.prev = prev

    def get(self, path):
        return defer.succeed(None if self.prev is None else {"results": self.prev})


class Master:
    def __init__(self, prev):
        self.data = Data(prev)


class Bot:
    results_severity = StatusBot.results_severity

    def __init__(self, prev):
        self.master = Master(prev)


def decide(event, prev, results):
    channel = Channel.__new__(Channel)
    channel.bot = Bot(prev)
    channel.parent = channel.bot
    channel.notify_events = {event}
    out = []
    channel.notify_for_finished({"builderid": 1, "number": 2, "results": results}).addCallback(
        out.append)
    return out[0]


rows = []
for results in range(len(Results)):
    for prev in [None, *range(len(Results))]:
        notified = [e for e in EVENTS if decide(e, prev, results)]
        rows.append({"prev": prev, "results": results, "events": notified})
table = {"events": EVENTS, "results": list(Results), "rows": rows}
out = pathlib.Path(__file__).resolve().parent.parent / "tests/data/irc-notify.json"
out.write_text(json.dumps(table, indent=1) + "\n")
print(f"wrote {out} ({len(rows)} rows)")
