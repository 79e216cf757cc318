/*
 * error.c: names and descriptions of error codes (ours, and negated errno values).
 */
#include <sse/error.h>
#include <string.h>
#include <uv.h>

static const struct {
    int code;
    const char *name;
    const char *text;
} sse__errors[] = {
    {SSE_OK, "SSE_OK", "success"},
    {SSE_ENOMEM, "SSE_ENOMEM", "out of memory"},
    {SSE_EINVAL, "SSE_EINVAL", "invalid argument"},
    {SSE_ELIMIT, "SSE_ELIMIT", "a configured limit was exceeded"},
    {SSE_ECANCELED, "SSE_ECANCELED", "stopped by a callback"},
    {SSE_ECLOSED, "SSE_ECLOSED", "closed"},
    {SSE_EPROTO, "SSE_EPROTO", "protocol error"},
    {SSE_EIO, "SSE_EIO", "input/output error"},
    {SSE_EAUTH, "SSE_EAUTH", "not authorized"},
    {SSE_ETIMEDOUT, "SSE_ETIMEDOUT", "timed out"},
    {SSE_ENOTFOUND, "SSE_ENOTFOUND", "not found"},
    {SSE_EBUSY, "SSE_EBUSY", "busy, try again later"},
    {SSE_EUNSUPPORTED, "SSE_EUNSUPPORTED", "not supported"},
};

const char *sse_strerror(int code)
{
    for (size_t i = 0; i < sizeof(sse__errors) / sizeof(sse__errors[0]); i++)
        if (sse__errors[i].code == code)
            return sse__errors[i].text;
    if (code < 0 && code > -1000)
        return uv_strerror(code); /* libuv codes are negated errno values on Unix */
    return "unknown error";
}

const char *sse_errname(int code)
{
    for (size_t i = 0; i < sizeof(sse__errors) / sizeof(sse__errors[0]); i++)
        if (sse__errors[i].code == code)
            return sse__errors[i].name;
    if (code < 0 && code > -1000)
        return uv_err_name(code);
    return "SSE_EUNKNOWN";
}
