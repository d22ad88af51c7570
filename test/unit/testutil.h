#ifndef CSHIM_TESTUTIL_H
#define CSHIM_TESTUTIL_H

/* Helpers shared by the unit tests: event-loop drivers, the loop-plus-reaper fixture, temp
 * trees, fds and paths. All static inline, so a test pays only for what it calls. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "platform/reaper.h"
#include "base/util.h"
#include "wire/ttrpc_client.h"

/* ---- driving the loop ---- */

/* Does nothing: it only wakes the loop, so that run_until looks at its condition again. */
static inline void
tick_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  (void) arg;
}

/* Runs the loop until done(arg) or timeout_ms; a ticking timer keeps each turn short, which
 * also lets done() poll state no event reports (/proc, kill(pid, 0)). */
static inline bool
run_until (struct event_base *base, bool (*done) (void *), void *arg, unsigned timeout_ms)
{
  uint64_t deadline = now_monotonic_ms () + timeout_ms;
  struct event *tick = event_new (base, -1, EV_PERSIST, tick_cb, NULL);
  struct timeval tv = { 0, 10 * 1000 };
  event_add (tick, &tv);
  while (!done (arg) && now_monotonic_ms () < deadline)
    event_base_loop (base, EVLOOP_ONCE);
  event_free (tick);
  return done (arg);
}

/* A one-shot timer's callback: sets the bool it was given. */
static inline void
set_flag_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  *(bool *) arg = true;
}

/* A plain callback that sets the bool it was given, and the run_until condition reading it. */
static inline void
raise_flag (void *arg)
{
  *(bool *) arg = true;
}

static inline bool
flag_raised (void *arg)
{
  return *(bool *) arg;
}

/* Runs the loop until done(arg), failing the test after 5 s. No timer ticks: done() has to
 * turn true through something the loop handles. */
static inline void
run_until_or_fail (struct event_base *base, bool (*done) (void *), void *arg)
{
  bool timed_out = false;
  struct timeval tv = { 5, 0 };
  struct event *t = evtimer_new (base, set_flag_cb, &timed_out);
  evtimer_add (t, &tv);
  while (!done (arg) && !timed_out)
    event_base_loop (base, EVLOOP_ONCE);
  event_free (t);
  assert_false (timed_out);
}

/* Runs the loop for ms milliseconds, whatever happens meanwhile. */
static inline void
run_for_ms (struct event_base *base, int ms)
{
  bool over = false;
  struct timeval tv = { 0, ms * 1000 };
  struct event *t = evtimer_new (base, set_flag_cb, &over);
  evtimer_add (t, &tv);
  while (!over)
    event_base_loop (base, EVLOOP_ONCE);
  event_free (t);
}

/* ---- children ---- */

/* A run_until condition on a pid_t. A zombie still answers kill(pid, 0); only a reaped pid
 * gives ESRCH. */
static inline bool
pid_reaped (void *arg)
{
  pid_t pid = *(pid_t *) arg;
  return kill (pid, 0) < 0 && errno == ESRCH;
}

/* The loop and reaper of a fixture that runs real children: reaper_new makes this process the
 * subreaper, so every exit comes back through the loop. */
static inline void
loop_with_reaper_new (struct event_base **base, struct reaper **reaper)
{
  shim_error_t err = NULL;
  *base = event_base_new ();
  *reaper = reaper_new (*base, &err);
  assert_non_null (*reaper);
}

/* The reaper first: its SIGCHLD event lives on the base. */
static inline void
loop_with_reaper_free (struct event_base *base, struct reaper *reaper)
{
  reaper_free (reaper);
  event_base_free (base);
}

/* ---- files, fds and paths ---- */

/* How many fds this process has open, to show that nothing leaked. */
static inline int
count_fds (void)
{
  int n = 0;
  DIR *d = opendir ("/proc/self/fd");
  assert_non_null (d);
  for (struct dirent *e; (e = readdir (d));)
    if (e->d_name[0] != '.')
      n++;
  closedir (d);
  return n;
}

/* remove_tree's nftw callback: FTW_DEPTH hands over a directory after its contents. */
static inline int
remove_tree_cb (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) flag;
  (void) ftw;
  return remove (path);
}

/* Removes a test's temp dir with all in it (depth first, links not followed); 0 on success. */
static inline int
remove_tree (const char *dir)
{
  return nftw (dir, remove_tree_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates or truncates path and writes text to it: a fixture file such as a cgroup knob. */
static inline void
write_text (const char *path, const char *text)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write_all (fd, text, strlen (text)), 0);
}

/* test/fakes/<name>, or test/fakes itself for "", as an absolute path. `make unit` compiles
 * from the repo root, so __FILE__ here is .../test/unit/testutil.h. */
static inline char *
fakes_path (const char *name)
{
  const char *here = __FILE__;
  const char *cut = strstr (here, "unit/testutil.h");
  cleanup_free char *rel
      = xasprintf ("%.*sfakes%s%s", (int) (cut - here), here, name[0] ? "/" : "", name);
  char *abs = realpath (rel, NULL);
  assert_non_null (abs);
  return abs;
}

/* An AF_UNIX address for path, which must fit sun_path. */
static inline struct sockaddr_un
unix_addr (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  assert_true (strlen (path) < sizeof sa.sun_path);
  memcpy (sa.sun_path, path, strlen (path));
  return sa;
}

/* A listening stream socket on path, for a server under test to accept on. */
static inline int
listen_unix (const char *path)
{
  struct sockaddr_un sa = unix_addr (path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (fd, 16), 0);
  return fd;
}

/* ---- argv ---- */

/* Compares a NULL-terminated argv with want, element by element, then frees it. */
static inline void
assert_argv (char **got, const char *const *want)
{
  size_t i;
  for (i = 0; want[i]; i++)
    {
      assert_non_null (got[i]);
      assert_string_equal (got[i], want[i]);
    }
  assert_null (got[i]);
  strv_free (got);
}

/* ---- children ---- */

/* True once this process has no child left (direct ones, and orphans the subreaper took). */
static inline bool
no_children (void *arg)
{
  (void) arg;
  cleanup_free char *path = xasprintf ("/proc/self/task/%d/children", (int) getpid ());
  cleanup_free char *text = NULL;
  size_t len = 0;
  return read_file (path, 4096, &text, &len, NULL) == 0 && len == 0;
}

/* test/fakes/fake-model-runtime keeps the pid of every container process it started in
 * <bundle>/pids: the shim leaves containers running when it goes, as the stock shim does, so
 * a test kills them itself. */
static inline void
kill_fake_containers (const char *bundle)
{
  cleanup_free char *path = xasprintf ("%s/pids", bundle);
  FILE *fp = fopen (path, "r");
  int pid;
  while (fp && fscanf (fp, "%d", &pid) == 1)
    kill (pid, SIGKILL);
  if (fp)
    fclose (fp);
}

/* ---- ttrpc client calls ---- */

/* What a ttrpc_client_call() got back, kept past its callback. */
struct answer
{
  bool done;
  int code;
  char message[200];
  uint8_t *payload;
  size_t len;
};

static inline void
answer_cb (int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
  struct answer *a = arg;
  a->done = true;
  a->code = code;
  snprintf (a->message, sizeof a->message, "%s", message ? message : "");
  a->payload = xmalloc (len + 1);
  if (len > 0)
    memcpy (a->payload, payload, len);
  a->len = len;
}

static inline bool
answered (void *arg)
{
  return ((struct answer *) arg)->done;
}

/* Sends service.method(req), its answer into a (emptied first); it comes while the loop runs. */
static inline struct answer *
send_call (struct ttrpc_client *c, struct answer *a, const char *service, const char *method,
           const ProtobufCMessage *req)
{
  shim_error_t err = NULL;
  free (a->payload);
  *a = (struct answer){ 0 };
  assert_int_equal (ttrpc_client_call (c, service, method, req, NULL, 0, 0, answer_cb, a, &err), 0);
  return a;
}

#endif
