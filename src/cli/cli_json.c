/*
 * cli_json.c: JSON-lines writer for dispatched events and retry values (see cli_json.h).
 * Output only; it never fails loudly: stdio errors are left for the caller to see with ferror().
 */
#include "cli_json.h"

#include <inttypes.h>

/* Length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    if (!sse_utf8_valid_prefix((const char *)s, n < 4 ? n : 4))
        return 0;
    return s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2; /* a valid lead byte says the length */
}

void sse_cli_json_string(FILE *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    size_t i = 0;
    fputc('"', out);
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq_len(s + i, len - i);
            if (k) {
                i += k;
                continue;
            }
        }
        if (i > run)
            fwrite(s + run, 1, i - run, out);
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            fwrite(esc, 1, 2, out);
        } else if (c < 0x80) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fwrite(esc, 1, 6, out);
        } else {
            fwrite("\\ufffd", 1, 6, out);
        }
        i++;
        run = i;
    }
    if (i > run)
        fwrite(s + run, 1, i - run, out);
    fputc('"', out);
}

void sse_cli_json_event(FILE *out, const sse_parsed_event *ev)
{
    fputs("{\"type\":", out);
    sse_cli_json_string(out, ev->type, ev->type_len);
    fputs(",\"data\":", out);
    sse_cli_json_string(out, ev->data, ev->data_len);
    fputs(",\"id\":", out);
    sse_cli_json_string(out, ev->id, ev->id_len);
    fputs("}\n", out);
}

void sse_cli_json_retry(FILE *out, uint64_t ms)
{
    fprintf(out, "{\"retry\":%" PRIu64 "}\n", ms);
}
