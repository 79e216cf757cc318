/*
 * access_bench.c: cost of the hub's access checks (src/hub/selector.c, src/hub/auth.c).
 *
 * Selectors: ns per match of compiled URI templates / URL patterns against topics, beside the
 * same selector written as a POSIX extended regular expression run by glibc's regexec (what a
 * "template -> regex" hub does) in the same run. Tokens: ns per verification, uncached and
 * cached, for HS256 / RS256 / ES256. Prints one line per case; numbers go to
 * docs/performance/access.md. Usage: bench_access_bench [SECONDS_PER_CASE] (default 0.3).
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "hub/auth.h"
#include "hub/jws.h"
#include "hub/selector.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    return (double)sse__mono_ns() / 1e9;
}

static double budget = 0.3;
static volatile int sink;

struct sel_case {
    const char *name;
    int kind;
    const char *pattern;
    const char *regex; /* the same set of topics as a POSIX ERE */
    const char *topic;
};

static double bench_sel(const struct sse__selector *s, const char *topic, size_t len)
{
    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 1000; i++)
            sink += sse__selector_match(s, topic, len);
        n += 1000;
    } while ((t = now_s()) - t0 < budget);
    return (t - t0) / (double)n * 1e9;
}

static double bench_re(const regex_t *re, const char *topic)
{
    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 100; i++)
            sink += regexec(re, topic, 0, NULL, 0) == 0;
        n += 100;
    } while ((t = now_s()) - t0 < budget);
    return (t - t0) / (double)n * 1e9;
}

static void selectors(void)
{
    static char near_miss[1001];
    memset(near_miss, 'a', 1000);
    static char pat32[256], re32[1024];
    size_t p = 0, r = 0;
    r += (size_t)snprintf(re32 + r, sizeof(re32) - r, "^");
    for (int i = 0; i < 32; i++) {
        p += (size_t)snprintf(pat32 + p, sizeof(pat32) - p, "{v%d}", i);
        r += (size_t)snprintf(re32 + r, sizeof(re32) - r, "[A-Za-z0-9._~%%,-]*");
    }
    snprintf(pat32 + p, sizeof(pat32) - p, "!");
    snprintf(re32 + r, sizeof(re32) - r, "!$");
    const struct sel_case cases[] = {
        {"template {id}, match", SSE__SEL_AUTO, "https://example.com/books/{id}",
         "^https://example\\.com/books/[A-Za-z0-9._~%,-]*$", "https://example.com/books/12345"},
        {"template {id}, miss", SSE__SEL_AUTO, "https://example.com/books/{id}",
         "^https://example\\.com/books/[A-Za-z0-9._~%,-]*$", "https://example.com/authors/12"},
        {"template {/a,b}{?q,p}", SSE__SEL_AUTO, "/api{/ver,res}{?q,page}",
         "^/api(/[A-Za-z0-9._~%,-]*(/"
         "[A-Za-z0-9._~%,-]*)?)?(\\?q=[A-Za-z0-9._~%,-]*(&page=[A-Za-z0-9._~%,-]*)?|\\?page=[A-Za-"
         "z0-9._~%,-]*)?$",
         "/api/v1/books?q=cat&page=2"},
        {"urlpattern :id", SSE__SEL_URLPATTERN, "https://example.com/books/:id",
         "^https://example\\.com/books/[^/?#]+$", "https://example.com/books/12345"},
        {"urlpattern /*", SSE__SEL_URLPATTERN, "https://example.com/books/*",
         "^https://example\\.com/books/[^?#]*$", "https://example.com/books/a/b/c/d"},
        {"exact", SSE__SEL_EXACT, "https://example.com/books/12345",
         "^https://example\\.com/books/12345$", "https://example.com/books/12345"},
        {"32 vars, 1000 B near miss", SSE__SEL_AUTO, pat32, re32, near_miss},
    };
    printf("%-28s %12s %14s %8s\n", "selector", "ssehub ns", "glibc regex ns", "ratio");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sse__selector *s;
        regex_t re;
        if (sse__selector_compile(&s, cases[i].pattern, strlen(cases[i].pattern), cases[i].kind,
                                  NULL) ||
            regcomp(&re, cases[i].regex, REG_EXTENDED | REG_NOSUB)) {
            printf("%-28s compile failed\n", cases[i].name);
            continue;
        }
        size_t len = strlen(cases[i].topic);
        int m1 = sse__selector_match(s, cases[i].topic, len);
        int m2 = regexec(&re, cases[i].topic, 0, NULL, 0) == 0;
        double a = bench_sel(s, cases[i].topic, len), b = bench_re(&re, cases[i].topic);
        printf("%-28s %12.1f %14.1f %7.1fx%s\n", cases[i].name, a, b, b / a,
               m1 == m2 ? "" : "  (answers differ!)");
        sse__selector_unref(s);
        regfree(&re);
    }
}

/* ---- tokens ---------------------------------------------------------------------------- */

/* An HS256 / RS256 / ES256 token over claims, signed by src/hub/jws.c; key: secret or PEM. */
static char *sign(const char *alg, const char *key, const char *claims)
{
    static char buf[8192];
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    if (sse__jws_encode(buf, sizeof(buf), NULL, alg, key, hdr, strlen(hdr), claims, strlen(claims),
                        NULL))
        return NULL;
    return strdup(buf);
}

static double bench_verify(struct sse__auth *a, char *const *toks, int n_toks)
{
    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 10; i++) {
            const struct sse__grants *g;
            const char *tok = toks[(n + i) % n_toks];
            if (sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, tok, strlen(tok), 1700000000, &g, NULL) ==
                0)
                sse__grants_release(g);
        }
        n += 10;
    } while ((t = now_s()) - t0 < budget);
    return (t - t0) / (double)n * 1e9;
}

static void tokens(void)
{
    const char *claims = "{\"mercure\":{\"publish\":[\"*\"],\"subscribe\":[\"https://example.com/"
                         "books/{id}\",\"https://example.com/users/1\"],\"payload\":{\"u\":1}},"
                         "\"exp\":1800000000}";
    const char *claims2 = "{\"mercure\":{\"publish\":[\"*\"],\"subscribe\":[\"https://example.com/"
                          "books/{id}\",\"https://example.com/users/2\"],\"payload\":{\"u\":2}},"
                          "\"exp\":1800000000}";
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
    struct {
        const char *alg;
        EVP_PKEY *pk;
    } algs[] = {{"HS256", NULL}, {"RS256", rsa}, {"ES256", ec}};
    const char *secret = "!ChangeThisMercureHubJWTSecretKey!";
    printf("\n%-8s %16s %16s\n", "token", "uncached ns", "cached ns");
    for (int i = 0; i < 3; i++) {
        char *pem = algs[i].pk ? sse__jws_pem(algs[i].pk, 0) : NULL;
        char *priv = algs[i].pk ? sse__jws_pem(algs[i].pk, 1) : NULL;
        char *toks[2] = {sign(algs[i].alg, priv ? priv : secret, claims),
                         sign(algs[i].alg, priv ? priv : secret, claims2)};
        if (!toks[0] || !toks[1] || (algs[i].pk && (!pem || !priv))) {
            printf("%-8s signing failed\n", algs[i].alg);
            return;
        }
        struct sse__auth_config cfg = {0};
        cfg.publisher_key = pem ? pem : secret;
        cfg.publisher_alg = algs[i].alg;
        cfg.cache_entries = 1; /* two tokens alternating: every verification misses */
        struct sse__auth *a, *b;
        if (sse__auth_new(&a, &cfg))
            return;
        cfg.cache_entries = 16;
        if (sse__auth_new(&b, &cfg))
            return;
        double unc = bench_verify(a, toks, 2), cac = bench_verify(b, toks, 2);
        printf("%-8s %16.0f %16.0f\n", algs[i].alg, unc, cac);
        sse__auth_free(a);
        sse__auth_free(b);
        free(toks[0]);
        free(toks[1]);
        sse__free(pem);
        sse__free(priv);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget = atof(argv[1]);
    selectors();
    tokens();
    return 0;
}
