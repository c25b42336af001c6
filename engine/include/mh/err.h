/* err.h: status codes and the caller-owned error record of the C core.
 * Layer: engine (pure C11). Every fallible core call returns an int status
 * and fills an optional mh_err; nothing in the core exits or aborts. */
#ifndef MH_ERR_H
#define MH_ERR_H

enum {
    MH_OK = 0,
    MH_EINVAL,   /* bad argument */
    MH_ENOMEM,   /* allocation failed */
    MH_EIO,      /* file or system call failed */
    MH_ESHAPE,   /* shapes do not fit */
    MH_EFORMAT,  /* malformed file or data */
    MH_ERANGE,   /* index out of range */
    MH_ETYPE,    /* unsupported dtype for this operation */
    MH_EINTR,    /* interrupted by the user */
};

typedef struct mh_err {
    int code;
    char msg[512];
} mh_err;

/* Sets err (when non-NULL) to code and a printf-style message; returns code. */
int mh_err_set(mh_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Name of a status code ("EINVAL"...). */
const char *mh_status_name(int code);

#endif
