/*
 * tidings.h -- write tidings formatters in C. Header-only; C99; no dependencies beyond libc.
 *
 * A formatter is a WASI command: it reads one JSON request on stdin and writes one JSON result
 * on stdout (see ../README.md for the ABI). This header gives you what that takes in C:
 *
 *   char *req = tidings_read_request(NULL);                 // all of stdin, NUL-terminated
 *   const char *v = tidings_json_find(req, "build.builder.name");
 *   char *name = tidings_json_string(v);                    // unescaped copy, or NULL
 *   long long n; tidings_json_int(tidings_json_find(req, "results"), &n);
 *   return tidings_write_message("body", "plain", NULL);   // {"body":…,"type":…} on stdout
 *
 * tidings_json_find also takes a value it returned, with a path relative to it: find a parent
 * once (`build`, a step) and its members from there, instead of scanning the request from the
 * start for each. Strings from tidings_json_string are malloc'd copies: free them, or not (the
 * process ends after its one call). tidings_json_first/next walk an array.
 *
 * The JSON reader is small on purpose: it finds a member by a dotted path of object keys
 * (`build.properties.branch`) or array indexes (`build.steps.0.name`) in the request text,
 * without building a tree, and reads strings (all escapes, \uXXXX included, as UTF-8),
 * integers, booleans and null. It is enough for the hook inputs; it is not a validator (the
 * host sends well-formed JSON).
 *
 * Build: clang --target=wasm32-wasi -O2 -I guest-sdk/c -o f.wasm f.c
 */
#ifndef TIDINGS_H
#define TIDINGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin into a NUL-terminated buffer (free it with free()); its length in *len
 * when len is not NULL. NULL if stdin cannot be read or memory runs out. */
#ifndef TIDINGS_NO_WARM
/* The request of a warm call (see tidings_format_v1 below), until tidings_read_request takes it. */
static char *tidings__warm_request;
static size_t tidings__warm_len;
#endif

static inline char *tidings_read_request(size_t *len) {
#ifndef TIDINGS_NO_WARM
    if (tidings__warm_request) {
        char *req = tidings__warm_request;
        tidings__warm_request = NULL;
        if (len) *len = tidings__warm_len;
        return req;
    }
#endif
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); return NULL; }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) { free(buf); return NULL; }
            break;
        }
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static inline const char *tidings__ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Past the string starting at p (at its opening quote); NULL if unterminated. */
static inline const char *tidings__skip_string(const char *p) {
    for (p++; *p; p++) {
        if (*p == '\\') { if (!*++p) return NULL; }
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Past the JSON value starting at p; NULL on malformed input. */
static inline const char *tidings__skip_value(const char *p) {
    int depth = 0;
    p = tidings__ws(p);
    do {
        if (*p == '"') {
            p = tidings__skip_string(p);
            if (!p) return NULL;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0) return NULL;
            p++;
        } else if (*p == ',' || *p == ':' ) {
            if (depth == 0) return NULL;
            p++;
        } else if (*p) {
            /* a number or a literal */
            while (*p && !strchr(",:]} \t\r\n", *p)) p++;
        } else {
            return NULL;
        }
        p = tidings__ws(p);
    } while (depth > 0);
    return p;
}

/* The value of member `key` (a key of len bytes) of the object at p, or NULL. */
static inline const char *tidings__member(const char *p, const char *key, size_t len) {
    p = tidings__ws(p);
    if (*p != '{') return NULL;
    p = tidings__ws(p + 1);
    while (*p == '"') {
        const char *k = p + 1, *end = tidings__skip_string(p);
        if (!end) return NULL;
        int match = (size_t)(end - 1 - k) == len && memcmp(k, key, len) == 0;
        p = tidings__ws(end);
        if (*p != ':') return NULL;
        p = tidings__ws(p + 1);
        if (match) return p;
        p = tidings__skip_value(p);
        if (!p) return NULL;
        if (*p == ',') p = tidings__ws(p + 1);
    }
    return NULL;
}

/* Element `index` of the array at p, or NULL. */
static inline const char *tidings__element(const char *p, long index) {
    p = tidings__ws(p);
    if (*p != '[') return NULL;
    p = tidings__ws(p + 1);
    for (long i = 0; *p && *p != ']'; i++) {
        if (i == index) return p;
        p = tidings__skip_value(p);
        if (!p) return NULL;
        if (*p == ',') p = tidings__ws(p + 1);
    }
    return NULL;
}

/* The value at `path` (dot-separated object keys and array indexes) in the JSON text, or
 * NULL when there is none. An empty path is the whole document. */
static inline const char *tidings_json_find(const char *json, const char *path) {
    const char *p = json;
    while (p && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        const char *q = tidings__ws(p);
        if (*q == '[') {
            char *end;
            long index = strtol(path, &end, 10);
            p = end == path + len ? tidings__element(q, index) : NULL;
        } else {
            p = tidings__member(q, path, len);
        }
        path += len;
        if (*path == '.') path++;
    }
    return p ? tidings__ws(p) : NULL;
}

/* The first element of the array `v` (a value tidings_json_find returned), or NULL when it is
 * empty or not an array. With tidings_json_next, walks an array in one pass:
 *
 *   for (const char *s = tidings_json_first(tidings_json_find(req, "build.steps")); s;
 *        s = tidings_json_next(s)) { ... tidings_json_find(s, "name") ... }
 */
static inline const char *tidings_json_first(const char *v) {
    if (!v) return NULL;
    v = tidings__ws(v);
    if (*v != '[') return NULL;
    v = tidings__ws(v + 1);
    return *v == ']' ? NULL : v;
}

/* The element after the array element `e`, or NULL after the last. */
static inline const char *tidings_json_next(const char *e) {
    const char *p = e ? tidings__skip_value(e) : NULL;
    if (!p || *p != ',') return NULL;
    return tidings__ws(p + 1);
}

/* Buildbot's name of a result code (`results` of a build or a step): "success", "warnings",
 * "failure", "skipped", "exception", "retry", "cancelled"; "unknown" for another code. (The
 * request's `result_name` already says it for the build.) */
static inline const char *tidings_result_name(long long code) {
    static const char *const names[] = {"success", "warnings", "failure", "skipped",
                                        "exception", "retry", "cancelled"};
    return code >= 0 && code < 7 ? names[code] : "unknown";
}

static inline void tidings__utf8(char **o, unsigned long c) {
    char *out = *o;
    if (c < 0x80) { *out++ = (char)c; }
    else if (c < 0x800) { *out++ = (char)(0xC0 | c >> 6); *out++ = (char)(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) {
        *out++ = (char)(0xE0 | c >> 12); *out++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (char)(0x80 | (c & 0x3F));
    } else {
        *out++ = (char)(0xF0 | c >> 18); *out++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((c >> 6) & 0x3F)); *out++ = (char)(0x80 | (c & 0x3F));
    }
    *o = out;
}

static inline int tidings__hex4(const char *p, unsigned long *out) {
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* The string value at v, unescaped to UTF-8, in a new NUL-terminated buffer (free() it); NULL
 * when v is NULL or not a string. */
static inline char *tidings_json_string(const char *v) {
    if (!v || *v != '"') return NULL;
    const char *end = tidings__skip_string(v);
    if (!end) return NULL;
    char *buf = malloc((size_t)(end - v) * 2 + 1), *o = buf;
    if (!buf) return NULL;
    for (const char *p = v + 1; p < end - 1; p++) {
        if (*p != '\\') { *o++ = *p; continue; }
        switch (*++p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned long c, lo;
            if (!tidings__hex4(p + 1, &c)) { free(buf); return NULL; }
            p += 4;
            if (c >= 0xD800 && c < 0xDC00 && p[1] == '\\' && p[2] == 'u' &&
                tidings__hex4(p + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            tidings__utf8(&o, c);
            break;
        }
        default: *o++ = *p; /* \" \\ \/ */
        }
    }
    *o = '\0';
    return buf;
}

/* The integer at v into *out; 1 on success, 0 when v is not an integer (or is NULL). */
static inline int tidings_json_int(const char *v, long long *out) {
    if (!v) return 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end == '.' || *end == 'e' || *end == 'E') return 0;
    *out = n;
    return 1;
}

/* 1 when v is JSON null or absent (NULL). */
static inline int tidings_json_is_null(const char *v) {
    return !v || strncmp(v, "null", 4) == 0;
}

/* 1 when v is JSON true. */
static inline int tidings_json_is_true(const char *v) {
    return v && strncmp(v, "true", 4) == 0;
}

/* Writes s as a JSON string (quoted and escaped) to f. */
static inline void tidings_write_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Writes the messageFormatter result {"body": body, "type": type[, "subject": subject]} on
 * stdout (`type`: "plain" or "html"; `subject` may be NULL). Returns 0: `return` it from
 * main(). */
static inline int tidings_write_message(const char *body, const char *type, const char *subject) {
    fputs("{\"body\":", stdout);
    tidings_write_json_string(stdout, body);
    fputs(",\"type\":", stdout);
    tidings_write_json_string(stdout, type);
    if (subject) {
        fputs(",\"subject\":", stdout);
        tidings_write_json_string(stdout, subject);
    }
    fputs("}\n", stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Writes `null` (send nothing). Returns 0. */
static inline int tidings_write_nothing(void) {
    fputs("null\n", stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

#ifndef TIDINGS_NO_WARM
/* ABI v1's warm entry points (guest-sdk/README.md, "Warm instances"): a host that keeps the
 * instance for many calls writes each request into a buffer from tidings_alloc_v1 and calls
 * tidings_format_v1, which runs your main() once more with tidings_read_request() answering
 * from that buffer, and returns main's status. Nothing changes in your code, with two things to
 * know: globals keep their values from one call to the next, and memory you do not free stays
 * taken (the host replaces an instance that reaches its memory limit, or after `max_calls`
 * calls). main must be `int main(void)`; define TIDINGS_NO_WARM before including this header
 * to leave the entry points out. */
int main(void);

__attribute__((export_name("tidings_alloc_v1"))) char *tidings_alloc_v1(size_t len) {
    return malloc(len + 1);
}

__attribute__((export_name("tidings_format_v1"))) int tidings_format_v1(char *request, size_t len) {
    request[len] = '\0';
    tidings__warm_request = request;
    tidings__warm_len = len;
    int status = main();
    fflush(stdout);
    fflush(stderr);
    /* A main that never read the request leaves it here. */
    free(tidings__warm_request);
    tidings__warm_request = NULL;
    return status;
}
#endif

#endif /* TIDINGS_H */
