/*
 * loadgen_probe.c: the server under test seen from /proc (Linux): the memory of its processes
 * (Rss and Pss from smaps_rollup), their CPU time (utime + stime from stat) and their child
 * processes (for `ssehub serve --workers`). Read-only; nothing here signals or waits.
 */
#include "loadgen/loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sse__loadgen_mem sse__loadgen_read_mem(const int *pids, int npids)
{
    struct sse__loadgen_mem m = {0, 0};
    if (!npids) {
        m.rss_kib = m.pss_kib = -1;
        return m;
    }
    for (int i = 0; i < npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            m.rss_kib = m.pss_kib = -1;
            return m;
        }
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "Rss:", 4))
                m.rss_kib += strtoll(line + 4, NULL, 10);
            else if (!strncmp(line, "Pss:", 4))
                m.pss_kib += strtoll(line + 4, NULL, 10);
        }
        fclose(f);
    }
    return m;
}

double sse__loadgen_read_cpu(const int *pids, int npids)
{
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    if (!npids)
        return -1;
    for (int i = 0; i < npids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p)
            return -1;
        /* fields after ')': state(3) ... utime(14) stime(15) */
        unsigned long long ut = 0, st = 0;
        int field = 2;
        for (char *q = p + 1; *q && field < 15; q++) {
            if (*q == ' ') {
                field++;
                if (field == 14)
                    ut = strtoull(q + 1, NULL, 10);
                else if (field == 15)
                    st = strtoull(q + 1, NULL, 10);
            }
        }
        total += (double)(ut + st) / (double)hz;
    }
    return total;
}

int sse__loadgen_add_children(int *pids, int n)
{
    for (int i = 0; i < n && n < SSE__LOADGEN_MAX_PIDS; i++) {
        char path[96], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pids[i], pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (char *p = buf; *p && n < SSE__LOADGEN_MAX_PIDS;) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            pids[n++] = (int)pid;
            p = end;
        }
    }
    return n;
}
