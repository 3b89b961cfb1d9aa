"""Native tests of the Python SDK (`python3 -m unittest` in this directory; guest-sdk/build.sh
python runs them): the lazily decoded request."""
import copy
import json
import unittest

from tidings import Request

# As the host writes it: abi and hook first, build last.
RAW = (b'{"abi":1,"hook":"messageFormatter","mode":["failing"],"results_text":"failure",'
       b'"users":["a <a@x>"],"build":{"number":3,"properties":{"build":[1,"x"]}}}')
WHOLE = json.loads(RAW)


class LazyRequest(unittest.TestCase):
    def test_the_build_is_decoded_only_when_read(self):
        r = Request(RAW)
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
                got = read(Request(RAW))
                expected = {"build": WHOLE["build"]} if name == "get" else WHOLE
                self.assertEqual(got, expected)

    def test_a_missing_key_is_missing(self):
        r = Request(RAW)
        with self.assertRaises(KeyError):
            r["nope"]
        self.assertEqual(r.get("nope", 5), 5)
        self.assertNotIn("nope", r)

    def test_a_request_whose_build_is_not_last_is_read_whole(self):
        raw = b'{"abi":1,"build":{"n":1},"results_text":"x"}'
        r = Request(raw)
        self.assertEqual(r["results_text"], "x")
        self.assertEqual(r, json.loads(raw))

    def test_a_nested_build_key_before_the_build_is_not_taken_for_it(self):
        raw = b'{"abi":1,"changes":[{"x":1,"build":2}],"results_text":"y","build":{"n":1}}'
        r = Request(raw)
        self.assertEqual((r["results_text"], r["build"]), ("y", {"n": 1}))
        self.assertEqual(r, json.loads(raw))

    def test_a_value_set_before_the_build_is_read_is_kept(self):
        r = Request(RAW)
        r["results_text"] = "changed"
        self.assertEqual(r["build"]["number"], 3)
        self.assertEqual(r["results_text"], "changed")

    def test_malformed_json_is_an_error(self):
        for raw in (b'{"abi":1,"build":', b"not json", b'{"abi":1,"build":{"n":}}'):
            with self.subTest(raw):
                with self.assertRaises(ValueError):
                    r = Request(raw)
                    r["build"]


if __name__ == "__main__":
    unittest.main()
