/*
 * cmd_token.c: `ssehub token`: mint a development JWT for a Mercure hub, draft-07 (a "mercure"
 * claim with publish / subscribe / payload) or draft-08 (an RFC 9068 access token: typ at+jwt,
 * aud, iss, exp, authorization_details of type https://mercure.rocks/authorization-detail),
 * signed by sse_token_sign() (<sse/token.h>;
 * see sse_cli_token_mint for why not libjwt). Also the minting code that `ssehub pub` uses. Exit
 * status: 0 token printed, 1 minting failed (key, payload), 2 usage error.
 */
#include "cli_commands.h"
#include "cli_help.h"
#include "cli_token.h"

#include <errno.h>
#include <jansson.h>
#include <sse/error.h>
#include <sse/token.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char sse_cli_token_summary[] = "mint a development JWT (draft-07 or draft-08) for the hub";

#define TOKEN_MAX_GRANTS 256
#define TOKEN_MAX_KEY (1 << 20)

/* draft-08 (head of dunglas/mercure): the authorization detail type, and the issuer put in a
   token minted without --iss (hubs require one; a hub with --issuer wants that one). */
#define SSE_CLI_DETAIL_TYPE "https://mercure.rocks/authorization-detail"
#define SSE_CLI_DEFAULT_ISS "urn:ssehub:token"

/* The help table: --help, the man page ssehub-token(1) and the completion (cli_help.h). */
static const struct cli_option token_options[] = {
    {"--draft", "07|08",
     "token generation (default 07): 07 puts the grants in a\n"
     "\"mercure\" claim; 08 makes an access token (typ at+jwt,\n"
     "aud, iss, exp, authorization_details)"},
    {"--publish", "SEL", "grant publishing to SEL (repeatable); \"*\" = every topic"},
    {"--subscribe", "SEL", "grant receiving private updates of SEL (repeatable)"},
    {"--publish-pattern", "P", "draft-08: a URLPattern publish matcher (repeatable)"},
    {"--subscribe-pattern", "P", "draft-08: a URLPattern subscribe matcher (repeatable)"},
    {"--payload", "JSON", "subscriber payload (draft-08: a JSON object)"},
    {"--exp", "SECONDS", "lifetime (default 3600; 0 = no exp, draft-07 only)"},
    {"--key", "KEY", "HMAC secret, default $MERCURE_PUBLISHER_JWT_KEY"},
    {"--key-file", "FILE", "read the key from FILE (a PEM private key for RS/ES/EdDSA)"},
    {"--alg", "ALG",
     "HS256 (default, or $MERCURE_PUBLISHER_JWT_ALG), HS384, HS512,\n"
     "RS256, RS384, RS512, ES256, ES384, ES512, EdDSA (Ed25519)"},
    {"--aud", "AUD", "audience; draft-08 default: " SSE_CLI_DEFAULT_HUB},
    {"--iss", "ISS", "issuer claim; draft-08 default: " SSE_CLI_DEFAULT_ISS},
    {"--sub", "SUB", "subject claim (the subscriber's identity)"},
    {"-h, --help", NULL, "this text"},
    {NULL, NULL, NULL},
};

static const struct cli_help token_help = {
    "token",
    sse_cli_token_summary,
    "[--draft 07|08] [--publish SEL]... [--subscribe SEL]...\n"
    "[--payload JSON] [--exp SECONDS] [--key KEY | --key-file FILE]\n"
    "[--alg ALG] [--aud AUD] [--iss ISS] [--sub SUB]",
    "Prints a signed JWT that a Mercure hub accepts (for development and tests).",
    token_options,
    "example: ssehub token --publish '*' --subscribe 'https://example.com/books/{id}'",
    "0 token printed, 1 minting failed, 2 usage error",
};

const struct cli_help *sse_cli_token_help(void)
{
    return &token_help;
}

static void token_usage(FILE *out)
{
    cli_help_print(out, &token_help);
}

char *sse_cli_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= max + 1) {
                errno = EFBIG;
                goto out_fail;
            }
            char *p = realloc(buf, cap * 2);
            if (!p)
                goto out_fail;
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                goto out_fail;
            break;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
out_fail:
    free(buf);
    fclose(f);
    return NULL;
}

static json_t *grant_list_07(const struct sse_cli_grant *g, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(g[i].match));
    return a;
}

static json_t *topics_08(const struct sse_cli_grant *g, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s}", "match", g[i].match, "match_type",
                                           g[i].url_pattern ? "urlpattern" : "exact"));
    return a;
}

static json_t *build_claims(const struct sse_cli_token_spec *s, long long now, const char **err)
{
    json_t *claims = json_object(), *payload = NULL;
    if (!claims)
        goto out_oom;
    if (s->payload_json) {
        json_error_t je;
        payload = json_loads(s->payload_json, JSON_DECODE_ANY, &je);
        if (!payload) {
            *err = "--payload is not valid JSON";
            goto out_fail;
        }
        if (s->draft == 8 && !json_is_object(payload)) {
            *err = "draft-08 payloads must be JSON objects";
            goto out_fail;
        }
    }
    if (s->exp_seconds > 0)
        json_object_set_new(claims, "exp", json_integer(now + s->exp_seconds));
    else if (s->draft == 8) {
        *err = "draft-08 tokens need an expiry (--exp > 0)";
        goto out_fail;
    }
    json_object_set_new(claims, "iat", json_integer(now));
    if (s->iss || s->draft == 8) /* draft-08 hubs require iss */
        json_object_set_new(claims, "iss", json_string(s->iss ? s->iss : SSE_CLI_DEFAULT_ISS));
    if (s->sub)
        json_object_set_new(claims, "sub", json_string(s->sub));
    if (s->draft == 8) {
        json_object_set_new(claims, "aud", json_string(s->aud ? s->aud : SSE_CLI_DEFAULT_HUB));
        json_t *details = json_array();
        if (s->n_publish)
            json_array_append_new(details, json_pack("{s:s,s:[s],s:o}", "type", SSE_CLI_DETAIL_TYPE,
                                                     "actions", "publish", "topics",
                                                     topics_08(s->publish, s->n_publish)));
        if (s->n_subscribe) {
            json_t *d = json_pack("{s:s,s:[s],s:o}", "type", SSE_CLI_DETAIL_TYPE, "actions",
                                  "subscribe", "topics", topics_08(s->subscribe, s->n_subscribe));
            if (d && payload)
                json_object_set(d, "payload", payload);
            json_array_append_new(details, d);
        }
        json_object_set_new(claims, "authorization_details", details);
    } else {
        if (s->aud)
            json_object_set_new(claims, "aud", json_string(s->aud));
        json_t *m = json_object();
        if (s->n_publish)
            json_object_set_new(m, "publish", grant_list_07(s->publish, s->n_publish));
        if (s->n_subscribe)
            json_object_set_new(m, "subscribe", grant_list_07(s->subscribe, s->n_subscribe));
        if (payload)
            json_object_set(m, "payload", payload);
        json_object_set_new(claims, "mercure", m);
    }
    json_decref(payload);
    return claims;
out_oom:
    *err = "out of memory";
out_fail:
    json_decref(payload);
    json_decref(claims);
    return NULL;
}

/* The signer's reasons (sse_token_sign(), token.h), with the options that fix them. */
static const char *mint_reason(int rc, const char *alg, const char *why)
{
    if (rc == SSE_EUNSUPPORTED)
        return "unknown algorithm (HS256, HS384, HS512, RS256..512, ES256..512, EdDSA)";
    if (rc == SSE_EINVAL)
        return alg[0] == 'H' ? "a PEM key is not an HMAC secret (use --alg RS256/ES256)"
                             : "RS/ES/EdDSA need a PEM private key of that type (--key-file)";
    return why;
}

/*
 * The claims and header are built here and signed by sse_token_sign() (OpenSSL), not by libjwt:
 * libjwt 1.10's jwt_encode_str always rewrites the "typ" header to "JWT", and draft-08 access
 * tokens must say "at+jwt" (RFC 9068).
 */
int sse_cli_token_mint(const struct sse_cli_token_spec *s, long long now, char **out,
                       const char **err)
{
    const char *alg = s->alg ? s->alg : "HS256";
    char *claims_text = NULL, *header_text = NULL, *tok = NULL;
    int rc = -1;
    if (!s->key || !*s->key) {
        *err = "no key (--key, --key-file or $MERCURE_PUBLISHER_JWT_KEY)";
        return -1;
    }
    if (!strcmp(alg, "none") || strlen(alg) != 5) {
        *err = "unknown algorithm (HS256, HS384, HS512, RS256..512, ES256..512, EdDSA)";
        return -1;
    }
    json_t *claims = build_claims(s, now, err);
    if (!claims)
        return -1;
    claims_text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    json_t *hdr = json_pack("{s:s,s:s}", "alg", alg, "typ", s->draft == 8 ? "at+jwt" : "JWT");
    header_text = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(hdr);
    if (!claims_text || !header_text) {
        *err = "out of memory";
        goto out;
    }
    size_t hl = strlen(header_text), cl = strlen(claims_text), cap = sse_token_max_len(hl, cl);
    tok = malloc(cap);
    if (!tok) {
        *err = "out of memory";
        goto out;
    }
    const char *why = NULL;
    int jrc = sse_token_sign(tok, cap, NULL, alg, s->key, header_text, hl, claims_text, cl, &why);
    if (jrc) {
        *err = mint_reason(jrc, alg, why);
        goto out;
    }
    *out = tok;
    tok = NULL;
    rc = 0;
out:
    free(tok);
    free(header_text);
    free(claims_text);
    return rc;
}

/* Command-line parsing. */
struct token_args {
    struct sse_cli_grant publish[TOKEN_MAX_GRANTS], subscribe[TOKEN_MAX_GRANTS];
    struct sse_cli_token_spec spec;
    const char *key_file;
};

static int add_grant(struct sse_cli_grant *list, size_t *n, const char *v, int pattern)
{
    if (*n >= TOKEN_MAX_GRANTS)
        return -1;
    list[*n].match = v;
    list[*n].url_pattern = pattern;
    (*n)++;
    return 0;
}

static int parse_ll(const char *s, long long *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return errno || *end || *v < 0 || *v > 100LL * 366 * 86400 ? -1 : 0; /* at most ~100 years */
}

int sse_cli_token(int argc, char **argv)
{
    static struct token_args ta; /* large: kept off the stack */
    struct sse_cli_token_spec *s = &ta.spec;
    char *key_buf = NULL;
    memset(&ta, 0, sizeof(ta));
    s->draft = 7;
    s->exp_seconds = 3600;
    s->publish = ta.publish;
    s->subscribe = ta.subscribe;
    s->alg = getenv("MERCURE_PUBLISHER_JWT_ALG");
    s->key = getenv("MERCURE_PUBLISHER_JWT_KEY");
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            token_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "ssehub token: unknown option or missing value: %s\n", a);
            return 2;
        }
        int bad = 0;
        if (!strcmp(a, "--draft")) {
            if (!strcmp(v, "07") || !strcmp(v, "7"))
                s->draft = 7;
            else if (!strcmp(v, "08") || !strcmp(v, "8"))
                s->draft = 8;
            else
                bad = 1;
        } else if (!strcmp(a, "--publish")) {
            bad = add_grant(ta.publish, &s->n_publish, v, 0);
        } else if (!strcmp(a, "--subscribe")) {
            bad = add_grant(ta.subscribe, &s->n_subscribe, v, 0);
        } else if (!strcmp(a, "--publish-pattern")) {
            bad = add_grant(ta.publish, &s->n_publish, v, 1);
        } else if (!strcmp(a, "--subscribe-pattern")) {
            bad = add_grant(ta.subscribe, &s->n_subscribe, v, 1);
        } else if (!strcmp(a, "--payload")) {
            s->payload_json = v;
        } else if (!strcmp(a, "--exp")) {
            bad = parse_ll(v, &s->exp_seconds);
        } else if (!strcmp(a, "--key")) {
            s->key = v;
        } else if (!strcmp(a, "--key-file")) {
            ta.key_file = v;
        } else if (!strcmp(a, "--alg")) {
            s->alg = v;
        } else if (!strcmp(a, "--aud")) {
            s->aud = v;
        } else if (!strcmp(a, "--iss")) {
            s->iss = v;
        } else if (!strcmp(a, "--sub")) {
            s->sub = v;
        } else {
            fprintf(stderr, "ssehub token: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "ssehub token: bad value for %s: %s\n", a, v);
            return 2;
        }
    }
    if (s->draft == 7 && (s->n_publish || s->n_subscribe)) {
        for (size_t i = 0; i < s->n_publish; i++)
            if (ta.publish[i].url_pattern) {
                fprintf(stderr, "ssehub token: --publish-pattern needs --draft 08\n");
                return 2;
            }
        for (size_t i = 0; i < s->n_subscribe; i++)
            if (ta.subscribe[i].url_pattern) {
                fprintf(stderr, "ssehub token: --subscribe-pattern needs --draft 08\n");
                return 2;
            }
    }
    if (ta.key_file) {
        size_t len;
        key_buf = sse_cli_read_file(ta.key_file, TOKEN_MAX_KEY, &len);
        if (!key_buf) {
            fprintf(stderr, "ssehub token: %s: %s\n", ta.key_file, strerror(errno));
            return 1;
        }
        /* An HMAC secret in a file usually ends with a newline that is not part of it. */
        if ((!s->alg || s->alg[0] == 'H') && len && key_buf[len - 1] == '\n')
            key_buf[--len] = '\0';
        s->key = key_buf;
    }
    char *tok = NULL;
    const char *err = NULL;
    int rc = sse_cli_token_mint(s, (long long)time(NULL), &tok, &err);
    free(key_buf);
    if (rc) {
        fprintf(stderr, "ssehub token: %s\n", err);
        return 1;
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}
