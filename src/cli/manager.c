#include "cli/manager.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/buildinfo.h"
#include "cli/cmd.h"
#include "runtime/config.h"
#include "containerd/runtime/bootstrap/v1/bootstrap.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "platform/mount.h"
#include "base/pb.h"
#include "runtime/runtime.h"
#include "base/util.h"

#define SOCKET_DIR "/run/containerd/s"
#define UNIX_PREFIX "unix://"
#define GROUP_LABEL "io.containerd.runc.v2.group"
#define SANDBOX_LABEL "io.kubernetes.cri.sandbox-id"

/* Go's filepath.Clean for the absolute paths containerd uses: no empty or "." elements. */
static void
clean_path (char *p)
{
  char *out = p;
  for (char *in = p; *in;)
    {
      if (in[0] == '/' && (in[1] == '/' || (in[1] == '.' && (in[2] == '/' || in[2] == '\0'))))
        {
          in += in[1] == '/' ? 1 : 2;
          continue;
        }
      *out++ = *in++;
    }
  if (out > p + 1 && out[-1] == '/')
    out--;
  *out = '\0';
}

char *
manager_socket_address (const char *address, const char *namespace, const char *key)
{
  cleanup_free char *joined = xasprintf ("%s/%s/%s", address, namespace, key);
  clean_path (joined);
  char hex[SHA256_DIGEST_STRING_LENGTH];
  SHA256Data ((const uint8_t *) joined, strlen (joined), hex);
  return xasprintf (UNIX_PREFIX SOCKET_DIR "/%s", hex);
}

/* Parsing the whole spec is most of `start`'s own work (and specs from CRI run to tens of
 * KiB): a spec whose text names neither label, and has no \u escape that could spell one,
 * has no grouping key. */
static bool
may_name_a_label (const char *config_json)
{
  return strstr (config_json, GROUP_LABEL) || strstr (config_json, SANDBOX_LABEL)
         || strstr (config_json, "\\u");
}

char *
manager_group_key (const char *config_json, const char *id)
{
  if (config_json == NULL || !may_name_a_label (config_json))
    return xstrdup (id);
  cJSON *doc = cJSON_Parse (config_json);
  const cJSON *ann = cJSON_GetObjectItemCaseSensitive (doc, "annotations");
  const char *labels[] = { GROUP_LABEL, SANDBOX_LABEL };
  char *key = NULL;
  for (size_t i = 0; i < ARRAY_SIZE (labels) && key == NULL; i++)
    {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive (ann, labels[i]);
      if (cJSON_IsString (v) && v->valuestring[0])
        key = xstrdup (v->valuestring);
    }
  cJSON_Delete (doc);
  return key ? key : xstrdup (id);
}

static const char *
socket_path_of (const char *address)
{
  return strncmp (address, UNIX_PREFIX, strlen (UNIX_PREFIX)) == 0 ? address + strlen (UNIX_PREFIX)
                                                                   : address;
}

static int
fill_sockaddr (struct sockaddr_un *sa, const char *path, shim_error_t *err)
{
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof sa->sun_path)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "socket path too long: %s", path);
  strcpy (sa->sun_path, path);
  return 0;
}

/* True when a server accepts connections on path. */
static bool
socket_alive (const char *path)
{
  struct sockaddr_un sa;
  if (fill_sockaddr (&sa, path, NULL) < 0)
    return false;
  cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd >= 0 && connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0;
}

/* Returns a listening fd, 0 with *existing set when a live server already owns path. */
static int
listen_socket (const char *path, bool *existing, shim_error_t *err)
{
  struct sockaddr_un sa;
  if (fill_sockaddr (&sa, path, err) < 0)
    return -1;
  if (mkdir_p (SOCKET_DIR, 0711) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "mkdir %s", SOCKET_DIR);
  for (int attempt = 0; attempt < 2; attempt++)
    {
      cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0)
        return shim_error_make (err, errno, SHIM_UNKNOWN, "socket");
      mode_t old = umask (0177);
      int r = bind (fd, (struct sockaddr *) &sa, sizeof sa);
      umask (old);
      if (r == 0)
        {
          if (listen (fd, SOMAXCONN) < 0)
            return shim_error_make (err, errno, SHIM_UNKNOWN, "listen %s", path);
          return steal_fd (&fd);
        }
      if (errno != EADDRINUSE)
        return shim_error_make (err, errno, SHIM_UNKNOWN, "bind %s", path);
      /* Another `start` may be between its bind and listen: look twice before
       * calling the socket stale. */
      for (int i = 0; i < 3; i++)
        {
          if (socket_alive (path))
            {
              *existing = true;
              return 0;
            }
          usleep (20000);
        }
      unlink (path);
    }
  return shim_error_make (err, EADDRINUSE, SHIM_UNKNOWN, "bind %s", path);
}

/* The server: a fork of `start` that goes on as the server (no exec: one program start less
 * per container, ~0.8 ms of CPU), in its own session, with the listener on fd 3 and stdio on
 * /dev/null, so that containerd's wait for `start`'s output pipes ends when `start` exits.
 * `start` has no signal handlers, event loop nor log of its own the server would inherit. */
static pid_t
spawn_daemon (const struct shim_args *args, int listen_fd, manager_serve_fn serve, char *start_word,
              shim_error_t *err)
{
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "open /dev/null");
  fflush (NULL); /* nothing buffered is written twice */
  /* Blanked across the fork: the child may not run before `start` exits and it is reparented,
   * and its argv must not read `start` even then. */
  cleanup_free char *word = start_word ? xstrdup (start_word) : NULL;
  if (word)
    memset (start_word, 0, strlen (word));
  pid_t pid = fork ();
  int fork_errno = errno;
  if (word && pid != 0)
    memcpy (start_word, word, strlen (word));
  if (pid == 0)
    {
      setsid ();
      /* dup2 onto itself would keep O_CLOEXEC. */
      if ((listen_fd == 3 ? fcntl (3, F_SETFD, 0) : dup2 (listen_fd, 3)) < 0
          || dup2 (devnull, 0) < 0 || dup2 (devnull, 1) < 0 || dup2 (devnull, 2) < 0)
        _exit (127);
      closefrom (4);
      free (word);
      word = NULL;
      malloc_trim (0); /* what `start` allocated and freed is not the server's to keep */
      exit (serve (args));
    }
  close (devnull);
  if (pid < 0)
    return shim_error_make (err, fork_errno, SHIM_UNKNOWN, "fork");
  return pid;
}

/* The server's oom_score_adj is containerd's + 1, so the kernel picks it before containerd.
 * Root may lack CAP_SYS_RESOURCE: a refused write is no failure. */
static void
adjust_oom_score (pid_t daemon)
{
  cleanup_free char *text = NULL;
  cleanup_free char *src = xasprintf ("/proc/%d/oom_score_adj", (int) getppid ());
  if (read_file (src, 32, &text, NULL, NULL) < 0)
    return;
  int score = atoi (text);
  if (score >= 1000)
    return;
  cleanup_free char *dst = xasprintf ("/proc/%d/oom_score_adj", (int) daemon);
  cleanup_close int fd = open (dst, O_WRONLY | O_CLOEXEC);
  char buf[16];
  int n = snprintf (buf, sizeof buf, "%d", score + 1);
  if (fd >= 0)
    (void) !write (fd, buf, n);
}

/* containerd 2.3+ sends BootstrapParams instead of the options Any; both parse as either
 * (fields 1 and 2 are strings), so, as upstream does, a message whose instance id and
 * namespace are ours is taken as BootstrapParams and its first extension is the options. */
uint8_t *
manager_bootstrap_options (const struct shim_args *args, const uint8_t *data, size_t len,
                           size_t *out_len)
{
  cleanup_pbmsg ProtobufCMessage *m = protobuf_c_message_unpack (
      &containerd__runtime__bootstrap__v1__bootstrap_params__descriptor, NULL, len, data);
  const Containerd__Runtime__Bootstrap__V1__BootstrapParams *b = (const void *) m;
  if (b == NULL || strcmp (b->instance_id, args->id ? args->id : "") != 0
      || strcmp (b->namespace_, args->namespace ? args->namespace : "") != 0)
    return NULL;
  *out_len = 0;
  if (b->n_extensions == 0 || b->extensions[0]->value == NULL)
    return xcalloc (1, 1);
  return pb_pack (&b->extensions[0]->value->base, out_len);
}

/* Options on stdin are kept in the bundle: Create may carry only task options, and the
 * runtime choice must not be lost. True when stdin was containerd 2.3's BootstrapParams. */
static bool
save_start_options (const struct shim_args *args, const char *bundle)
{
  cleanup_free char *data = NULL;
  size_t len = 0;
  if (isatty (STDIN_FILENO) || read_file ("/dev/stdin", 1u << 20, &data, &len, NULL) < 0
      || len == 0)
    return false;
  size_t opts_len = len;
  cleanup_free uint8_t *opts
      = manager_bootstrap_options (args, (const uint8_t *) data, len, &opts_len);
  cleanup_free char *path = xasprintf ("%s/%s", bundle, CONFIG_START_OPTIONS_FILE);
  if (opts_len > 0)
    write_file_atomic (path, opts ? (const char *) opts : data, opts_len, 0600, NULL);
  return opts != NULL;
}

uint8_t *
manager_start_reply (const char *address, bool bootstrap, enum buildinfo_containerd containerd,
                     size_t *len)
{
  if (bootstrap)
    {
      Containerd__Runtime__Bootstrap__V1__BootstrapResult r
          = CONTAINERD__RUNTIME__BOOTSTRAP__V1__BOOTSTRAP_RESULT__INIT;
      r.version = MANAGER_TASK_API_V3;
      r.address = (char *) address;
      r.protocol = (char *) "ttrpc";
      return pb_pack (&r.base, len);
    }
  if (containerd != BUILDINFO_CONTAINERD_2)
    {
      *len = strlen (address);
      return (uint8_t *) xstrdup (address);
    }
  cJSON *doc = cJSON_CreateObject ();
  cJSON_AddNumberToObject (doc, "version", MANAGER_TASK_API_V3);
  cJSON_AddStringToObject (doc, "address", address);
  cJSON_AddStringToObject (doc, "protocol", "ttrpc");
  char *text = cJSON_PrintUnformatted (doc);
  cJSON_Delete (doc);
  if (text == NULL)
    abort (); /* only on OOM */
  *len = strlen (text);
  return (uint8_t *) text;
}

/* The containerd that runs `start`: -publish-binary is its own executable; without it, our
 * parent's. */
static enum buildinfo_containerd
start_caller (const struct shim_args *args)
{
  if (args->publish_binary && args->publish_binary[0])
    return buildinfo_containerd_of (args->publish_binary);
  cleanup_free char *exe = xasprintf ("/proc/%d/exe", (int) getppid ());
  return buildinfo_containerd_of (exe);
}

/* ShimCgroup: the server joins that cgroup in every hierarchy where it exists (v1 mounts
 * under /sys/fs/cgroup, or the v2 root). Best effort, like the stock shim's. */
static void
join_shim_cgroup (const char *bundle, pid_t pid)
{
  struct task_options opts;
  config_init (&opts);
  if (config_apply_start_options (&opts, bundle, NULL) == 0 && opts.shim_cgroup)
    {
      const char *hierarchies[]
          = { "",        "cpu,cpuacct", "memory",           "pids",       "blkio",   "devices",
              "freezer", "cpuset",      "net_cls,net_prio", "perf_event", "hugetlb", "systemd",
              "unified" };
      for (size_t i = 0; i < ARRAY_SIZE (hierarchies); i++)
        {
          cleanup_free char *procs
              = xasprintf ("/sys/fs/cgroup/%s%s%s/cgroup.procs", hierarchies[i],
                           hierarchies[i][0] ? "/" : "", opts.shim_cgroup);
          cleanup_close int fd = open (procs, O_WRONLY | O_CLOEXEC);
          if (fd >= 0)
            dprintf (fd, "%d", (int) pid);
        }
    }
  config_release (&opts);
}

int
manager_start (const struct shim_args *args, manager_serve_fn serve, char *start_word,
               shim_error_t *err)
{
  const char *bundle = args->bundle ? args->bundle : ".";
  char *spec = config_read_spec (bundle);
  cleanup_free char *key = manager_group_key (spec, args->id);
  free (spec); /* before the fork: the server starts without it */
  cleanup_free char *address = manager_socket_address (args->address, args->namespace, key);
  bool bootstrap = save_start_options (args, bundle);

  bool existing = false;
  cleanup_close int fd = listen_socket (socket_path_of (address), &existing, err);
  if (fd < 0)
    return -1;
  if (!existing)
    {
      pid_t pid = spawn_daemon (args, fd, serve, start_word, err);
      if (pid < 0)
        {
          unlink (socket_path_of (address));
          return -1;
        }
      adjust_oom_score (pid);
      join_shim_cgroup (bundle, pid);
    }
  cleanup_free char *address_file = xasprintf ("%s/address", bundle);
  if (write_file_atomic (address_file, address, strlen (address), 0644, err) < 0)
    return -1;
  size_t len = 0;
  cleanup_free uint8_t *reply = manager_start_reply (
      address, bootstrap, bootstrap ? BUILDINFO_UNKNOWN : start_caller (args), &len);
  fwrite (reply, 1, len, stdout);
  fflush (stdout);
  return 0;
}

/* ---- delete: the server is gone; clean up with what the bundle recorded ---- */

static void
remove_dead_socket (const char *bundle)
{
  cleanup_free char *path = xasprintf ("%s/address", bundle);
  cleanup_free char *address = NULL;
  if (read_file (path, 4096, &address, NULL, NULL) < 0)
    return;
  const char *sock = socket_path_of (address);
  if (strncmp (sock, SOCKET_DIR "/", strlen (SOCKET_DIR) + 1) == 0 && !socket_alive (sock))
    unlink (sock);
}

static pid_t
read_init_pid (const char *bundle)
{
  cleanup_free char *path = xasprintf ("%s/init.pid", bundle);
  cleanup_free char *text = NULL;
  pid_t pid = 0;
  if (read_file (path, 64, &text, NULL, NULL) == 0)
    runtime_parse_pid (text, &pid, NULL);
  return pid;
}

static void
write_delete_response (pid_t pid)
{
  struct timespec now = now_realtime ();
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &now);
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  resp.pid = pid;
  resp.exit_status = 128 + SIGKILL;
  resp.exited_at = &ts;
  size_t len;
  cleanup_free uint8_t *buf = pb_pack (&resp.base, &len);
  fwrite (buf, 1, len, stdout);
  fflush (stdout);
}

int
manager_delete (const struct shim_args *args, shim_error_t *err)
{
  (void) err;
  cleanup_free char *cwd = getcwd (NULL, 0);
  const char *bundle = args->bundle && args->bundle[0] ? args->bundle : cwd;
  struct task_options opts;
  config_init (&opts);
  cleanup_error shim_error_t load_err = NULL;
  /* A bundle without config.json never held a container: the shim sandboxer's own. */
  cleanup_free char *spec = xasprintf ("%s/config.json", bundle);
  if (config_load (&opts, bundle, &load_err) < 0 && access (spec, F_OK) == 0)
    fprintf (stderr, "cshim delete: %s (using defaults)\n", load_err->msg);

  /* containerd runs `delete` after every shim disconnect, on the critical path of `ctr run
   * --rm`: when the runtime keeps no state for the container there is nothing to force. */
  cleanup_free char *state = xasprintf ("%s/%s/%s", opts.runtime.root, args->namespace, args->id);
  if (access (state, F_OK) == 0)
    {
      cleanup_free char *log_path = xasprintf ("%s/log.json", bundle);
      struct runtime rt
          = { .cfg = &opts.runtime, .namespace = args->namespace, .log_path = log_path };
      struct runtime_call call = { .verb = RUNTIME_DELETE, .id = args->id, .force = true };
      cleanup_strv char **argv = runtime_argv (&rt, &call);
      int rc = cmd_run (argv, bundle, opts.runtime.timeout_ms, NULL, NULL);
      if (rc != 0)
        fprintf (stderr, "cshim delete: %s delete --force %s exited with %d\n", argv[0], args->id,
                 rc);
    }
  config_release (&opts);

  cleanup_free char *rootfs = xasprintf ("%s/rootfs", bundle);
  cleanup_error shim_error_t umount_err = NULL;
  if (mount_unmount_all (rootfs, &umount_err) < 0)
    fprintf (stderr, "cshim delete: %s\n", umount_err->msg);
  remove_dead_socket (bundle);
  write_delete_response (read_init_pid (bundle));
  return 0;
}
