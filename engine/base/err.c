/* err.c: the error record of the C core (see mh/err.h). Layer: engine/base. */
#include <stdarg.h>
#include <stdio.h>
#include "mh/err.h"

int mh_err_set(mh_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *mh_status_name(int code)
{
    static const char *names[] = {
        "OK", "EINVAL", "ENOMEM", "EIO", "ESHAPE", "EFORMAT", "ERANGE", "ETYPE", "EINTR",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "EUNKNOWN";
    return names[code];
}
