#!/usr/bin/env bash
# check-install: `cmake --install` into a temporary prefix gives a usable libsse: the headers,
# the shared library, a relocatable libsse.pc and the ssehub binary; a program built against
# the installed copy with pkg-config parses a stream.
set -euo pipefail
bin=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$bin" --prefix "$prefix" >/dev/null
for f in include/sse/sse.h include/sse/format.h include/sse/server.h include/sse/client.h \
         include/sse/hub.h include/sse/version.h lib/libsse.a lib/libsse.so \
         lib/pkgconfig/libsse.pc bin/ssehub; do
  [[ -e "$prefix/$f" ]] || { echo "missing $f"; echo "0 passed, 1 failed"; exit 1; }
done
cat > "$prefix/t.c" <<'C'
#include <sse/sse.h>
#include <stdio.h>
#include <string.h>
static int n;
static int on_event(void *ud, const sse_parsed_event *ev)
{
    (void)ud;
    n += !strcmp(ev->type, "tick") && !strcmp(ev->data, "a\nb") && !strcmp(ev->id, "7");
    return 0;
}
int main(void)
{
    sse_parser *p;
    sse_parser_callbacks cb = {on_event, NULL, NULL};
    const char s[] = "id: 7\nevent: tick\ndata: a\ndata: b\n\n";
    if (sse_parser_new(&p, NULL, &cb, NULL) || sse_parser_feed(p, s, sizeof(s) - 1))
        return 1;
    sse_parser_free(p);
    printf("libsse %s: %d event\n", SSE_VERSION_STRING, n);
    return n == 1 ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc "$prefix/t.c" -o "$prefix/t" $(pkg-config --cflags --libs libsse) -Wl,-rpath,"$prefix/lib"
"$prefix/t"
"$prefix/bin/ssehub" --version
echo "1 passed, 0 failed"
