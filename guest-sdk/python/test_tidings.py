"""Native tests of the Python SDK (`python3 -m unittest` in this directory; guest-sdk/build.sh
python runs them): the lazily decoded request, and the warm `format` export."""
import copy
import json
import sys
import types
import unittest

import tidings
from tidings import Request

# As the host writes it: abi and hook first, build last.
RAW = (b'{"abi":1,"hook":"messageFormatter","mode":["failing"],"results_text":"failure",'
       b'"users":["a <a@x>"],"build":{"number":3,"properties":{"build":[1,"x"]}}}')
WHOLE = json.loads(RAW)


class LazyRequest(unittest.TestCase):
    """The request as stdin gives it (bytes)."""

    @staticmethod
    def form(raw: bytes):
        return raw

    def test_the_build_is_decoded_only_when_read(self):
        r = Request(self.form(RAW))
        self.assertEqual(r["results_text"], "failure")
        self.assertEqual(r.get("users"), ["a <a@x>"])
        self.assertFalse(dict.__contains__(r, "build"))
        self.assertEqual(r["build"]["number"], 3)
        self.assertTrue(dict.__contains__(r, "build"))

    def test_every_way_of_reading_sees_the_whole_request(self):
        readers = {
            "get": lambda r: {"build": r.get("build")},
            "in": lambda r: "build" in r and WHOLE,
            "len": lambda r: len(r) == len(WHOLE) and WHOLE,
            "keys": lambda r: {k: WHOLE[k] for k in r.keys()},
            "items": lambda r: dict(r.items()),
            "iter": lambda r: {k: r[k] for k in r},
            "dict": dict,
            "unpack": lambda r: {**r},
            "dumps": lambda r: json.loads(json.dumps(r)),
            "copy": copy.copy,
            "deepcopy": copy.deepcopy,
            "eq": lambda r: r == WHOLE and WHOLE,
        }
        for name, read in readers.items():
            with self.subTest(name):
                got = read(Request(self.form(RAW)))
                expected = {"build": WHOLE["build"]} if name == "get" else WHOLE
                self.assertEqual(got, expected)

    def test_a_missing_key_is_missing(self):
        r = Request(self.form(RAW))
        with self.assertRaises(KeyError):
            r["nope"]
        self.assertEqual(r.get("nope", 5), 5)
        self.assertNotIn("nope", r)

    def test_a_request_whose_build_is_not_last_is_read_whole(self):
        raw = b'{"abi":1,"build":{"n":1},"results_text":"x"}'
        r = Request(self.form(raw))
        self.assertEqual(r["results_text"], "x")
        self.assertEqual(r, json.loads(raw))

    def test_a_nested_build_key_before_the_build_is_not_taken_for_it(self):
        raw = b'{"abi":1,"changes":[{"x":1,"build":2}],"results_text":"y","build":{"n":1}}'
        r = Request(self.form(raw))
        self.assertEqual((r["results_text"], r["build"]), ("y", {"n": 1}))
        self.assertEqual(r, json.loads(raw))

    def test_a_value_set_before_the_build_is_read_is_kept(self):
        r = Request(self.form(RAW))
        r["results_text"] = "changed"
        self.assertEqual(r["build"]["number"], 3)
        self.assertEqual(r["results_text"], "changed")

    def test_malformed_json_is_an_error(self):
        for raw in (b'{"abi":1,"build":', b"not json", b'{"abi":1,"build":{"n":}}'):
            with self.subTest(raw):
                with self.assertRaises(ValueError):
                    r = Request(self.form(raw))
                    r["build"]


class LazyRequestFromAString(LazyRequest):
    """The same, as a warm call's argument gives it (str, decoded by the component)."""

    @staticmethod
    def form(raw: bytes):
        return raw.decode()


class Err(Exception):
    """componentize-py's `Err` (componentize_py_types), which exists only inside a component."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class WarmFormat(unittest.TestCase):
    def setUp(self):
        sys.modules["componentize_py_types"] = types.SimpleNamespace(Err=Err)
        self.addCleanup(sys.modules.pop, "componentize_py_types")

    def format(self, f, raw):
        return tidings.warm(f)().format(raw.decode())

    def test_the_result_is_what_a_fresh_call_prints(self):
        out = self.format(lambda req: tidings.plain("STATUS: " + req["results_text"]), RAW)
        self.assertEqual(out, '{"body": "STATUS: failure", "type": "plain"}\n')
        self.assertEqual(self.format(lambda req: None, RAW), "null\n")

    def test_an_exception_is_the_error_with_its_traceback_and_where_it_was_raised(self):
        def link(req):
            return req["build"]["buildUrl"]

        with self.assertRaises(Err) as e:
            self.format(link, RAW)
        self.assertTrue(e.exception.value.startswith("Traceback (most recent call last):\n"))
        self.assertTrue(e.exception.value.endswith(
            "KeyError: 'buildUrl' (test_tidings.py, line %d, in link)\n"
            % (link.__code__.co_firstlineno + 1)), e.exception.value)

    def test_another_hook_or_malformed_json_is_an_error_of_one_sentence(self):
        other = RAW.replace(b'"messageFormatter"', b'"reviewCB"')
        for raw, said in (
            (other, "this formatter serves messageFormatter (ABI 1), not 'reviewCB'\n"),
            (b"{not json", "the request is not JSON: "),
        ):
            with self.subTest(raw):
                with self.assertRaises(Err) as e:
                    self.format(lambda req: tidings.plain("x"), raw)
                self.assertTrue(e.exception.value.startswith(said), e.exception.value)


if __name__ == "__main__":
    unittest.main()
