#ifndef CSHIM_ERROR_H
#define CSHIM_ERROR_H

/* One error convention (crun's, plus a gRPC code): fallible functions take
 * `shim_error_t *err` last and return int < 0 or NULL; on success *err is untouched.
 * An error is consumed exactly once: replied, logged or released. */

/* gRPC status codes as they travel in google.rpc.Status. */
enum shim_code
{
  SHIM_OK = 0,
  SHIM_CANCELED = 1,
  SHIM_UNKNOWN = 2,
  SHIM_INVALID_ARGUMENT = 3,
  SHIM_DEADLINE_EXCEEDED = 4,
  SHIM_NOT_FOUND = 5,
  SHIM_ALREADY_EXISTS = 6,
  SHIM_PERMISSION_DENIED = 7,
  SHIM_RESOURCE_EXHAUSTED = 8,
  SHIM_FAILED_PRECONDITION = 9,
  SHIM_ABORTED = 10,
  SHIM_OUT_OF_RANGE = 11,
  SHIM_UNIMPLEMENTED = 12,
  SHIM_INTERNAL = 13,
  SHIM_UNAVAILABLE = 14,
};

struct shim_error_s
{
  int errno_; /* 0 when not an OS error */
  int code; /* enum shim_code */
  char *msg;
};
typedef struct shim_error_s *shim_error_t;

/* Sets *err (if err is not NULL) and returns -1 - errno_ (always < 0).
 * With errno_ != 0 the message gets ": strerror(errno_)" appended. */
int shim_error_make (shim_error_t *err, int errno_, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
/* Prefixes context: "<fmt>: <old msg>". Returns the same negative value as make. */
int shim_error_wrap (shim_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
void shim_error_release (shim_error_t *err);
/* The errdefs class containerd reads from a code, which the Go shim's messages end with
 * (": not found"); NULL for codes whose errors are plain text there (Unknown and others). */
const char *shim_code_class (int code);

#define cleanup_error __attribute__ ((cleanup (shim_error_release)))

#endif
