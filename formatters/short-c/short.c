/* short, in C: `STATUS: <Result>` (plain), like formatters/short. Same cases: the tests of
 * formatters/short. Build: guest-sdk/build.sh c */
#include <ctype.h>
#include "tidings.h"

int main(void) {
    char *request = tidings_read_request(NULL);
    if (!request) {
        fputs("cannot read the request from stdin\n", stderr);
        return 1;
    }
    char *text = tidings_json_string(tidings_json_find(request, "results_text"));
    free(request); /* text is a copy; run warm, an instance answers many calls: free what you take */
    if (!text) {
        fputs("the request has no results_text\n", stderr);
        return 1;
    }
    /* Python's str.title() on ASCII: a letter after a non-letter is upper-cased, others
     * lower-cased. */
    int in_word = 0;
    for (char *p = text; *p; p++) {
        if (isalpha((unsigned char)*p)) {
            *p = (char)(in_word ? tolower((unsigned char)*p) : toupper((unsigned char)*p));
            in_word = 1;
        } else {
            in_word = 0;
        }
    }
    size_t n = strlen(text) + sizeof "STATUS: ";
    char *body = malloc(n);
    if (!body) return 1;
    snprintf(body, n, "STATUS: %s", text);
    free(text);
    int status = tidings_write_message(body, "plain", NULL);
    free(body);
    return status;
}
