/* Tests of tidings.h, run as a WASI program: guest-sdk/build.sh c builds it, and
 * `tidings run target/guests/tidings-h-test.wasm` runs it (exit 0: every check passed). */
#include "tidings.h"

static int failures;
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            failures++;                                                  \
        }                                                                \
    } while (0)

static int str_is(const char *v, const char *want) {
    char *s = tidings_json_string(v);
    int ok = s && strcmp(s, want) == 0;
    if (!ok) fprintf(stderr, "got %s, want %s\n", s ? s : "(null)", want);
    free(s);
    return ok;
}

int main(void) {
    const char *doc =
        "{\"abi\":1,\"hook\":\"messageFormatter\", \"results\": 2,\n"
        " \"build\": {\"builder\": {\"name\": \"run\\\"tests\\\"\"}, \"number\": 12,\n"
        "   \"properties\": {\"branch\": [\"main\", \"Force Build Form\"], \"empty\": {}},\n"
        "   \"steps\": [{\"name\": \"a\", \"logs\": []}, {\"name\": \"b\\u00e9\\ud83d\\ude00\"}]},\n"
        " \"escaped\": \"line\\nnext\\ttab \\\\ \\/\", \"none\": null, \"yes\": true,\n"
        " \"float\": 1.5, \"neg\": -3}";
    long long n = 0;
    CHECK(tidings_json_int(tidings_json_find(doc, "results"), &n) && n == 2);
    CHECK(tidings_json_int(tidings_json_find(doc, "build.number"), &n) && n == 12);
    CHECK(tidings_json_int(tidings_json_find(doc, "neg"), &n) && n == -3);
    CHECK(!tidings_json_int(tidings_json_find(doc, "float"), &n));
    CHECK(str_is(tidings_json_find(doc, "hook"), "messageFormatter"));
    CHECK(str_is(tidings_json_find(doc, "build.builder.name"), "run\"tests\""));
    CHECK(str_is(tidings_json_find(doc, "build.properties.branch.0"), "main"));
    CHECK(str_is(tidings_json_find(doc, "build.steps.1.name"), "b\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK(str_is(tidings_json_find(doc, "escaped"), "line\nnext\ttab \\ /"));
    CHECK(tidings_json_find(doc, "build.steps.2") == NULL);
    CHECK(tidings_json_find(doc, "build.nothing") == NULL);
    CHECK(tidings_json_find(doc, "build.properties.empty.x") == NULL);
    CHECK(tidings_json_find("{\"a\": ", "a.b") == NULL); /* truncated: no crash */
    CHECK(tidings_json_string(tidings_json_find(doc, "results")) == NULL);
    CHECK(tidings_json_is_null(tidings_json_find(doc, "none")));
    CHECK(tidings_json_is_null(tidings_json_find(doc, "missing")));
    CHECK(tidings_json_is_true(tidings_json_find(doc, "yes")));
    /* A value found is a document of its own: relative paths from it. */
    const char *build = tidings_json_find(doc, "build");
    CHECK(tidings_json_int(tidings_json_find(build, "number"), &n) && n == 12);
    /* Arrays, walked in one pass. */
    const char *names[3] = {0};
    int count = 0;
    for (const char *st = tidings_json_first(tidings_json_find(build, "steps")); st && count < 3;
         st = tidings_json_next(st))
        names[count++] = tidings_json_find(st, "name");
    CHECK(count == 2);
    CHECK(str_is(names[0], "a"));
    CHECK(str_is(names[1], "b\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK(tidings_json_first(tidings_json_find(doc, "build.steps.0.logs")) == NULL);
    CHECK(tidings_json_first(tidings_json_find(doc, "results")) == NULL);
    CHECK(tidings_json_first(NULL) == NULL && tidings_json_next(NULL) == NULL);
    CHECK(strcmp(tidings_result_name(2), "failure") == 0);
    CHECK(strcmp(tidings_result_name(6), "cancelled") == 0);
    CHECK(strcmp(tidings_result_name(9), "unknown") == 0);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    puts("tidings.h: all checks passed");
    return 0;
}
