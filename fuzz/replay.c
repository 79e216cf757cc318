/*
 * replay.c: runs a fuzz target over files and directories of inputs, without libFuzzer.
 * Used by CTest on any compiler, so the committed corpora and regression crashers are
 * re-checked (under sanitizers in the ASan build) on every test run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("note: %s is missing\n", path); /* main() decides what that means */
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d)
        return 1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        rc |= run_path(p, count);
    }
    closedir(d);
    return rc;
}

/*
 * Usage: replay CORPUS [MORE...]. The first path is the target's committed corpus: when it is
 * missing the run is a skip (exit 77, which CTest reports as skipped, never as passed), and with
 * CI=true a failure. Later paths (regression/<name>/) may be missing.
 */
int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    struct stat st;
    if (argc > 1 && stat(argv[1], &st) != 0) {
        const char *ci = getenv("CI");
        printf("%s: the corpus %s is missing\n", ci && !strcmp(ci, "true") ? "FAIL" : "skip",
               argv[1]);
        return ci && !strcmp(ci, "true") ? 1 : 77;
    }
    /* The empty input, always. */
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    for (int i = 1; i < argc; i++)
        rc |= run_path(argv[i], &count);
    printf("replayed %d inputs\n", count);
    return rc;
}
