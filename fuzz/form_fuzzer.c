/*
 * form_fuzzer.c: sse_form_next over arbitrary bytes. Every pair must come out no longer than
 * its input, the cursor must move forward and stay inside the input, and the loop must end.
 */
#include "fuzz_common.h"

#include <sse/server.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *end = in + size, *cur = in;
    sse_buf name, value;
    sse_buf_init(&name, 0);
    sse_buf_init(&value, size > 8 ? size / 2 : 0); /* sometimes a cap smaller than a value */
    int rc;
    size_t pairs = 0;
    while ((rc = sse_form_next(&cur, end, &name, &value)) == 1) {
        REQUIRE(cur > in && cur <= end);
        REQUIRE(name.len + value.len <= size);
        REQUIRE(strlen(name.data) <= name.len && strlen(value.data) <= value.len);
        REQUIRE(++pairs <= size);
    }
    REQUIRE(rc == 0 || rc == SSE_EINVAL || rc == SSE_ELIMIT || rc == SSE_ENOMEM);
    REQUIRE(cur >= in && cur <= end);
    sse_buf_free(&name);
    sse_buf_free(&value);
    return 0;
}
