/* OOM watching: cgroup v2 through a fixture memory.events in a temp dir (v2 is not live on
 * these hosts), cgroup v1 on the real kernel with a child that overruns an 8 MiB limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "platform/cgroup.h"
#include "platform/oom.h"
#include "platform/stats.h"
#include "testutil.h"
#include "base/util.h"

#define V1_MEMORY_ROOT "/sys/fs/cgroup/memory"

struct fixture
{
  char dir[64]; /* v2: the fixture root */
  char cgdir[128]; /* v1: the memory cgroup made for the test */
  pid_t child; /* v1: the allocating child, killed in teardown if still there */
  struct event_base *base;
  int reports;
  bool stop_on_report;
};

static void
report_cb (void *arg)
{
  struct fixture *f = arg;
  f->reports++;
  if (f->stop_on_report)
    event_base_loopbreak (f->base);
}

static void
timeout_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  event_base_loopbreak (arg);
}

/* Runs the loop for at most ms (less when a report stops it). */
static void
run_loop (struct fixture *f, int ms)
{
  struct event *t = evtimer_new (f->base, timeout_cb, f->base);
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  evtimer_add (t, &tv);
  event_base_dispatch (f->base);
  event_free (t);
}

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  strcpy (f->dir, "/tmp/cshim-oom-XXXXXX");
  if (mkdtemp (f->dir) == NULL)
    return -1;
  f->base = event_base_new ();
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  if (f->child > 0)
    {
      kill (f->child, SIGKILL);
      waitpid (f->child, NULL, 0);
    }
  if (f->cgdir[0])
    rmdir (f->cgdir); /* a cgroup directory goes with rmdir alone, once empty */
  remove_tree (f->dir);
  event_base_free (f->base);
  free (f);
  return 0;
}

/* ---- v2 from a fixture ---- */

/* Rewrites memory.events in place (the watch is on the inode, so no rename). */
static void
write_events (struct fixture *f, unsigned oom_kill)
{
  cleanup_free char *dir = xasprintf ("%s/sys/fs/cgroup/c1", f->dir);
  assert_int_equal (mkdir_p (dir, 0755), 0);
  cleanup_free char *path = xasprintf ("%s/memory.events", dir);
  cleanup_free char *text
      = xasprintf ("low 0\nhigh 0\nmax %u\noom %u\noom_kill %u\noom_group_kill 0\n", oom_kill * 3,
                   oom_kill, oom_kill);
  write_text (path, text);
}

static struct cgroup *
v2_cgroup (struct fixture *f)
{
  shim_error_t err = NULL;
  struct cgroup *cg = cgroup_from_text (
      "0::/c1\n", "26 22 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", f->dir, &err);
  assert_non_null (cg);
  return cg;
}

static struct oom_watch *
v2_watch (struct fixture *f)
{
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = v2_cgroup (f);
  struct oom_watch *w = oom_watch_new (f->base, cg, report_cb, f, &err);
  assert_null (err);
  assert_non_null (w);
  return w;
}

static void
test_v2_event_fires_cb (void **state)
{
  struct fixture *f = *state;
  write_events (f, 0);
  struct oom_watch *w = v2_watch (f); /* the cgroup may be freed: the watch copies what it needs */
  run_loop (f, 100);
  assert_int_equal (f->reports, 0); /* nothing changed */

  write_events (f, 1);
  f->stop_on_report = true;
  run_loop (f, 5000);
  assert_int_equal (f->reports, 1);
  assert_false (oom_watch_check (w)); /* already reported through cb */

  /* A rewrite with the same count is no new OOM. */
  f->stop_on_report = false;
  write_events (f, 1);
  run_loop (f, 200);
  assert_int_equal (f->reports, 1);
  oom_watch_free (w);
}

/* check() before the loop saw the change: reported there, and cb stays quiet for it. */
static void
test_v2_check_reports_once (void **state)
{
  struct fixture *f = *state;
  write_events (f, 0);
  struct oom_watch *w = v2_watch (f);
  write_events (f, 1);
  assert_true (oom_watch_check (w));
  assert_false (oom_watch_check (w));
  run_loop (f, 300); /* the pending inotify events are consumed */
  assert_int_equal (f->reports, 0);

  /* The next one goes through cb again. */
  write_events (f, 2);
  f->stop_on_report = true;
  run_loop (f, 5000);
  assert_int_equal (f->reports, 1);
  assert_false (oom_watch_check (w));
  oom_watch_free (w);
}

/* A kill counted before the watch was armed is still reported once. */
static void
test_v2_earlier_kill (void **state)
{
  struct fixture *f = *state;
  write_events (f, 2);
  struct oom_watch *w = v2_watch (f);
  assert_true (oom_watch_check (w));
  assert_false (oom_watch_check (w));
  oom_watch_free (w);
}

/* A truncated or garbled file neither reports nor forgets what was seen. */
static void
test_v2_partial_file (void **state)
{
  struct fixture *f = *state;
  write_events (f, 1);
  struct oom_watch *w = v2_watch (f);
  assert_true (oom_watch_check (w));
  cleanup_free char *path = xasprintf ("%s/sys/fs/cgroup/c1/memory.events", f->dir);
  cleanup_close int fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (write_all (fd, "low 0\noom_k", 11), 0);
  run_loop (f, 200);
  assert_false (oom_watch_check (w));
  write_events (f, 1);
  run_loop (f, 200);
  assert_int_equal (f->reports, 0);
  oom_watch_free (w);
}

static void
test_no_memory_cgroup (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *v1 = cgroup_from_text (
      "8:pids:/a\n", "38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n", NULL, &err);
  assert_non_null (v1);
  assert_null (oom_watch_new (f->base, v1, report_cb, f, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
  assert_null (oom_watch_new (f->base, NULL, report_cb, f, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
  /* v2 without memory.events (memory controller not enabled there). */
  cleanup_cgroup struct cgroup *v2 = v2_cgroup (f);
  assert_null (oom_watch_new (f->base, v2, report_cb, f, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
}

/* ---- v1 on the real kernel ---- */

static bool
v1_usable (void)
{
  return geteuid () == 0 && access (V1_MEMORY_ROOT "/cgroup.event_control", W_OK) == 0;
}

static void
cg_write (const char *dir, const char *file, const char *value)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (write_all (fd, value, strlen (value)), 0);
}

static void
make_v1_cgroup (struct fixture *f, const char *suffix)
{
  snprintf (f->cgdir, sizeof f->cgdir, V1_MEMORY_ROOT "/cshim-test-%d%s", (int) getpid (), suffix);
  assert_int_equal (mkdir (f->cgdir, 0755), 0);
  cg_write (f->cgdir, "memory.limit_in_bytes", "8M");
  /* With swap, the child would swap instead of being killed. */
  cleanup_free char *memsw = xasprintf ("%s/memory.memsw.limit_in_bytes", f->cgdir);
  if (access (memsw, W_OK) == 0)
    cg_write (f->cgdir, "memory.memsw.limit_in_bytes", "8M");
}

/* Touches 64 MiB once the parent says go (it first moves this process into the cgroup). */
static void __attribute__ ((noreturn)) hog (int go)
{
  char c;
  if (read (go, &c, 1) != 1)
    _exit (2);
  size_t len = 64u << 20;
  char *p = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    _exit (3);
  for (size_t i = 0; i < len; i += 4096)
    p[i] = 1;
  _exit (0);
}

/* Forks the hog, moves it into the test cgroup and returns the fd that lets it start. */
static int
start_hog (struct fixture *f)
{
  int go[2];
  assert_int_equal (pipe2 (go, O_CLOEXEC), 0);
  f->child = fork ();
  assert_true (f->child >= 0);
  if (f->child == 0)
    hog (go[0]);
  close (go[0]);
  cleanup_free char *pid = xasprintf ("%d", (int) f->child);
  cg_write (f->cgdir, "cgroup.procs", pid);
  return go[1];
}

static uint64_t
v1_oom_kills (const char *dir)
{
  cleanup_free char *path = xasprintf ("%s/memory.oom_control", dir);
  cleanup_free char *text = NULL;
  shim_error_t err = NULL;
  assert_int_equal (read_file (path, 4096, &text, NULL, &err), 0);
  uint64_t v = 0;
  stats_parse_key (text, "oom_kill", &v);
  return v;
}

static void
test_v1_real_oom (void **state)
{
  struct fixture *f = *state;
  if (!v1_usable ())
    skip ();
  make_v1_cgroup (f, "");
  int go = start_hog (f);
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_of_pid (f->child, &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "memory"), f->cgdir);
  struct oom_watch *w = oom_watch_new (f->base, cg, report_cb, f, &err);
  assert_null (err);
  assert_non_null (w);

  assert_int_equal (write (go, "g", 1), 1);
  close (go);
  f->stop_on_report = true;
  run_loop (f, 10000);
  int status;
  assert_int_equal (waitpid (f->child, &status, 0), f->child);
  f->child = 0;
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGKILL);
  /* Reported exactly once, through whichever path saw it first. */
  bool checked = oom_watch_check (w);
  assert_int_equal (f->reports + (checked ? 1 : 0), 1);
  assert_false (oom_watch_check (w));
  assert_true (v1_oom_kills (f->cgdir) >= 1);

  /* Removing the cgroup signals the eventfd too: that is no OOM. */
  f->stop_on_report = false;
  int before = f->reports;
  assert_int_equal (rmdir (f->cgdir), 0);
  f->cgdir[0] = '\0';
  run_loop (f, 500);
  assert_int_equal (f->reports, before);
  assert_false (oom_watch_check (w));
  oom_watch_free (w);
}

/* An empty cgroup removed under the watch: no report from the loop or from check(). */
static void
test_v1_removal_only (void **state)
{
  struct fixture *f = *state;
  if (!v1_usable ())
    skip ();
  make_v1_cgroup (f, "-rm");
  cleanup_free char *mountinfo = NULL;
  shim_error_t err = NULL;
  assert_int_equal (read_file ("/proc/self/mountinfo", 1u << 22, &mountinfo, NULL, &err), 0);
  cleanup_free char *proc = xasprintf ("4:memory:%s\n", f->cgdir + strlen (V1_MEMORY_ROOT));
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mountinfo, NULL, &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "memory"), f->cgdir);
  struct oom_watch *w = oom_watch_new (f->base, cg, report_cb, f, &err);
  assert_non_null (w);
  assert_false (oom_watch_check (w));

  assert_int_equal (rmdir (f->cgdir), 0);
  f->cgdir[0] = '\0';
  run_loop (f, 500);
  assert_int_equal (f->reports, 0);
  assert_false (oom_watch_check (w));
  oom_watch_free (w);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_v2_event_fires_cb, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_check_reports_once, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_earlier_kill, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_partial_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_no_memory_cgroup, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_real_oom, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_removal_only, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
