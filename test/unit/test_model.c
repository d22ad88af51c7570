/* The model (model.h) end to end without containerd: its verbs against test/fakes/
 * fake-model-runtime, whose "containers" are real children with real pipes, reaped by the real
 * reaper. The events it reports and the answers its verbs give are recorded and compared. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/util.h"
#include "model/model.h"
#include "platform/reaper.h"
#include "runtime/config.h"
#include "runtime/profile.h"
#include "testutil.h"

#define MAX_EVENTS 32
#define MAX_ANSWERS 16

/* What a verb's done callback (or a Wait's) got. */
struct model_answer
{
  bool done;
  int code; /* SHIM_OK on success */
  char msg[200];
  pid_t pid;
  int status;
  size_t n_pids;
  bool gone; /* a Wait's caller that went away */
};

struct fx
{
  struct event_base *base;
  struct reaper *reaper;
  struct model *m;
  char dir[64];
  char *fake;
  char events[MAX_EVENTS][96];
  int n_events;
  struct model_answer answers[MAX_ANSWERS];
  int n_answers;
  long out_at_exit; /* size of out.log when the first exit was reported */
  struct model_answer *held; /* an answer whose state the next exit records */
  bool held_done_at_exit;
};

/* ---- recording ---- */

static void
record (struct fx *f, const char *fmt, ...)
{
  assert_true (f->n_events < MAX_EVENTS);
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (f->events[f->n_events++], sizeof f->events[0], fmt, ap);
  va_end (ap);
}

static const char *
who (const char *id, const char *exec_id, char *buf, size_t n)
{
  snprintf (buf, n, "%s%s%s", id, exec_id ? "/" : "", exec_id ? exec_id : "");
  return buf;
}

static void
on_exec_added (void *arg, const char *id, const char *exec_id)
{
  char b[64];
  record (arg, "exec_added %s", who (id, exec_id, b, sizeof b));
}

static void
on_started (void *arg, const char *id, const char *exec_id, pid_t pid)
{
  char b[64];
  (void) pid;
  record (arg, "started %s", who (id, exec_id, b, sizeof b));
}

static void
on_oom (void *arg, const char *id)
{
  record (arg, "oom %s", id);
}

static void
on_exited (void *arg, const char *id, const char *exec_id, pid_t pid, int status,
           const struct timespec *at)
{
  struct fx *f = arg;
  char b[64];
  (void) pid;
  (void) at;
  if (f->out_at_exit < 0)
    {
      cleanup_free char *path = xasprintf ("%s/out.log", f->dir);
      struct stat st;
      f->out_at_exit = stat (path, &st) == 0 ? st.st_size : 0;
    }
  if (f->held)
    f->held_done_at_exit = f->held->done;
  record (arg, "exited %s %d", who (id, exec_id, b, sizeof b), status);
}

static void
on_paused (void *arg, const char *id)
{
  record (arg, "paused %s", id);
}

static void
on_resumed (void *arg, const char *id)
{
  record (arg, "resumed %s", id);
}

static void
on_checkpointed (void *arg, const char *id, const char *image)
{
  (void) image;
  record (arg, "checkpointed %s", id);
}

static void
on_deleted (void *arg, const char *id, pid_t pid, int status, const struct timespec *at)
{
  (void) pid;
  (void) at;
  record (arg, "deleted %s %d", id, status);
}

static const struct model_events events = {
  on_exec_added, on_started,      on_oom,     on_exited, on_paused,
  on_resumed,    on_checkpointed, on_deleted, NULL,
};

static struct model_answer *
next_answer (struct fx *f)
{
  assert_true (f->n_answers < MAX_ANSWERS);
  return &f->answers[f->n_answers++];
}

static void
done_cb (const struct model_result *res, shim_error_t err, void *arg)
{
  struct model_answer *a = arg;
  assert_false (a->done); /* answered once */
  a->done = true;
  a->code = err ? err->code : SHIM_OK;
  if (err)
    snprintf (a->msg, sizeof a->msg, "%s", err->msg);
  assert_true ((res == NULL) == (err != NULL));
  if (res)
    {
      a->pid = res->pid;
      a->status = res->exit_status;
      a->n_pids = res->n_pids;
    }
  shim_error_release (&err);
}

static void
wait_cb (int status, const struct timespec *at, void *arg)
{
  struct model_answer *a = arg;
  (void) at;
  assert_false (a->done);
  a->done = true;
  a->status = status;
}

static bool
model_answered (void *arg)
{
  return ((struct model_answer *) arg)->done;
}

static void
await (struct fx *f, struct model_answer *a)
{
  run_until_or_fail (f->base, model_answered, a);
}

/* ---- fixture ---- */

static int
setup (void **state)
{
  struct fx *f = xcalloc (1, sizeof *f);
  strcpy (f->dir, "/tmp/cshim-model-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->fake = fakes_path ("fake-model-runtime");
  f->out_at_exit = -1;
  /* A pid namespace of its own: no kill --all when the init exits (a test turns it off). */
  cleanup_free char *spec = xasprintf ("%s/config.json", f->dir);
  write_text (spec, "{\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}");
  loop_with_reaper_new (&f->base, &f->reaper);
  struct model_config cfg = {
    .base = f->base, .reaper = f->reaper, .namespace = "test", .events = &events, .events_arg = f
  };
  f->m = model_new (&cfg);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  model_free (f->m);
  kill_fake_containers (f->dir);
  /* A cancelled runtime call frees its spawn only once it is reaped: none is left. */
  assert_true (run_until (f->base, no_children, NULL, 5000));
  loop_with_reaper_free (f->base, f->reaper);
  remove_tree (f->dir);
  free (f->fake);
  free (f);
  return 0;
}

static void
touch (struct fx *f, const char *name, const char *text)
{
  cleanup_free char *path = xasprintf ("%s/%s", f->dir, name);
  write_text (path, text);
}

/* Create of c1 with stdout to out.log; the answer. */
static struct model_answer *
create (struct fx *f)
{
  struct task_options opts;
  config_init (&opts);
  cleanup_free char *json
      = xasprintf ("{\"binary\":\"%s\",\"profile\":\"runc\",\"exec_io_drain_ms\":300}", f->fake);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_json (&opts, json, "test", &err), 0);
  cleanup_free char *out = xasprintf ("file://%s/out.log", f->dir);
  struct model_create req = { .id = "c1",
                              .bundle = f->dir,
                              .stdin_path = "",
                              .stdout_path = out,
                              .stderr_path = "",
                              .opts = &opts };
  struct model_answer *a = next_answer (f);
  model_create (f->m, &req, done_cb, a);
  config_release (&opts);
  await (f, a);
  return a;
}

static struct model_answer *
verb (struct fx *f, void (*fn) (struct model *, const char *, const char *, model_done_fn, void *),
      const char *exec_id)
{
  struct model_answer *a = next_answer (f);
  fn (f->m, "c1", exec_id, done_cb, a);
  await (f, a);
  return a;
}

static struct model_answer *
kill_ (struct fx *f, const char *exec_id, int sig)
{
  struct model_answer *a = next_answer (f);
  model_kill (f->m, "c1", exec_id, sig, false, done_cb, a);
  await (f, a);
  return a;
}

static struct model_answer *
control (struct fx *f, enum process_verb v)
{
  struct model_answer *a = next_answer (f);
  model_control (f->m, "c1", v, NULL, done_cb, a);
  await (f, a);
  return a;
}

static bool
caller_gone (void *arg)
{
  return ((struct model_answer *) arg)->gone;
}

/* A Wait whose caller can go away (its answer's gone flag). */
static struct model_answer *
wait_leavable (struct fx *f, const char *exec_id)
{
  struct model_answer *a = next_answer (f);
  struct waiter w = { .done = wait_cb, .gone = caller_gone, .arg = a };
  shim_error_t err = NULL;
  assert_int_equal (model_wait (f->m, "c1", exec_id, &w, &err), 0);
  return a;
}

static struct model_answer *
wait_ (struct fx *f, const char *exec_id)
{
  return wait_leavable (f, exec_id); /* its gone flag is never set */
}

static void
exec_ (struct fx *f, const char *exec_id)
{
  struct model_exec req = { "c1", exec_id, "", "", "", false, "{\"args\":[\"x\"]}" };
  shim_error_t err = NULL;
  assert_int_equal (model_exec (f->m, &req, &err), 0);
}

static enum process_state
state_of (struct fx *f, const char *exec_id)
{
  struct model_state st;
  shim_error_t err = NULL;
  assert_int_equal (model_state (f->m, "c1", exec_id, &st, &err), 0);
  return st.state;
}

static void
assert_events (struct fx *f, const char *const *want)
{
  int n = 0;
  for (; want[n]; n++)
    {
      assert_true (n < f->n_events);
      assert_string_equal (f->events[n], want[n]);
    }
  assert_int_equal (f->n_events, n);
}

static bool
init_exited (void *arg)
{
  struct fx *f = arg;
  for (int i = 0; i < f->n_events; i++)
    if (strncmp (f->events[i], "exited c1 ", 10) == 0)
      return true;
  return false;
}

/* Runs the loop until the init's exit was reported. */
static void
await_init_exit (struct fx *f)
{
  run_until_or_fail (f->base, init_exited, f);
}

static pid_t
pid_of (struct fx *f, const char *exec_id)
{
  struct model_state st;
  shim_error_t err = NULL;
  assert_int_equal (model_state (f->m, "c1", exec_id, &st, &err), 0);
  return st.pid;
}

/* The n-th pid (from 0) the fake runtime started. */
static pid_t
started_pid (struct fx *f, int n)
{
  cleanup_free char *path = xasprintf ("%s/pids", f->dir);
  FILE *fp = fopen (path, "r");
  assert_non_null (fp);
  int pid = 0;
  for (int i = 0; i <= n; i++)
    assert_int_equal (fscanf (fp, "%d", &pid), 1);
  fclose (fp);
  return pid;
}

/* ---- tests ---- */

/* Create, Start, a Wait parked before the exit, Kill, Delete: events in contract order and
 * every answer what the process did. */
static void
test_lifecycle_order (void **state)
{
  struct fx *f = *state;
  struct model_answer *a = create (f);
  assert_int_equal (a->code, SHIM_OK);
  assert_true (a->pid > 0);
  assert_int_equal (state_of (f, NULL), PROCESS_CREATED);
  struct model_answer *w = wait_ (f, NULL);
  assert_int_equal (verb (f, model_start, NULL)->code, SHIM_OK);
  assert_int_equal (state_of (f, NULL), PROCESS_RUNNING);
  assert_false (w->done);
  assert_int_equal (kill_ (f, NULL, SIGTERM)->code, SHIM_OK);
  await (f, w);
  assert_int_equal (w->status, 128 + SIGTERM);
  /* A Wait after the exit is answered at once. */
  assert_true (wait_ (f, NULL)->done);
  a = verb (f, model_delete, NULL);
  assert_int_equal (a->code, SHIM_OK);
  assert_int_equal (a->status, 128 + SIGTERM);
  const char *want[] = { "started c1", "exited c1 143", "deleted c1 143", NULL };
  assert_events (f, want);
  assert_int_equal (model_check_new (f->m, "c1", NULL), 0);
}

/* The init's exit kills the execs left running, and is reported after theirs. */
static void
test_exec_exits_before_init (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  exec_ (f, "e1");
  assert_int_equal (verb (f, model_start, "e1")->code, SHIM_OK);
  struct model_answer *w = wait_ (f, "e1");
  kill_ (f, NULL, SIGKILL);
  await_init_exit (f);
  assert_true (w->done);
  assert_int_equal (w->status, 137);
  const char *want[] = { "started c1",       "exec_added c1/e1", "started c1/e1",
                         "exited c1/e1 137", "exited c1 137",    NULL };
  assert_events (f, want);
}

/* Without a pid namespace of its own, the rest of the container is killed (runtime kill
 * --all) before the init's exit goes out. */
static void
test_kill_all_on_init_exit (void **state)
{
  struct fx *f = *state;
  touch (f, "config.json", "{}");
  create (f);
  verb (f, model_start, NULL);
  kill_ (f, NULL, SIGKILL);
  await_init_exit (f);
  const char *want[] = { "started c1", "exited c1 137", NULL };
  assert_events (f, want);
}

/* Kill and Delete in each state: the process table's answers, and Delete only where legal. */
static void
test_kill_delete_each_state (void **state)
{
  struct fx *f = *state;
  create (f);
  /* created: Kill reaches the runtime; running: Delete is refused. */
  verb (f, model_start, NULL);
  struct model_answer *a = verb (f, model_delete, NULL);
  assert_int_equal (a->code, SHIM_UNKNOWN);
  assert_string_equal (a->msg, "cannot delete a running process");
  /* paused: Delete refused, Kill allowed. */
  assert_int_equal (control (f, PROCESS_PAUSE)->code, SHIM_OK);
  assert_int_equal (state_of (f, NULL), PROCESS_PAUSED);
  a = verb (f, model_delete, NULL);
  assert_string_equal (a->msg, "cannot delete a paused process");
  assert_int_equal (control (f, PROCESS_PAUSE)->code, SHIM_UNKNOWN);
  assert_int_equal (control (f, PROCESS_RESUME)->code, SHIM_OK);
  assert_int_equal (kill_ (f, NULL, SIGKILL)->code, SHIM_OK);
  await_init_exit (f);
  /* stopped: Kill is NotFound, Delete works. */
  a = kill_ (f, NULL, SIGKILL);
  assert_int_equal (a->code, SHIM_NOT_FOUND);
  assert_string_equal (a->msg, "process already finished");
  assert_int_equal (verb (f, model_delete, NULL)->code, SHIM_OK);
  /* deleted: the container is gone. */
  a = kill_ (f, NULL, SIGKILL);
  assert_int_equal (a->code, SHIM_NOT_FOUND);
  assert_string_equal (a->msg, "container not created");
  const char *want[]
      = { "started c1", "paused c1", "resumed c1", "exited c1 137", "deleted c1 137", NULL };
  assert_events (f, want);
}

/* A created init can be deleted: the runtime's delete kills it, that exit goes out before
 * TaskDelete, Delete reports the exit from before (none), and a parked Wait is answered. */
static void
test_delete_created (void **state)
{
  struct fx *f = *state;
  create (f);
  /* The init's exit is reaped before delete returns, its output not yet drained. */
  touch (f, "delete-linger", "");
  struct model_answer *w = wait_ (f, NULL);
  struct model_answer *a = verb (f, model_delete, NULL);
  assert_int_equal (a->code, SHIM_OK);
  assert_int_equal (a->status, 0);
  assert_true (w->done);
  /* The exit the runtime's delete caused goes out first, as the stock shim publishes it. */
  const char *want[] = { "exited c1 137", "deleted c1 0", NULL };
  assert_events (f, want);
}

/* A created init killed before any Start exits like any other: TaskExit, no TaskStart. */
static void
test_kill_created (void **state)
{
  struct fx *f = *state;
  create (f);
  struct model_answer *w = wait_ (f, NULL);
  assert_int_equal (kill_ (f, NULL, SIGKILL)->code, SHIM_OK);
  await (f, w);
  assert_int_equal (w->status, 137);
  const char *want[] = { "exited c1 137", NULL };
  assert_events (f, want);
}

/* An exec in each state: Kill of one never started is FailedPrecondition (no pid to signal),
 * Delete of a running one is refused, Delete after its exit answers that exit. */
static void
test_exec_kill_delete_each_state (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  exec_ (f, "e1");
  struct model_answer *a = kill_ (f, "e1", SIGKILL);
  assert_int_equal (a->code, SHIM_FAILED_PRECONDITION);
  assert_string_equal (a->msg, "process not created");
  verb (f, model_start, "e1");
  a = verb (f, model_delete, "e1");
  assert_string_equal (a->msg, "cannot delete a running process");
  struct model_answer *w = wait_ (f, "e1");
  assert_int_equal (kill_ (f, "e1", SIGTERM)->code, SHIM_OK);
  await (f, w);
  a = verb (f, model_delete, "e1");
  assert_int_equal (a->code, SHIM_OK);
  assert_int_equal (a->status, 143);
  a = kill_ (f, "e1", SIGKILL);
  assert_int_equal (a->code, SHIM_NOT_FOUND);
  assert_string_equal (a->msg, "process does not exist e1");
  assert_int_equal (state_of (f, NULL), PROCESS_RUNNING);
}

/* The init's exit waits for the answer of the runtime kill that caused it, as the stock
 * shim's Kill holds the process: a client that deletes on the exit must not close the
 * connection the Kill is still to be answered on. */
static void
test_kill_answered_before_exit (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  touch (f, "kill-linger", "");
  f->held = next_answer (f);
  model_kill (f->m, "c1", NULL, SIGKILL, false, done_cb, f->held);
  await_init_exit (f);
  assert_true (f->held_done_at_exit);
  assert_int_equal (f->held->code, SHIM_OK);
}

/* A runtime failure answers "OCI runtime <verb> failed: <its message>" and changes nothing. */
static void
test_runtime_failure (void **state)
{
  struct fx *f = *state;
  create (f);
  touch (f, "fail-start", "boom");
  struct model_answer *a = verb (f, model_start, NULL);
  assert_int_not_equal (a->code, SHIM_OK);
  assert_non_null (strstr (a->msg, "OCI runtime start failed"));
  assert_non_null (strstr (a->msg, "boom"));
  assert_int_equal (f->n_events, 0);
}

/* An exit waits for the process's output: the bytes are in place when it is reported, and a
 * background child holding the output open is cut at the drain deadline. */
static void
test_exit_after_output_drained (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  touch (f, "exec-cmd", "echo hello; sleep 30 & echo $! >>pids; exit 3");
  cleanup_free char *out = xasprintf ("file://%s/out.log", f->dir);
  struct model_exec req = { "c1", "e1", "", out, "", false, "{}" };
  shim_error_t err = NULL;
  assert_int_equal (model_exec (f->m, &req, &err), 0);
  verb (f, model_start, "e1");
  await (f, wait_ (f, "e1"));
  assert_int_equal (f->out_at_exit, 6);
  /* The holder (started after the exec) still runs: the deadline, not its end, let the exit
   * out. */
  pid_t holder = started_pid (f, 2);
  assert_int_equal (kill (holder, 0), 0);
  assert_string_equal (f->events[f->n_events - 1], "exited c1/e1 3");
}

/* Shutdown answers everything: the running op Unavailable, queued ones NotFound, parked Waits
 * with what their process recorded; every op is freed (ASan). */
static void
test_teardown_answers_all (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  exec_ (f, "e1");
  struct model_answer *w1 = wait_ (f, NULL);
  struct model_answer *w2 = wait_ (f, "e1");
  touch (f, "hang-pause", "");
  struct model_answer *pause = next_answer (f), *resume = next_answer (f), *del = next_answer (f);
  model_control (f->m, "c1", PROCESS_PAUSE, NULL, done_cb, pause);
  model_control (f->m, "c1", PROCESS_RESUME, NULL, done_cb, resume);
  model_delete (f->m, "c1", NULL, done_cb, del);
  run_for_ms (f->base, 50);
  assert_false (pause->done);
  model_free (f->m);
  f->m = NULL;
  assert_int_equal (pause->code, SHIM_UNAVAILABLE);
  assert_int_equal (resume->code, SHIM_NOT_FOUND);
  assert_int_equal (del->code, SHIM_NOT_FOUND);
  assert_true (w1->done && w2->done);
}

/* A parked Wait whose caller went away (containerd restarted) is answered and dropped when the
 * next Wait parks, so reconnecting clients cannot pile Waits up; the others stay parked. */
static void
test_gone_wait_dropped_when_next_parks (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  struct model_answer *left = wait_leavable (f, NULL), *stays = wait_leavable (f, NULL);
  left->gone = true;
  assert_false (left->done);
  struct model_answer *next = wait_ (f, NULL);
  assert_true (left->done);
  assert_false (stays->done || next->done);
  assert_int_equal (kill_ (f, NULL, SIGKILL)->code, SHIM_OK);
  await (f, next);
  assert_true (stays->done);
  assert_int_equal (next->status, 128 + SIGKILL);
}

/* An exec the runtime started without a readable pid file is killed, not left untracked, and
 * its Start fails. */
static void
test_exec_without_pid_file_killed (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  exec_ (f, "e1");
  touch (f, "exec-no-pidfile", "");
  struct model_answer *a = verb (f, model_start, "e1");
  assert_int_not_equal (a->code, SHIM_OK);
  pid_t orphan = started_pid (f, 1);
  run_until_or_fail (f->base, pid_reaped, &orphan);
  assert_true (wait_ (f, "e1")->done);
  assert_int_equal (state_of (f, NULL), PROCESS_RUNNING);
}

/* A pid that cannot be watched (already watched: the runtime named the init's) fails the
 * Start instead of leaving an exec nobody would see exit; the init is left alone. */
static void
test_exec_watch_failure (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  exec_ (f, "e1");
  touch (f, "exec-pid-init", "");
  struct model_answer *a = verb (f, model_start, "e1");
  assert_int_equal (a->code, SHIM_INTERNAL);
  assert_int_equal (kill (pid_of (f, NULL), 0), 0);
  assert_int_equal (state_of (f, NULL), PROCESS_RUNNING);
}

/* A process that exits before its pid file is read gets its exit from the reaper's cache, and
 * after its start event. */
static void
test_exit_before_watch (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  touch (f, "exec-cmd", "exit 7");
  touch (f, "exec-linger", "");
  exec_ (f, "e1");
  struct model_answer *w = wait_ (f, "e1");
  struct model_answer *a = verb (f, model_start, "e1");
  assert_int_equal (a->code, SHIM_OK);
  await (f, w);
  assert_int_equal (w->status, 7);
  const char *want[]
      = { "started c1", "exec_added c1/e1", "started c1/e1", "exited c1/e1 7", NULL };
  assert_events (f, want);
}

/* A pid reused by an exec whose earlier owner's exit is still in the reaper's cache: that
 * exit is older than the exec's runtime call and is not the exec's. */
static void
test_pid_reuse_stale_exit (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  pid_t old = fork ();
  if (old == 0)
    _exit (9);
  run_until_or_fail (f->base, pid_reaped, &old); /* reaped: its exit is cached */
  /* The exec's call starts in a later millisecond than that reap (the cache's clock). */
  for (uint64_t t = now_monotonic_ms (); now_monotonic_ms () == t;)
    ;
  char text[16];
  snprintf (text, sizeof text, "%d", (int) old);
  touch (f, "exec-pid", text);
  exec_ (f, "e1");
  assert_int_equal (verb (f, model_start, "e1")->code, SHIM_OK);
  assert_int_equal (pid_of (f, "e1"), old);
  /* A cached exit would be delivered on the next loop turn. */
  run_for_ms (f->base, 50);
  assert_int_equal (state_of (f, "e1"), PROCESS_RUNNING);
  const char *want[] = { "started c1", "exec_added c1/e1", "started c1/e1", NULL };
  assert_events (f, want);
}

/* The default CRIU work dir is gone before the container's next op runs. */
static void
test_checkpoint_work_dir_removed (void **state)
{
  struct fx *f = *state;
  create (f);
  verb (f, model_start, NULL);
  cleanup_free char *image = xasprintf ("%s/image", f->dir);
  struct model_checkpoint ck = { .path = image };
  struct model_answer *a = next_answer (f), *p = next_answer (f);
  model_checkpoint (f->m, "c1", &ck, done_cb, a);
  model_control (f->m, "c1", PROCESS_PAUSE, NULL, done_cb, p);
  await (f, p);
  assert_int_equal (a->code, SHIM_OK);
  cleanup_free char *work = xasprintf ("%s/criu-work", f->dir);
  assert_int_equal (access (work, F_OK), -1);
  const char *want[] = { "started c1", "checkpointed c1", "paused c1", NULL };
  assert_events (f, want);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_lifecycle_order, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exec_exits_before_init, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill_all_on_init_exit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill_delete_each_state, setup, teardown),
    cmocka_unit_test_setup_teardown (test_delete_created, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill_created, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exec_kill_delete_each_state, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill_answered_before_exit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_runtime_failure, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exit_after_output_drained, setup, teardown),
    cmocka_unit_test_setup_teardown (test_teardown_answers_all, setup, teardown),
    cmocka_unit_test_setup_teardown (test_gone_wait_dropped_when_next_parks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exec_without_pid_file_killed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exec_watch_failure, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exit_before_watch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pid_reuse_stale_exit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_checkpoint_work_dir_removed, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
