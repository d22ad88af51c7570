#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *const code_names[] = {
  [SHIM_OK] = "ok",
  [SHIM_CANCELED] = "canceled",
  [SHIM_UNKNOWN] = "unknown",
  [SHIM_INVALID_ARGUMENT] = "invalid argument",
  [SHIM_DEADLINE_EXCEEDED] = "deadline exceeded",
  [SHIM_NOT_FOUND] = "not found",
  [SHIM_ALREADY_EXISTS] = "already exists",
  [SHIM_PERMISSION_DENIED] = "permission denied",
  [SHIM_RESOURCE_EXHAUSTED] = "resource exhausted",
  [SHIM_FAILED_PRECONDITION] = "failed precondition",
  [SHIM_ABORTED] = "aborted",
  [SHIM_OUT_OF_RANGE] = "out of range",
  [SHIM_UNIMPLEMENTED] = "not implemented",
  [SHIM_INTERNAL] = "internal",
  [SHIM_UNAVAILABLE] = "unavailable",
};

const char *
shim_code_class (int code)
{
  switch (code)
    {
    case SHIM_INVALID_ARGUMENT:
    case SHIM_NOT_FOUND:
    case SHIM_ALREADY_EXISTS:
    case SHIM_FAILED_PRECONDITION:
    case SHIM_UNAVAILABLE:
    case SHIM_UNIMPLEMENTED:
      return code_names[code];
    default:
      return NULL;
    }
}

int
shim_error_make (shim_error_t *err, int errno_, int code, const char *fmt, ...)
{
  if (err)
    {
      va_list ap;
      va_start (ap, fmt);
      char *msg = xvasprintf (fmt, ap);
      va_end (ap);
      if (errno_)
        {
          char *full = xasprintf ("%s: %s", msg, strerror (errno_));
          free (msg);
          msg = full;
        }
      shim_error_release (err);
      *err = xmalloc (sizeof **err);
      (*err)->errno_ = errno_;
      (*err)->code = code;
      (*err)->msg = msg;
    }
  return -1 - (errno_ > 0 ? errno_ : 0);
}

int
shim_error_wrap (shim_error_t *err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start (ap, fmt);
  cleanup_free char *ctx = xvasprintf (fmt, ap);
  va_end (ap);
  char *msg = xasprintf ("%s: %s", ctx, (*err)->msg);
  free ((*err)->msg);
  (*err)->msg = msg;
  return -1 - ((*err)->errno_ > 0 ? (*err)->errno_ : 0);
}

void
shim_error_release (shim_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  free ((*err)->msg);
  free (*err);
  *err = NULL;
}
