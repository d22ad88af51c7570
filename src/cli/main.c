/* containerd-shim-cshim-v2: `start`, `delete`, `-v`, or (no action) the server. */

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/info.h"
#include "base/log.h"
#include "cli/manager.h"
#include "runtime/profile.h"
#include "wire/publisher.h"
#include "platform/reaper.h"
#include "platform/sandbox_pause.h"
#include "service/sandbox_service.h"
#include "service/shim.h"
#include "service/task_service.h"
#include "wire/ttrpc_server.h"
#include "base/ev.h"
#include "base/util.h"

#define LISTEN_FD 3
#define EXIT_DRAIN_MS 3000
/* A server with no container and no client for this long exits: containerd went away between
 * `start` and Create, or never sent Shutdown. */
#define IDLE_EXIT_S 60
/* How long a shim whose end containerd asked for waits for containerd to close its
 * connections. */
#define EXIT_LINGER_MS 2000

struct daemon
{
  struct shim shim;
  struct event *sig_term, *sig_int, *idle;
  struct task_service *tasks;
  struct sandbox_service *sandbox;
  struct ttrpc_server *server;
  struct event *linger;
  bool was_idle;
  bool exiting;
};

static void
usage (const char *argv0)
{
  fprintf (stderr,
           "usage: %s [-namespace NS] [-id ID] [-address ADDR] [-publish-binary BIN]\n"
           "       [-bundle DIR] [-socket PATH] [-debug] [-v] [-info] [start|delete]\n",
           argv0);
}

static void
exit_now_cb (void *arg)
{
  struct daemon *d = arg;
  event_base_loopexit (d->shim.base, NULL);
}

static void
request_exit (struct shim *shim)
{
  struct daemon *d = (struct daemon *) shim;
  if (d->exiting)
    return;
  d->exiting = true;
  log_info ("shutting down");
  publisher_drain (shim->publisher, EXIT_DRAIN_MS, exit_now_cb, d);
}

static void
signal_cb (evutil_socket_t sig, short what, void *arg)
{
  struct daemon *d = arg;
  (void) what;
  log_info ("received signal %d", (int) sig);
  request_exit (&d->shim);
}

static void
idle_cb (evutil_socket_t fd, short what, void *arg)
{
  struct daemon *d = arg;
  (void) fd;
  (void) what;
  bool idle = task_service_container_count (d->tasks) == 0
              && ttrpc_server_connection_count (d->server) == 0
              && !sandbox_service_active (d->sandbox);
  /* Idle for two checks in a row, so a client between two calls is not cut off. */
  if (idle && d->was_idle)
    {
      log_info ("no container and no client for %d s", IDLE_EXIT_S);
      request_exit (&d->shim);
    }
  d->was_idle = idle;
}

static size_t
task_count (void *arg)
{
  return task_service_container_count (((struct daemon *) arg)->tasks);
}

/* The last connection closed, or EXIT_LINGER_MS passed. */
static void
linger_cb (evutil_socket_t fd, short what, void *arg)
{
  struct daemon *d = arg;
  (void) fd;
  (void) what;
  ttrpc_server_on_close (d->server, NULL, NULL);
  request_exit (&d->shim);
}

static void
connection_closed (size_t remaining, void *arg)
{
  struct daemon *d = arg;
  if (remaining == 0)
    event_active (d->linger, EV_TIMEOUT, 0);
}

/* After the reply that ends a sandbox's shim, containerd closes its connection itself;
 * leaving first could reset it under a request still being written, and lose the reply. */
static void
exit_when_disconnected (void *arg)
{
  struct daemon *d = arg;
  if (d->linger)
    return;
  d->linger = xevtimer_new (d->shim.base, linger_cb, d);
  struct timeval tv = timeval_from_ms (EXIT_LINGER_MS);
  event_add (d->linger, &tv);
  ttrpc_server_on_close (d->server, connection_closed, d);
  connection_closed (ttrpc_server_connection_count (d->server), d);
}

/* containerd 2.x sends no Shutdown after deleting a task of a sandbox. */
static void
task_deleted (struct shim *shim, const char *bundle, size_t remaining)
{
  struct daemon *d = (struct daemon *) shim;
  if (sandbox_service_exit_after_delete (d->sandbox, bundle, remaining))
    {
      log_info ("last task of the sandbox deleted");
      exit_when_disconnected (d);
    }
}

static bool
sandbox_active (struct shim *shim)
{
  return sandbox_service_active (((struct daemon *) shim)->sandbox);
}

/* The Sandbox API next to the Task API, on the same socket. */
static void
add_sandbox_service (struct daemon *d)
{
  const struct sandbox_hooks hooks = { task_count, exit_when_disconnected };
  d->sandbox = sandbox_service_new (&d->shim, &hooks, d);
  size_t n;
  const struct ttrpc_method *methods = sandbox_service_methods (&n);
  ttrpc_server_add_service (d->server, methods, n, d->sandbox);
  d->shim.task_deleted = task_deleted;
  d->shim.sandbox_active = sandbox_active;
}

/* The listener comes as fd 3 from `start`, or is bound here with -socket. */
static int
listener (const struct shim_args *a, char **path, shim_error_t *err)
{
  struct sockaddr_un sa;
  socklen_t len = sizeof sa;
  if (!a->socket && getsockname (LISTEN_FD, (struct sockaddr *) &sa, &len) == 0
      && sa.sun_family == AF_UNIX)
    {
      *path = xstrdup (sa.sun_path);
      set_cloexec (LISTEN_FD, true);
      return LISTEN_FD;
    }
  if (!a->socket)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "no listening socket on fd 3");
  memset (&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", a->socket);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink (a->socket);
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (fd, SOMAXCONN) < 0)
    {
      int saved = errno;
      if (fd >= 0)
        close (fd);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "listen on %s", a->socket);
    }
  *path = xstrdup (a->socket);
  return fd;
}

/* Everything the server needs before its loop; the listener is already accepting, so a
 * connecting containerd waits only for this. */
static int
daemon_init (struct daemon *d, const struct shim_args *a, int fd, shim_error_t *err)
{
  d->shim.base = event_base_new ();
  d->shim.namespace = a->namespace ? a->namespace : "default";
  d->shim.id = a->id;
  d->shim.debug = a->debug;
  d->shim.request_exit = request_exit;
  d->shim.reaper = reaper_new (d->shim.base, err);
  if (d->shim.reaper == NULL)
    return -1;
  d->shim.publisher = publisher_new (d->shim.base, getenv ("TTRPC_ADDRESS"));
  publisher_use_binary (d->shim.publisher, d->shim.reaper, a->publish_binary, a->address);
  d->tasks = task_service_new (&d->shim);
  size_t n_methods;
  const struct ttrpc_method *methods = task_service_methods (&n_methods);
  d->server = ttrpc_server_new (d->shim.base, fd, methods, n_methods, d->tasks, err);
  if (d->server == NULL)
    return -1;
  add_sandbox_service (d);
  struct timeval idle_tv = { IDLE_EXIT_S / 2, 0 };
  d->idle = xevent_new (d->shim.base, -1, EV_PERSIST, idle_cb, d);
  event_add (d->idle, &idle_tv);
  d->sig_term = xevsignal_new (d->shim.base, SIGTERM, signal_cb, d);
  d->sig_int = xevsignal_new (d->shim.base, SIGINT, signal_cb, d);
  event_add (d->sig_term, NULL);
  event_add (d->sig_int, NULL);
  return 0;
}

static void
daemon_free (struct daemon *d)
{
  ttrpc_server_free (d->server);
  sandbox_service_free (d->sandbox);
  task_service_free (d->tasks);
  publisher_free (d->shim.publisher);
  event_freep (&d->sig_term);
  event_freep (&d->sig_int);
  event_freep (&d->idle);
  event_freep (&d->linger);
  profile_cache_clear ();
  reaper_free (d->shim.reaper);
  event_base_free (d->shim.base);
}

static int
run_daemon (const struct shim_args *a, shim_error_t *err)
{
  struct daemon d = { 0 };
  log_init (a->namespace, a->id, a->debug);
  cleanup_error shim_error_t log_err = NULL;
  if (log_open_fifo ("log", &log_err) < 0)
    log_error_release (LOG_LEVEL_WARN, "shim log", &log_err);
  signal (SIGPIPE, SIG_IGN);

  cleanup_free char *sock_path = NULL;
  int fd = listener (a, &sock_path, err);
  if (fd < 0)
    return -1;
  int ret = daemon_init (&d, a, fd, err);
  if (ret == 0)
    {
      log_info ("serving on %s", sock_path);
      event_base_dispatch (d.shim.base);
      unlink (sock_path);
    }
  daemon_free (&d);
  return ret;
}

static void
print_version (const char *argv0)
{
  printf ("%s:\n  Version:  %s\n  Runtime:  any OCI runtime CLI (runc, crun, youki)\n", argv0,
          CSHIM_VERSION);
}

/* The server: from `start`'s fork, or run directly (no action; -socket or fd 3). */
static int
serve (const struct shim_args *a)
{
  cleanup_error shim_error_t err = NULL;
  if (run_daemon (a, &err) == 0)
    return 0;
  log_error ("%s", err ? err->msg : "failed");
  return 1;
}

int
main (int argc, char **argv)
{
  struct shim_args a = { 0 };
  const char *action = NULL;
  bool version = false, info = false;
  if (args_parse (argc, argv, &a, &action, &version, &info) < 0)
    {
      usage (argv[0]);
      return 2;
    }
  if (version)
    {
      print_version (argv[0]);
      return 0;
    }
  if (action == NULL && !info)
    return serve (&a);
  cleanup_error shim_error_t err = NULL;
  int ret;
  if (info)
    ret = info_run (&err);
  else if (strcmp (action, "start") == 0)
    {
      ret = manager_start (&a, serve, (char *) action /* it points into argv */, &err);
    }
  else if (strcmp (action, "delete") == 0)
    ret = manager_delete (&a, &err);
  else if (strcmp (action, "pause") == 0)
    ret = sandbox_pause_run (&err);
  else
    {
      fprintf (stderr, "unknown action `%s`\n", action);
      return 2;
    }
  if (ret < 0)
    {
      fprintf (stderr, "%s: %s\n", info ? "info" : action, err ? err->msg : "failed");
      return 1;
    }
  return 0;
}
