#ifndef CSHIM_UTIL_H
#define CSHIM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct shim_error_s;

/* Allocation never fails at call sites: OOM aborts (crun/tmux style). */
void xalloc_failed (void) __attribute__ ((noreturn));
void *xmalloc (size_t n);
void *xcalloc (size_t nmemb, size_t n);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
char *xvasprintf (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

/* Scope-bound cleanup. Ownership leaves a scope through steal_ptr()/steal_fd(). */
void cleanup_freep (void *p);
void cleanup_closep (int *fd);
void cleanup_filep (FILE **f);
void cleanup_strvp (char ***v);
#define cleanup_free __attribute__ ((cleanup (cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (cleanup_closep)))
#define cleanup_file __attribute__ ((cleanup (cleanup_filep)))
#define cleanup_strv __attribute__ ((cleanup (cleanup_strvp)))

static inline void *
steal_ptr_impl (void **p)
{
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_ptr(pp) steal_ptr_impl ((void **) (pp))

static inline int
steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define UNLIKELY(x) __builtin_expect (!!(x), 0)
#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

/* NULL-terminated string vectors (argv, envp). */
size_t strv_len (char *const *v);
void strv_free (char **v);
/* Appends a copy of s; *v may be NULL. */
void strv_push (char ***v, const char *s);
void strv_pushf (char ***v, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Files. read_file() reads at most max bytes (NUL-terminated); errors carry errno. */
int read_file (const char *path, size_t max, char **out, size_t *len, struct shim_error_s **err);
int read_file_at (int dirfd, const char *path, size_t max, char **out, size_t *len,
                  struct shim_error_s **err);
/* Writes via a temp file + rename so readers never see a partial file: the file is the old one
 * or the new one, whole. No fsync, and no variant with one: the loop's callers (cshim.json at
 * Create, criu-dump.log at checkpoint, the profile cache) must not wait on a disk, and no caller
 * needs its file to survive a machine crash. They all write runtime state on tmpfs (the bundle
 * in containerd's state directory, /run/containerd by default; /run/cshim), which a crash
 * takes along with the shims it describes. That holds for the CLI's `start` too (the bundle's
 * address and start options): after a reboot containerd finds no shim to reconnect to, and
 * `delete` works from the defaults when cshim.json is missing. */
int write_file_atomic (const char *path, const void *data, size_t len, mode_t mode,
                       struct shim_error_s **err);
int write_all (int fd, const void *data, size_t len);
/* Closes *fd if open and marks it closed (-1). */
void close_fd (int *fd);
/* Closes each open fd of the array. */
void close_fds (const int *fds, size_t n);
int set_nonblock (int fd, bool on);
int set_cloexec (int fd, bool on);
/* mkdir -p with the given mode. */
int mkdir_p (const char *path, mode_t mode);

/* Time. */
struct timespec now_realtime (void);
uint64_t now_monotonic_ms (void);
/* A libevent timeout of ms milliseconds. */
static inline struct timeval
timeval_from_ms (unsigned ms)
{
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  return tv;
}
/* RFC 3339 with nanoseconds, UTC, into buf (>= 40 bytes). */
void format_rfc3339 (const struct timespec *ts, char *buf, size_t size);

/* Exit code as containerd reports it: 128+signal for a signalled process. */
int wait_status_to_exit_code (int status);

#endif
