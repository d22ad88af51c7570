#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "containerd/runtime/sandbox/v1/sandbox.pb-c.h"
#include "containerd/types/metrics.pb-c.h"
#include "containerd/types/platform.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "base/log.h"
#include "platform/reaper.h"
#include "platform/sandbox_pause.h"
#include "service/sandbox_service.h"
#include "service/shim.h"
#include "testutil.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_client.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

#define SVC "containerd.runtime.sandbox.v1.Sandbox"
#define MAX_CALLS 8

/* The answer to one client call. */
struct fx
{
  struct shim shim;
  struct event_base *base;
  struct reaper *reaper;
  char dir[64];
  char sock[100];
  char bundle[100];
  struct ttrpc_server *server;
  struct ttrpc_client *client;
  struct sandbox_service *sb;
  size_t n_tasks;
  int exit_requests;
  struct answer answers[MAX_CALLS];
};

/* The daemon's side: counts exit requests; the task count is the fixture's. */

static void
request_exit (void *arg)
{
  ((struct fx *) arg)->exit_requests++;
}

static size_t
task_count (void *arg)
{
  return ((struct fx *) arg)->n_tasks;
}

static const struct sandbox_hooks hooks = { task_count, request_exit };

/* A second service on the same server: the sandbox one is added next to it. */
static void
echo_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  (void) arg;
  ttrpc_call_reply (call, req);
}

static const struct ttrpc_method echo_methods[] = {
  { "test.v1.Echo", "Echo", &ttrpc__key_value__descriptor, echo_handler },
};

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  shim_error_t err = NULL;
  log_init ("test", "sandbox", getenv ("TEST_DEBUG") != NULL);
  loop_with_reaper_new (&fx->base, &fx->reaper);
  fx->shim
      = (struct shim){ .base = fx->base, .reaper = fx->reaper, .namespace = "test", .id = "sb" };
  snprintf (fx->dir, sizeof fx->dir, "/tmp/sandbox-svc-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->sock, sizeof fx->sock, "%s/s.sock", fx->dir);
  snprintf (fx->bundle, sizeof fx->bundle, "%s/bundle", fx->dir);
  assert_int_equal (mkdir (fx->bundle, 0700), 0);
  fx->server = ttrpc_server_new (fx->base, listen_unix (fx->sock), echo_methods,
                                 ARRAY_SIZE (echo_methods), NULL, &err);
  assert_non_null (fx->server);
  fx->sb = sandbox_service_new (&fx->shim, &hooks, fx);
  size_t n;
  const struct ttrpc_method *methods = sandbox_service_methods (&n);
  assert_int_equal (n, 9);
  ttrpc_server_add_service (fx->server, methods, n, fx->sb);
  cleanup_free char *address = xasprintf ("unix://%s", fx->sock);
  fx->client = ttrpc_client_new (fx->base, address);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  ttrpc_client_free (fx->client);
  ttrpc_server_free (fx->server);
  sandbox_service_free (fx->sb);
  for (size_t i = 0; i < MAX_CALLS; i++)
    free (fx->answers[i].payload);
  loop_with_reaper_free (fx->base, fx->reaper);
  assert_int_equal (remove_tree (fx->dir), 0);
  free (fx);
  return 0;
}

/* Client side. */

/* Sends method(req) into answer slot; the answer comes while the loop runs. */
static struct answer *
slot_call (struct fx *fx, int slot, const char *service, const char *method,
           const ProtobufCMessage *req)
{
  return send_call (fx->client, &fx->answers[slot], service, method, req);
}

static struct answer *
sb_call (struct fx *fx, int slot, const char *method, const ProtobufCMessage *req)
{
  struct answer *a = slot_call (fx, slot, SVC, method, req);
  run_until_or_fail (fx->base, answered, a);
  return a;
}

/* Calls a method whose request has only sandbox_id (field 1), and expects code. */
static struct answer *
id_call (struct fx *fx, const char *method, const char *id, int code)
{
  Containerd__Runtime__Sandbox__V1__PingRequest req
      = CONTAINERD__RUNTIME__SANDBOX__V1__PING_REQUEST__INIT;
  req.sandbox_id = (char *) id;
  struct answer *a = sb_call (fx, 0, method, &req.base);
  assert_int_equal (a->code, code);
  return a;
}

/* Sends WaitSandbox for pod1 into slot: it parks until the sandbox ends. */
static struct answer *
wait_sandbox (struct fx *fx, int slot)
{
  Containerd__Runtime__Sandbox__V1__WaitSandboxRequest req
      = CONTAINERD__RUNTIME__SANDBOX__V1__WAIT_SANDBOX_REQUEST__INIT;
  req.sandbox_id = (char *) "pod1";
  return slot_call (fx, slot, SVC, "WaitSandbox", &req.base);
}

static void
create (struct fx *fx, const char *id, int code)
{
  Containerd__Runtime__Sandbox__V1__CreateSandboxRequest req
      = CONTAINERD__RUNTIME__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
  req.sandbox_id = (char *) id;
  req.bundle_path = fx->bundle;
  struct answer *a = sb_call (fx, 0, "CreateSandbox", &req.base);
  assert_int_equal (a->code, code);
}

/* Creates and starts sandbox "pod1"; returns the pause process's pid. */
static pid_t
create_and_start (struct fx *fx)
{
  create (fx, "pod1", SHIM_OK);
  struct answer *a = id_call (fx, "StartSandbox", "pod1", SHIM_OK);
  Containerd__Runtime__Sandbox__V1__StartSandboxResponse *resp
      = containerd__runtime__sandbox__v1__start_sandbox_response__unpack (NULL, a->len, a->payload);
  assert_non_null (resp);
  pid_t pid = (pid_t) resp->pid;
  assert_true (pid > 0);
  assert_non_null (resp->created_at);
  assert_true (resp->created_at->seconds > 0);
  containerd__runtime__sandbox__v1__start_sandbox_response__free_unpacked (resp, NULL);
  return pid;
}

static bool
same_ns (pid_t pid, const char *ns)
{
  char a[64], b[64];
  cleanup_free char *mine = xasprintf ("/proc/self/ns/%s", ns);
  cleanup_free char *theirs = xasprintf ("/proc/%d/ns/%s", (int) pid, ns);
  ssize_t la = readlink (mine, a, sizeof a - 1);
  ssize_t lb = readlink (theirs, b, sizeof b - 1);
  assert_true (la > 0 && lb > 0);
  return la == lb && memcmp (a, b, (size_t) la) == 0;
}

/* The pause process has exec'd (its own namespaces are in place) once its cmdline says so. */
static bool
pause_running (void *arg)
{
  pid_t pid = *(pid_t *) arg;
  char buf[128] = "";
  cleanup_free char *path = xasprintf ("/proc/%d/cmdline", (int) pid);
  FILE *f = fopen (path, "re");
  if (f == NULL)
    return false;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  return n > 0 && memmem (buf, n, "\0pause", 6) != NULL;
}

/* pid 1 of a namespace drops signals it has no handler for: wait for the handler. */
static bool
catches_sigterm (void *arg)
{
  pid_t pid = *(pid_t *) arg;
  cleanup_free char *path = xasprintf ("/proc/%d/status", (int) pid);
  cleanup_free char *text = NULL;
  size_t len;
  shim_error_t err = NULL;
  if (read_file (path, 1 << 16, &text, &len, &err) < 0)
    {
      shim_error_release (&err);
      return false;
    }
  const char *line = strstr (text, "\nSigCgt:");
  return line && (strtoull (line + 8, NULL, 16) & (1ULL << (SIGTERM - 1)));
}

static void
skip_unless_root (void)
{
  if (geteuid () != 0)
    skip (); /* new namespaces need CAP_SYS_ADMIN */
}

/* Tests. */

static void
test_unknown_sandbox (void **state)
{
  struct fx *fx = *state;
  const char *methods[] = { "StartSandbox",  "Platform",    "StopSandbox",     "WaitSandbox",
                            "SandboxStatus", "PingSandbox", "ShutdownSandbox", "SandboxMetrics" };
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    {
      struct answer *a = id_call (fx, methods[i], "nope", SHIM_NOT_FOUND);
      /* the message may carry a code suffix; what matters is what it names */
      assert_non_null (strstr (a->message, "sandbox nope not found"));
    }
  create (fx, "", SHIM_INVALID_ARGUMENT);
  create (fx, "pod1", SHIM_OK);
  create (fx, "pod2", SHIM_ALREADY_EXISTS);
  id_call (fx, "PingSandbox", "pod2", SHIM_NOT_FOUND);
  id_call (fx, "PingSandbox", "pod1", SHIM_OK);
  /* the other service on the server still answers */
  Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
  kv.key = (char *) "k";
  kv.value = (char *) "v";
  struct answer *a = slot_call (fx, 1, "test.v1.Echo", "Echo", &kv.base);
  run_until_or_fail (fx->base, answered, a);
  assert_int_equal (a->code, SHIM_OK);
}

static void
test_platform_and_metrics (void **state)
{
  struct fx *fx = *state;
  create (fx, "pod1", SHIM_OK);
  struct answer *a = id_call (fx, "Platform", "pod1", SHIM_OK);
  Containerd__Runtime__Sandbox__V1__PlatformResponse *p
      = containerd__runtime__sandbox__v1__platform_response__unpack (NULL, a->len, a->payload);
  assert_non_null (p);
  assert_non_null (p->platform);
  assert_string_equal (p->platform->os, "linux");
#if defined(__x86_64__)
  assert_string_equal (p->platform->architecture, "amd64");
#endif
  containerd__runtime__sandbox__v1__platform_response__free_unpacked (p, NULL);
  a = id_call (fx, "SandboxMetrics", "pod1", SHIM_OK);
  Containerd__Runtime__Sandbox__V1__SandboxMetricsResponse *m
      = containerd__runtime__sandbox__v1__sandbox_metrics_response__unpack (NULL, a->len,
                                                                            a->payload);
  assert_non_null (m);
  assert_non_null (m->metrics);
  assert_string_equal (m->metrics->id, "pod1");
  assert_true (m->metrics->timestamp->seconds > 0);
  containerd__runtime__sandbox__v1__sandbox_metrics_response__free_unpacked (m, NULL);
}

static Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *
status (struct fx *fx)
{
  Containerd__Runtime__Sandbox__V1__SandboxStatusRequest req
      = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
  req.sandbox_id = (char *) "pod1";
  req.verbose = true;
  struct answer *a = sb_call (fx, 0, "SandboxStatus", &req.base);
  assert_int_equal (a->code, SHIM_OK);
  return containerd__runtime__sandbox__v1__sandbox_status_response__unpack (NULL, a->len,
                                                                            a->payload);
}

/* Start runs the pause process in namespaces of its own; Wait blocks until Stop, which
 * answers once the pause process is reaped. */
static void
test_start_wait_stop (void **state)
{
  struct fx *fx = *state;
  skip_unless_root ();
  pid_t pid = create_and_start (fx);
  assert_true (run_until (fx->base, pause_running, &pid, 5000));
  assert_false (same_ns (pid, "pid"));
  assert_false (same_ns (pid, "ipc"));
  assert_false (same_ns (pid, "uts"));
  assert_true (same_ns (pid, "net")); /* no netns path: the node's */
  id_call (fx, "StartSandbox", "pod1", SHIM_FAILED_PRECONDITION);

  Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *st = status (fx);
  assert_string_equal (st->state, "SANDBOX_READY");
  assert_int_equal (st->pid, pid);
  assert_int_equal (st->n_info, 1);
  assert_string_equal (st->info[0]->key, "info");
  assert_non_null (strstr (st->info[0]->value, "\"pid\":"));
  containerd__runtime__sandbox__v1__sandbox_status_response__free_unpacked (st, NULL);

  struct answer *wait = wait_sandbox (fx, 2);
  run_for_ms (fx->base, 50);
  assert_false (wait->done); /* parked while the sandbox runs */
  assert_true (sandbox_service_active (fx->sb));

  id_call (fx, "StopSandbox", "pod1", SHIM_OK);
  assert_true (pid_reaped (&pid)); /* Stop answers after the reap */
  run_until_or_fail (fx->base, answered, wait);
  assert_int_equal (wait->code, SHIM_OK);
  Containerd__Runtime__Sandbox__V1__WaitSandboxResponse *w
      = containerd__runtime__sandbox__v1__wait_sandbox_response__unpack (NULL, wait->len,
                                                                         wait->payload);
  assert_int_equal (w->exit_status, 128 + SIGKILL);
  assert_true (w->exited_at->seconds > 0);
  containerd__runtime__sandbox__v1__wait_sandbox_response__free_unpacked (w, NULL);

  st = status (fx);
  assert_string_equal (st->state, "SANDBOX_NOTREADY");
  assert_true (st->exited_at->seconds > 0);
  containerd__runtime__sandbox__v1__sandbox_status_response__free_unpacked (st, NULL);
  /* a Wait after the stop answers at once; a second Stop is harmless */
  id_call (fx, "WaitSandbox", "pod1", SHIM_OK);
  id_call (fx, "StopSandbox", "pod1", SHIM_OK);
  assert_int_equal (fx->exit_requests, 0);
}

static bool
no_connection (void *arg)
{
  return ttrpc_server_connection_count (arg) == 0;
}

/* A WaitSandbox whose client went away (containerd restarted) is dropped when the next one
 * parks, so reconnecting clients cannot pile them up; the last one still gets its answer. */
static void
test_gone_waits_do_not_pile_up (void **state)
{
  struct fx *fx = *state;
  skip_unless_root ();
  pid_t pid = create_and_start (fx);
  struct answer *wait = NULL;
  for (int i = 0; i < 3; i++)
    {
      if (wait)
        {
          ttrpc_client_free (fx->client); /* the client goes away */
          run_until_or_fail (fx->base, no_connection, fx->server);
          cleanup_free char *address = xasprintf ("unix://%s", fx->sock);
          fx->client = ttrpc_client_new (fx->base, address);
        }
      wait = wait_sandbox (fx, 2 + i);
      id_call (fx, "PingSandbox", "pod1", SHIM_OK); /* answered once the Wait before it parked */
      assert_false (wait->done);
      assert_int_equal (sandbox_service_parked (fx->sb), 1);
    }
  id_call (fx, "StopSandbox", "pod1", SHIM_OK);
  assert_true (pid_reaped (&pid));
  run_until_or_fail (fx->base, answered, wait);
  assert_int_equal (wait->code, SHIM_OK);
  assert_int_equal (sandbox_service_parked (fx->sb), 0);
}

/* A pause process that dies on its own ends the sandbox: Wait answers with its status. */
static void
test_pause_death_ends_wait (void **state)
{
  struct fx *fx = *state;
  skip_unless_root ();
  pid_t pid = create_and_start (fx);
  assert_true (run_until (fx->base, pause_running, &pid, 5000));
  struct answer *wait = wait_sandbox (fx, 2);
  assert_true (run_until (fx->base, catches_sigterm, &pid, 5000));
  assert_int_equal (kill (pid, SIGTERM), 0); /* the pause process handles it: exit 0 */
  run_until_or_fail (fx->base, answered, wait);
  Containerd__Runtime__Sandbox__V1__WaitSandboxResponse *w
      = containerd__runtime__sandbox__v1__wait_sandbox_response__unpack (NULL, wait->len,
                                                                         wait->payload);
  assert_int_equal (w->exit_status, 0);
  containerd__runtime__sandbox__v1__wait_sandbox_response__free_unpacked (w, NULL);
  assert_true (sandbox_service_active (fx->sb)); /* until ShutdownSandbox */
}

/* Shutdown kills the pause process, answers waiters, and ends the shim when no task is left;
 * with tasks left, the last one's Delete does. */
static void
test_shutdown (void **state)
{
  struct fx *fx = *state;
  skip_unless_root ();
  pid_t pid = create_and_start (fx);
  struct answer *wait = wait_sandbox (fx, 2);
  fx->n_tasks = 1;
  assert_false (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 0));
  id_call (fx, "ShutdownSandbox", "pod1", SHIM_OK);
  run_until_or_fail (fx->base, answered, wait);
  assert_int_equal (wait->code, SHIM_OK);
  assert_int_equal (fx->exit_requests, 0); /* a task is left */
  assert_false (sandbox_service_active (fx->sb));
  assert_true (run_until (fx->base, pid_reaped, &pid, 5000));
  assert_false (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 1));
  assert_true (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 0));

  fx->n_tasks = 0;
  id_call (fx, "ShutdownSandbox", "pod1", SHIM_OK);
  assert_int_equal (fx->exit_requests, 1);
}

/* Without a sandbox of ours, only a task containerd put into a sandbox (and so sends no
 * Shutdown for) ends the shim with its Delete. */
static void
test_exit_after_delete_of_sandboxed_task (void **state)
{
  struct fx *fx = *state;
  assert_false (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 0));
  cleanup_free char *marker = xasprintf ("%s/sandbox", fx->bundle);
  write_text (marker, "pod1");
  assert_false (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 1));
  assert_true (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 0));
  create (fx, "pod1", SHIM_OK);
  assert_false (sandbox_service_exit_after_delete (fx->sb, fx->bundle, 0));
}

int
main (int argc, char **argv)
{
  /* StartSandbox runs /proc/self/exe pause: that is this binary here. */
  if (argc > 1 && strcmp (argv[1], "pause") == 0)
    {
      shim_error_t err = NULL;
      return sandbox_pause_run (&err) < 0 ? 1 : 0;
    }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_unknown_sandbox, setup, teardown),
    cmocka_unit_test_setup_teardown (test_platform_and_metrics, setup, teardown),
    cmocka_unit_test_setup_teardown (test_start_wait_stop, setup, teardown),
    cmocka_unit_test_setup_teardown (test_gone_waits_do_not_pile_up, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pause_death_ends_wait, setup, teardown),
    cmocka_unit_test_setup_teardown (test_shutdown, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exit_after_delete_of_sandboxed_task, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
