"""tidings -- the Python SDK for tidings formatters, built as WASI preview 2 components with
componentize-py.

A formatter reads one JSON request on stdin and writes one JSON result on stdout (the ABI:
guest-sdk/README.md; the shapes: guest-sdk/schema/). componentize-py runs CPython inside the
component, so stdin and stdout are Python's own; this module reads the request, checks it,
calls your function and writes its result::

    import tidings
    from wit_world import exports

    def short(req):
        return tidings.plain("STATUS: " + req["results_text"].title())

    class Run(exports.Run):
        def run(self) -> None:
            tidings.message_formatter(short)

    WitWorld = tidings.warm(short)  # optional: a fast warm instance (tidings:formatter/warm)

Return None to send nothing; raise to fail the call: the traceback goes to stderr (tidings logs
it under the formatter's name, and its end, with the last frame's file and line, is in the
call's error), and the exit status is 1.

`Run` answers a fresh call (the request on stdin). `WitWorld`, when the app defines it, puts the
component in the world tidings:formatter/warm (guest-sdk/build.sh and `tidings build` look for
it) and answers warm calls: the request is `format`'s argument and the result its return value,
with no stdin or stdout in between.
"""
import json
import sys
import traceback
from typing import Any, Callable, Optional, Tuple

Message = dict


class Request(dict):
    """The request: a dict whose `build` is decoded when first read. Decoding the build dict is
    most of what a small formatter costs (CPython under WebAssembly decodes JSON at ~60 MB/s);
    the host writes `build` after every other argument, so the rest is decoded alone and a
    formatter that reads only `results_text` never pays for the build. Reading `build` (or
    anything that looks at every key: iteration, `len`, `json.dumps`, comparison) decodes it.
    """

    __slots__ = ("_rest",)

    def __init__(self, raw):
        # `raw`: the request as bytes (stdin) or as str (a warm call's argument, decoded
        # already: working on it as it is saves encoding it and json decoding it again).
        # `,"build":` can only be structural (a quote inside a string is escaped), and the
        # text before it closed by one `}` is JSON only when it is at the top level.
        key, close = (',"build":', "}") if isinstance(raw, str) else (b',"build":', b"}")
        at = raw.find(key)
        head = None
        if at > 0:
            try:
                head = json.loads(raw[:at] + close)
            except ValueError:
                head = None
        if isinstance(head, dict):
            super().__init__(head)
            self._rest = (raw, at + len(key))
        else:
            super().__init__(json.loads(raw))
            self._rest = None

    def _load(self) -> None:
        """Decodes what is left: `build` alone when it is the last member, else the whole
        request again (for members the head does not have yet)."""
        if self._rest is None:
            return
        raw, start = self._rest
        self._rest = None
        tail = raw[start:].rstrip()
        try:
            if not tail.endswith(b"}" if isinstance(tail, bytes) else "}"):
                raise ValueError("not the last member")
            dict.__setitem__(self, "build", json.loads(tail[:-1]))
        except ValueError:
            for key, value in json.loads(raw).items():
                if not dict.__contains__(self, key):
                    dict.__setitem__(self, key, value)

    def __missing__(self, key):
        if self._rest is None:
            raise KeyError(key)
        self._load()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if not dict.__contains__(self, key):
            self._load()
        return dict.get(self, key, default)

    def __contains__(self, key) -> bool:
        if not dict.__contains__(self, key):
            self._load()
        return dict.__contains__(self, key)

    def _whole(name):  # a dict method that needs every member first
        method = getattr(dict, name)

        def whole(self, *args, **kwargs):
            self._load()
            return method(self, *args, **kwargs)

        whole.__name__ = name
        return whole

    for _name in ("__iter__", "__len__", "__repr__", "__eq__", "__ne__", "__or__", "__ror__",
                  "__reversed__", "keys", "items", "values", "copy", "pop", "popitem",
                  "setdefault", "update", "__delitem__"):
        locals()[_name] = _whole(_name)
    del _name, _whole
    __hash__ = None

    def __reduce__(self):
        return (dict, (dict(self.items()),))


def plain(body: str, subject: Optional[str] = None) -> Message:
    """A plain-text message."""
    return _message(body, "plain", subject)


def html(body: str, subject: Optional[str] = None) -> Message:
    """An HTML message."""
    return _message(body, "html", subject)


def _message(body: Any, kind: str, subject: Optional[str]) -> Message:
    m = {"body": body, "type": kind}
    if subject is not None:
        m["subject"] = subject
    return m


def prop(build: dict, name: str, default: Any = None) -> Any:
    """The value of build property `name` (properties are [value, source] pairs)."""
    value = (build.get("properties") or {}).get(name)
    return value[0] if value else default


RESULT_NAMES = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")


def result_name(code: Optional[int]) -> str:
    """Buildbot's name of a result code (a build's or a step's `results`): "failure", …;
    "not finished" for None. The request's `result_name` already says it for the build."""
    if code is None:
        return "not finished"
    return RESULT_NAMES[code] if 0 <= code < len(RESULT_NAMES) else f"unknown result {code}"


def steps(build: dict) -> list:
    """The build's steps, in order (empty unless the reporter asked for steps or logs)."""
    return build.get("steps") or []


def failed_steps(build: dict) -> list:
    """The steps whose result is FAILURE (2) or EXCEPTION (4)."""
    return [s for s in steps(build) if s.get("results") in (2, 4)]


def log_tail(log: dict, lines: int = 20) -> str:
    """The last `lines` lines of a log's text, when the reporter attached it (want_logs_content);
    "" otherwise. A stdio log's lines lose their channel letter (o, e, h), as Buildbot shows them."""
    content = log.get("content") or ""
    if isinstance(content, dict):
        content = content.get("content") or ""
    all_lines = content.splitlines()
    if log.get("type") == "s":
        all_lines = [line[1:] if line[:1] in ("h", "o", "e") else line for line in all_lines]
    return "\n".join(all_lines[-lines:])


def message_formatter(f: Callable[[Request], Optional[Message]]) -> None:
    """Runs `f` as the messageFormatter hook: reads the request, writes f's result."""
    failed, out = _answer(f, sys.stdin.buffer.read())
    if failed:
        sys.stderr.write(out)
        sys.stderr.flush()
        sys.exit(1)
    sys.stdout.write(out)
    sys.stdout.flush()


def warm(f: Callable[[Request], Optional[Message]]) -> type:
    """The world tidings:formatter/warm's export for the messageFormatter function `f`: define
    it in the app as `WitWorld = tidings.warm(f)`, beside `Run`. tidings then keeps an instance
    and calls its `format` with each request: what a fresh call would print is the return
    value, and what it would say on stderr (status 1) is the error, which also ends the
    instance. `f` is the function `Run` passes to `message_formatter`, unchanged."""

    class WitWorld:
        def format(self, request: str) -> str:
            failed, out = _answer(f, request)
            if failed:
                from componentize_py_types import Err  # only inside the component
                raise Err(out)
            return out

    return WitWorld


def _answer(f: Callable[[Request], Optional[Message]], raw) -> Tuple[bool, str]:
    """f's result for the request `raw` (bytes or str) as the line a formatter prints (False,
    line), or what the call says on stderr when it fails (True, text)."""
    try:
        request = Request(raw)
    except Exception as e:
        return True, f"the request is not JSON: {e}\n"
    if request.get("abi") != 1 or request.get("hook") != "messageFormatter":
        # The config calls this formatter for a hook it does not serve: one sentence.
        return True, (
            f"this formatter serves messageFormatter (ABI 1), not {request.get('hook')!r}\n")
    try:
        return False, json.dumps(f(request)) + "\n"
    except Exception as e:  # any failure of the formatter is the call's failure
        return True, _traceback(e)


def _excepthook(kind, e: BaseException, tb) -> None:
    """An exception raised outside the hook wrapper (in `Run.run` before the SDK is called):
    reported as the wrapper reports one, and the call ends with exit status 1, instead of the
    runtime's panic (a trap)."""
    _report(e)
    sys.exit(1)


sys.excepthook = _excepthook


def _report(e: BaseException) -> None:
    """Writes `e`'s traceback on stderr, as `_traceback` gives it."""
    sys.stderr.write(_traceback(e))
    sys.stderr.flush()


def _traceback(e: BaseException) -> str:
    """`e`'s traceback, without this module's own frames, ending with the exception and where
    it was raised: `KeyError: 'buildUrl' (app.py, line 12, in format)`."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.endswith("tidings.py")] or traceback.extract_tb(e.__traceback__)
    out = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    last = "".join(traceback.format_exception_only(type(e), e)).strip()
    if frames:
        f = frames[-1]
        last += f" ({f.filename.rsplit('/', 1)[-1]}, line {f.lineno}, in {f.name})"
    return "".join(out) + last + "\n"
