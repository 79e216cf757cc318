/*
 * check.h: the assertion macros every test binary uses (header-only).
 *
 * A failed check prints file:line, the expression and both operands, then returns from the test
 * function with failure. A test binary is a list of `static int test_x(void)` functions run by
 * CHECK_MAIN, which prints "N passed, N failed" (and ", K skipped" when some were) as its last
 * line. A test that cannot run here returns CHECK_SKIP(why, required): it is reported as skipped,
 * never as passed; with CI=true in the environment a `required` one fails instead (a tool that
 * CI installs must be there). When tests were skipped and none failed, the binary exits 77,
 * which CTest (SKIP_RETURN_CODE 77) shows as "Skipped".
 */
#ifndef SSE_TEST_CHECK_H
#define SSE_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_FAIL_(fmt, ...)                                                                      \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);               \
        return 1;                                                                                  \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK_FAIL_("%s", #cond);                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            CHECK_FAIL_("%s == %s (%lld != %lld)", #a, #b, a_, b_);                                \
    } while (0)

#define CHECK_EQ_UINT(a, b)                                                                        \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (a_ != b_)                                                                              \
            CHECK_FAIL_("%s == %s (%llu != %llu)", #a, #b, a_, b_);                                \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            CHECK_FAIL_("%s == %s (\"%s\" != \"%s\")", #a, #b, a_ ? a_ : "(null)",                 \
                        b_ ? b_ : "(null)");                                                       \
    } while (0)

/* Compare byte ranges (may hold NUL); prints them with escapes on failure. */
#define CHECK_EQ_MEM(a, alen, b, blen)                                                             \
    do {                                                                                           \
        const void *a_ = (a), *b_ = (b);                                                           \
        size_t al_ = (alen), bl_ = (blen);                                                         \
        if (al_ != bl_ || (al_ && memcmp(a_, b_, al_) != 0)) {                                     \
            fprintf(stderr, "  FAIL %s:%d: %s == %s\n    got:  ", __FILE__, __LINE__, #a, #b);     \
            check_print_escaped_(a_, al_);                                                         \
            fprintf(stderr, "\n    want: ");                                                       \
            check_print_escaped_(b_, bl_);                                                         \
            fprintf(stderr, "\n");                                                                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static inline void check_print_escaped_(const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', stderr);
    for (size_t i = 0; i < n && i < 400; i++) {
        if (s[i] == '\n')
            fputs("\\n", stderr);
        else if (s[i] == '\r')
            fputs("\\r", stderr);
        else if (s[i] < 0x20 || s[i] >= 0x7f)
            fprintf(stderr, "\\x%02x", s[i]);
        else
            fputc(s[i], stderr);
    }
    fputs(n > 400 ? "\"..." : "\"", stderr);
}

#define CHECK_SKIPPED 77 /* a test function's return value: not run here */

/* Report a skipped test (why: a sentence); returns CHECK_SKIPPED, or 1 (failure) when required is
   set and CI=true (what CI must provide is never skipped there). */
static inline int check_skip(const char *why, int required)
{
    const char *ci = getenv("CI");
    if (required && ci && strcmp(ci, "true") == 0) {
        fprintf(stderr, "  FAIL (CI=true, so no skip): %s\n", why);
        return 1;
    }
    printf("  skip: %s\n", why);
    return CHECK_SKIPPED;
}
#define CHECK_SKIP(why, required) return check_skip(why, required)

struct check_test {
    const char *name;
    int (*fn)(void);
};
#define CHECK_TEST(fn)                                                                             \
    {                                                                                              \
#fn, fn                                                                                    \
    }

/* Runs every test (or those whose name contains argv[1], or when argv[1] is "!text" those whose
   name does not contain text); exit status 1 if any failed, else 77 if any was skipped. */
#define CHECK_MAIN(...)                                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const struct check_test tests_[] = {__VA_ARGS__};                                   \
        int passed = 0, failed = 0, skipped = 0;                                                   \
        int not_ = argc > 1 && argv[1][0] == '!';                                                  \
        for (size_t i = 0; i < sizeof(tests_) / sizeof(tests_[0]); i++) {                          \
            if (argc > 1 && (strstr(tests_[i].name, argv[1] + not_) != NULL) == not_)              \
                continue;                                                                          \
            int rc = tests_[i].fn();                                                               \
            printf("%s %s\n",                                                                      \
                   rc == CHECK_SKIPPED ? "skip"                                                    \
                   : rc                ? "FAIL"                                                    \
                                       : "ok  ",                                                                  \
                   tests_[i].name);                                                                \
            fflush(stdout);                                                                        \
            if (rc == CHECK_SKIPPED)                                                               \
                skipped++;                                                                         \
            else if (rc)                                                                           \
                failed++;                                                                          \
            else                                                                                   \
                passed++;                                                                          \
        }                                                                                          \
        if (skipped)                                                                               \
            printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);                 \
        else                                                                                       \
            printf("%d passed, %d failed\n", passed, failed);                                      \
        return failed ? 1 : skipped ? CHECK_SKIPPED : 0;                                           \
    }

#endif
