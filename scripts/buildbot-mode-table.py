"""Regenerates tests/data/modes.json from Buildbot itself.

For the issue's build sequence on one builder (success, failure, failure, success, exception,
retry, cancelled, then skipped and warnings), asks Buildbot 4.3's own BuildStatusGenerator which
builds each mode reports, with the previous build found Buildbot's way (highest number below,
not RETRY; every build here has finished, so Buildbot's bug #9067 does not show).

Usage: <venv with buildbot==4.3.0>/bin/python scripts/buildbot-mode-table.py
"""
import json, pathlib
from buildbot.process.results import RETRY
from buildbot.reporters.generators.build import BuildStatusGenerator

SEQUENCE = [0, 2, 2, 0, 4, 5, 6, 3, 1, 2]
MODES = ["all", "warnings", ["change"], ["failing"], ["passing"], ["problem"], ["warnings"],
         ["exception"], ["cancelled"], ["change", "problem"], ["failing", "passing", "warnings"]]

def prev_of(i):
    for j in range(i - 1, -1, -1):
        if SEQUENCE[j] != RETRY:
            return {"number": j + 1, "results": SEQUENCE[j]}
    return None

table = {"sequence": SEQUENCE, "modes": []}
for mode in MODES:
    gen = BuildStatusGenerator(mode=mode if isinstance(mode, str) else tuple(mode))
    reported = []
    for i, results in enumerate(SEQUENCE):
        build = {"number": i + 1, "results": results, "prev_build": prev_of(i)}
        if gen.is_message_needed_by_results(build):
            reported.append(i + 1)
    table["modes"].append({"mode": mode, "expanded": list(gen.mode), "reported": reported})

out = pathlib.Path(__file__).resolve().parent.parent / "tests/data/modes.json"
out.write_text(json.dumps(table, indent=1) + "\n")
for m in table["modes"]:
    print(m["mode"], "->", m["reported"])
