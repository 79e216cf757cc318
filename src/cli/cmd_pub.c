/*
 * cmd_pub.c: `ssehub pub`: publish one update to a Mercure hub from the shell (libcurl, one
 * form-encoded POST), print the id the hub answers with. The token comes from --token, the
 * environment, or is minted on the spot from a key with publish grants for exactly the topics
 * given (cli_token.h).
 * Exit status: 0 published, 1 the hub refused (HTTP 4xx/5xx other than 401/403), 2 usage,
 * 3 transport error (connect, timeout, I/O), 4 not authorized (401/403).
 */
#include "cli_commands.h"
#include "cli_help.h"
#include "cli_token.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char sse_cli_pub_summary[] = "publish an update to a Mercure hub";

#define PUB_MAX_TOPICS 64
#define PUB_MAX_DATA ((size_t)16 << 20)
#define PUB_MAX_RESPONSE 65536

/* The help table: --help, the man page ssehub-pub(1) and the completion (cli_help.h). */
static const struct cli_option pub_options[] = {
    {"--hub", "URL", "the hub (default $SSEHUB_HUB or " SSE_CLI_DEFAULT_HUB ")"},
    {"--topic", "T", "the update's topic (repeatable; draft-08 hubs accept one)"},
    {"--data", "TEXT", "the data; --data @FILE reads FILE; '-' or absent: stdin"},
    {"--id", "ID", "the update's id (default: the hub generates one)"},
    {"--type", "TYPE", "the SSE event type"},
    {"--private", NULL, "only subscribers authorized for the topic receive it"},
    {"--retry", "MS", "the SSE retry field"},
    {"--token", "JWT",
     "publisher token; default $MERCURE_PUBLISHER_TOKEN, then\n"
     "$SSEHUB_TOKEN, else one is minted from the key below"},
    {"--key", "KEY",
     "mint a token (publish grants for the topics, 60 s) with this\n"
     "key; default $MERCURE_PUBLISHER_JWT_KEY"},
    {"--key-file", "FILE", "read the key from FILE (PEM private key for RS/ES)"},
    {"--alg", "ALG",
     "algorithm of the minted token (default HS256 or\n"
     "$MERCURE_PUBLISHER_JWT_ALG)"},
    {"--draft", "07|08", "generation of the minted token (default 07)"},
    {"--aud", "AUD", "draft-08 audience of the minted token (default: the hub URL)"},
    {"--timeout", "S", "give up after S seconds (default 10)"},
    {"-h, --help", NULL, "this text"},
    {NULL, NULL, NULL},
};

static const struct cli_help pub_help = {
    "pub",
    sse_cli_pub_summary,
    "[--hub URL] --topic T [--topic T2]... [--data TEXT | --data @FILE]\n"
    "[--id ID] [--type TYPE] [--private] [--retry MS]\n"
    "[--token JWT | --key KEY | --key-file FILE] [--alg ALG]\n"
    "[--draft 07|08] [--aud AUD] [--timeout SECONDS]",
    "Publishes one update (POST, application/x-www-form-urlencoded) and prints the id\n"
    "the hub returns. Without --data the data is read from stdin.",
    pub_options,
    NULL,
    "0 published (the id is printed), 1 the hub refused the update,\n"
    "2 usage error (options, unreadable file, unusable key), 3 transport error (connection,\n"
    "timeout), 4 not authorized (401/403)",
};

const struct cli_help *sse_cli_pub_help(void)
{
    return &pub_help;
}

static void pub_usage(FILE *out)
{
    cli_help_print(out, &pub_help);
}

struct pub_buf {
    char *p;
    size_t n, cap;
    int overflow;
};

static int buf_add(struct pub_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* Append "&name=value" (form-encoded) to the body. */
static int form_add(CURL *c, struct pub_buf *b, const char *name, const char *v, size_t len)
{
    char *enc = curl_easy_escape(c, v, (int)len);
    if (!enc)
        return -1;
    int rc = (b->n ? buf_add(b, "&", 1) : 0) || buf_add(b, name, strlen(name)) ||
             buf_add(b, "=", 1) || buf_add(b, enc, strlen(enc));
    curl_free(enc);
    return rc ? -1 : 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct pub_buf *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > PUB_MAX_RESPONSE) {
        b->overflow = 1;
        return n; /* keep reading, drop the excess */
    }
    return buf_add(b, ptr, n) ? 0 : n;
}

static char *read_stream(FILE *f, size_t *len)
{
    struct pub_buf b = {0};
    char chunk[65536];
    size_t r;
    if (buf_add(&b, "", 0))
        return NULL;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.n + r > PUB_MAX_DATA || buf_add(&b, chunk, r)) {
            free(b.p);
            errno = EFBIG;
            return NULL;
        }
    }
    if (ferror(f)) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return 1;
    return 0;
}

struct pub_args {
    const char *hub, *topics[PUB_MAX_TOPICS], *data, *id, *type, *retry, *token, *key;
    const char *key_file, *alg, *aud;
    size_t n_topics;
    int priv, draft;
    long timeout;
};

static int pub_parse(struct pub_args *a, int argc, char **argv)
{
    int i = 1;
    while (i < argc) {
        const char *o = argv[i++];
        const char *v = i < argc ? argv[i] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            pub_usage(stdout);
            return 1;
        }
        if (!strcmp(o, "--private")) {
            a->priv = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ssehub pub: unknown option or missing value: %s\n", o);
            return 2;
        }
        i++; /* the value */
        if (!strcmp(o, "--hub"))
            a->hub = v;
        else if (!strcmp(o, "--topic")) {
            if (a->n_topics == PUB_MAX_TOPICS) {
                fprintf(stderr, "ssehub pub: at most %d topics\n", PUB_MAX_TOPICS);
                return 2;
            }
            a->topics[a->n_topics++] = v;
        } else if (!strcmp(o, "--data"))
            a->data = v;
        else if (!strcmp(o, "--id"))
            a->id = v;
        else if (!strcmp(o, "--type"))
            a->type = v;
        else if (!strcmp(o, "--retry")) {
            if (!*v || strspn(v, "0123456789") != strlen(v)) {
                fprintf(stderr, "ssehub pub: --retry needs a number of milliseconds\n");
                return 2;
            }
            a->retry = v;
        } else if (!strcmp(o, "--token"))
            a->token = v;
        else if (!strcmp(o, "--key"))
            a->key = v;
        else if (!strcmp(o, "--key-file"))
            a->key_file = v;
        else if (!strcmp(o, "--alg"))
            a->alg = v;
        else if (!strcmp(o, "--aud"))
            a->aud = v;
        else if (!strcmp(o, "--draft")) {
            if (!strcmp(v, "07") || !strcmp(v, "7"))
                a->draft = 7;
            else if (!strcmp(v, "08") || !strcmp(v, "8"))
                a->draft = 8;
            else {
                fprintf(stderr, "ssehub pub: --draft is 07 or 08\n");
                return 2;
            }
        } else if (!strcmp(o, "--timeout")) {
            char *end;
            a->timeout = strtol(v, &end, 10);
            if (*end || a->timeout <= 0 || a->timeout > 86400) {
                fprintf(stderr, "ssehub pub: --timeout needs seconds (1..86400)\n");
                return 2;
            }
        } else {
            fprintf(stderr, "ssehub pub: unknown option %s (see --help)\n", o);
            return 2;
        }
    }
    if (!a->n_topics) {
        fprintf(stderr, "ssehub pub: --topic is required\n");
        return 2;
    }
    if ((a->id && has_ctl(a->id)) || (a->type && has_ctl(a->type))) {
        fprintf(stderr, "ssehub pub: --id and --type cannot hold CR or LF\n");
        return 2;
    }
    return 0;
}

/* The bearer token to send (malloc'd), NULL for none; -1 in *rc on failure. */
static char *pub_token(const struct pub_args *a, int *rc)
{
    const char *t = a->token;
    if (!t)
        t = getenv("MERCURE_PUBLISHER_TOKEN");
    if (!t)
        t = getenv("SSEHUB_TOKEN");
    if (t && *t)
        return strdup(t);
    char *key_buf = NULL;
    const char *key = a->key ? a->key : getenv("MERCURE_PUBLISHER_JWT_KEY");
    const char *alg = a->alg ? a->alg : getenv("MERCURE_PUBLISHER_JWT_ALG");
    if (a->key_file) {
        size_t len;
        key_buf = sse_cli_read_file(a->key_file, 1 << 20, &len);
        if (!key_buf) {
            fprintf(stderr, "ssehub pub: %s: %s\n", a->key_file, strerror(errno));
            *rc = -1;
            return NULL;
        }
        if ((!alg || alg[0] == 'H') && len && key_buf[len - 1] == '\n')
            key_buf[len - 1] = '\0';
        key = key_buf;
    }
    if (!key || !*key)
        return NULL; /* anonymous: the hub decides */
    struct sse_cli_grant grants[PUB_MAX_TOPICS];
    for (size_t i = 0; i < a->n_topics; i++)
        grants[i] = (struct sse_cli_grant){a->topics[i], 0};
    struct sse_cli_token_spec spec = {0};
    spec.draft = a->draft;
    spec.publish = grants;
    spec.n_publish = a->n_topics;
    spec.exp_seconds = 60;
    spec.alg = alg;
    spec.key = key;
    spec.aud = a->aud ? a->aud : a->hub;
    char *tok = NULL;
    const char *err = NULL;
    if (sse_cli_token_mint(&spec, (long long)time(NULL), &tok, &err)) {
        fprintf(stderr, "ssehub pub: cannot mint a token: %s\n", err);
        *rc = -1;
    }
    free(key_buf);
    return tok;
}

int sse_cli_pub(int argc, char **argv)
{
    struct pub_args a = {0};
    struct pub_buf body = {0}, resp = {0};
    char *data = NULL, *token = NULL, *auth = NULL;
    struct curl_slist *hdrs = NULL;
    CURL *c = NULL;
    size_t data_len = 0;
    int rc = pub_parse(&a, argc, argv);
    int status = 2, global = 0;
    if (rc)
        return rc == 1 ? 0 : 2;
    a.draft = a.draft ? a.draft : 7;
    a.timeout = a.timeout ? a.timeout : 10;
    if (!a.hub)
        a.hub = getenv("SSEHUB_HUB");
    if (!a.hub || !*a.hub)
        a.hub = SSE_CLI_DEFAULT_HUB;

    if (!a.data || !strcmp(a.data, "-")) {
        data = read_stream(stdin, &data_len);
        if (!data) {
            fprintf(stderr, "ssehub pub: reading stdin: %s\n", strerror(errno));
            return 2;
        }
    } else if (a.data[0] == '@') {
        data = sse_cli_read_file(a.data + 1, PUB_MAX_DATA, &data_len);
        if (!data) {
            fprintf(stderr, "ssehub pub: %s: %s\n", a.data + 1, strerror(errno));
            return 2;
        }
    } else {
        data_len = strlen(a.data);
        data = strdup(a.data);
    }
    int trc = 0;
    token = pub_token(&a, &trc);
    if (trc || !data)
        goto out; /* status 2 */

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ssehub pub: cannot initialize libcurl\n");
        status = 3;
        goto out;
    }
    global = 1;
    if (!(c = curl_easy_init())) {
        fprintf(stderr, "ssehub pub: cannot initialize libcurl\n");
        status = 3;
        goto out;
    }
    int frc = 0;
    for (size_t i = 0; i < a.n_topics && !frc; i++)
        frc = form_add(c, &body, "topic", a.topics[i], strlen(a.topics[i]));
    if (!frc)
        frc = form_add(c, &body, "data", data, data_len);
    if (!frc && a.id)
        frc = form_add(c, &body, "id", a.id, strlen(a.id));
    if (!frc && a.type)
        frc = form_add(c, &body, "type", a.type, strlen(a.type));
    if (!frc && a.retry)
        frc = form_add(c, &body, "retry", a.retry, strlen(a.retry));
    if (!frc && a.priv)
        frc = form_add(c, &body, "private", "on", 2);
    if (frc) {
        fprintf(stderr, "ssehub pub: out of memory\n");
        status = 3;
        goto out;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
    if (token) {
        size_t n = strlen(token) + 32;
        auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Authorization: Bearer %s", token);
            hdrs = curl_slist_append(hdrs, auth);
        }
    }
    curl_easy_setopt(c, CURLOPT_URL, a.hub);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.p ? body.p : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.n);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, a.timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ssehub-pub");
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "ssehub pub: %s: %s\n", a.hub, curl_easy_strerror(cc));
        status = 3;
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    const char *text = resp.p ? resp.p : "";
    size_t tl = strlen(text);
    while (tl && (text[tl - 1] == '\n' || text[tl - 1] == '\r'))
        tl--;
    if (code >= 200 && code < 300) {
        printf("%.*s\n", (int)tl, text);
        status = 0;
    } else {
        fprintf(stderr, "ssehub pub: the hub answered %ld%s%.*s\n", code, tl ? ": " : "",
                (int)(tl > 500 ? 500 : tl), text);
        status = code == 401 || code == 403 ? 4 : code >= 400 ? 1 : 3;
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (global)
        curl_global_cleanup();
    free(auth);
    free(token);
    free(data);
    free(body.p);
    free(resp.p);
    return status;
}
