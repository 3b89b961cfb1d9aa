"""Regenerates formatters/default-mail/tests/ from Buildbot itself.

Runs Buildbot 4.3's default plain MessageFormatter (the text MailNotifier users get with
template_type='plain') on builds captured from a real master, and writes, per case, the tidings
request (<case>.input.json) and Buildbot's output (<case>.expected.json). The default-mail
formatter must reproduce Buildbot's text exactly.

Usage: <venv with buildbot==4.3.0>/bin/python scripts/buildbot-default-mail-cases.py
"""
import copy, json, pathlib
from types import SimpleNamespace
from buildbot.process.results import Results
from buildbot.reporters.message import MessageFormatter

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests/data/buildbot"
OUT = ROOT / "formatters/default-mail/tests"
TITLE, URL = "Bar CI", "http://127.0.0.1:8010/"
master = SimpleNamespace(config=SimpleNamespace(title=TITLE, buildbotURL=URL))

# case name, sample, mode, previous build's result (None: no previous build), and the result to
# give the build instead of the sample's own (None: keep it)
CASES = [
    ("success", "success-full.json", ["failing", "passing", "warnings"], None),
    ("failure", "failure-full.json", ["failing", "passing", "warnings"], None),
    ("failure-new", "failure-full.json", ["problem"], 0),
    ("success-restored", "success-full.json", ["change"], 2),
    ("cancelled", "cancelled-full.json", ["failing", "passing", "warnings", "exception", "cancelled"], None),
    ("started", "started-full.json", ["failing", "passing", "warnings"], None),
    ("no-steps", "failure-default.json", ["failing"], None),
]
CASES = [c + (None,) for c in CASES] + [
    # Every other result, on a captured build with its result changed.
    ("warnings", "success-full.json", ["warnings"], None, 1),
    ("skipped", "success-full.json", ["change"], 0, 3),
    ("exception", "failure-full.json", ["exception"], None, 4),
    ("retry", "failure-full.json", ["change"], 2, 5),
]

def write_case(name, request, deferred):
    """Writes <name>.input.json (the tidings request) and <name>.expected.json (what Buildbot's
    formatter, whose result `deferred` carries, made of it); returns Buildbot's message."""
    out = []
    deferred.addCallback(out.append)
    deferred.addErrback(lambda f: out.append(f))
    msg = out[0]
    assert isinstance(msg, dict), msg
    expected = {"body": msg["body"], "type": msg["type"], "subject": msg["subject"]}
    (OUT / f"{name}.input.json").write_text(json.dumps(request, indent=1, ensure_ascii=False) + "\n")
    (OUT / f"{name}.expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    return msg

def text(code):
    return "not finished" if code is None else Results[code]

for name, sample, mode, prev, results in CASES:
    build = json.loads((DATA / sample).read_text())
    if results is not None:
        build["results"] = results
    prev_build = None
    if prev is not None:
        prev_build = {k: build[k] for k in ("builderid", "buildrequestid", "complete", "complete_at")}
        prev_build.update(buildid=build["buildid"] - 1, number=build["number"] - 1,
                          results=prev, state_string="build successful" if prev == 0 else "failed",
                          properties={})
    users = sorted({build["properties"]["owner"][0]} | set(build["properties"].get("owners", [[]])[0]))
    request = {
        "abi": 1, "hook": "messageFormatter", "mode": mode,
        "name": build["builder"]["name"], "build": build,
        "results": build["results"], "results_text": text(build["results"]),
        "reporter": {"name": "mail", "kind": "mail"},
        "master": {"title": TITLE, "buildbotURL": URL},
        "build_url": build["url"], "users": users, "changes": [], "logs": [],
        "prev_build": prev_build,
    }
    bb_build = copy.deepcopy(build)
    bb_build["prev_build"] = prev_build
    msg = write_case(name, request, MessageFormatter(template_type="plain").format_message_for_build(
        master, bb_build, is_buildset=False, users=users, mode=tuple(mode)))
    print(name, "->", msg["subject"])

# The missing-worker mail (MessageFormatterMissingWorker's default plain template), for the
# messageFormatterMissingWorker hook.
from buildbot.reporters.message import MessageFormatterMissingWorker

WORKERS = [
    ("missing-worker", {"name": "w1", "notify": ["admin@example.org"],
                        "last_connection": "Mon Nov 23 10:00:00 2026",
                        "workerinfo": {"admin": "Ada <ada@example.org>", "host": "box"}}),
    ("missing-worker-unknown", {"name": "w2", "notify": ["ops@example.org"],
                                "last_connection": None, "workerinfo": {}}),
]
for name, worker in WORKERS:
    request = {
        "abi": 1, "hook": "messageFormatterMissingWorker", "worker": worker,
        "reporter": {"name": "mail", "kind": "mail"},
        "master": {"title": TITLE, "buildbotURL": URL},
        "buildbot_title": TITLE, "buildbot_url": URL,
    }
    msg = write_case(name, request, MessageFormatterMissingWorker().formatMessageForMissingWorker(
        master, copy.deepcopy(worker)))
    print(name, "->", msg["subject"])
