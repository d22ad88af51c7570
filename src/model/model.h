#ifndef CSHIM_MODEL_H
#define CSHIM_MODEL_H

/* The active container and process model: it owns the whole task lifecycle. For each verb it
 * checks the process table, runs the runtime, watches the pid, orders exits (an exit after its
 * start event and after its output is drained, the init's after every exec's; kill --all and
 * the OOM check on an init's exit), parks Waits and tears containers down. It names no wire
 * type: what happens is reported through struct model_events, and each verb completes through
 * its done callback.
 *
 * Who owns an error: a done callback (and a Wait's) receives an error it owns; it releases it
 * or hands it on (ttrpc_call_fail takes it). err is NULL on success. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/error.h"
#include "model/process.h"
#include "runtime/config.h"
#include "runtime/verbs.h"

struct cgroup;
struct event_base;
struct mount_spec;
struct model;
struct reaper;

/* What the model reports, in the order the Task API publishes it. Each gets arg. exec_id is
 * NULL for a container's init. */
struct model_events
{
  void (*exec_added) (void *arg, const char *id, const char *exec_id);
  void (*started) (void *arg, const char *id, const char *exec_id, pid_t pid);
  void (*oom) (void *arg, const char *id);
  void (*exited) (void *arg, const char *id, const char *exec_id, pid_t pid, int status,
                  const struct timespec *at);
  void (*paused) (void *arg, const char *id);
  void (*resumed) (void *arg, const char *id);
  void (*checkpointed) (void *arg, const char *id, const char *image_path);
  void (*deleted) (void *arg, const char *id, pid_t pid, int status, const struct timespec *at);
  /* Optional: a container was removed after its Delete (its bundle still exists). */
  void (*removed) (void *arg, const char *bundle, size_t remaining);
};

struct model_config
{
  struct event_base *base;
  struct reaper *reaper;
  const char *namespace;
  const struct model_events *events;
  void *events_arg;
};

/* A verb's answer. pid: create, start, delete; exit_status and exited_at: delete. */
struct model_result
{
  pid_t pid;
  int exit_status;
  struct timespec exited_at;
  /* Pids: the container's processes, exec_ids[i] naming the exec of pids[i] (NULL if none). */
  const pid_t *pids;
  const char *const *exec_ids;
  size_t n_pids;
};

/* res is NULL on failure; see the top for who owns err. */
typedef void (*model_done_fn) (const struct model_result *res, shim_error_t err, void *arg);

struct model *model_new (const struct model_config *cfg);
/* Shutdown: running and queued operations are failed Unavailable, containers torn down. */
void model_free (struct model *m);
size_t model_container_count (const struct model *m);
/* 0 if id names no container yet, else AlreadyExists in err: what Create refuses. */
int model_check_new (const struct model *m, const char *id, shim_error_t *err);
/* 0 if container id exists, else NotFound in err ("container not created"). */
int model_check_exists (const struct model *m, const char *id, shim_error_t *err);
/* The init pid of container id, 0 if none. */
pid_t model_init_pid (const struct model *m, const char *id);

struct model_create
{
  const char *id;
  const char *bundle; /* absolute */
  const char *stdin_path, *stdout_path, *stderr_path;
  bool terminal;
  const char *checkpoint; /* restore from this image at Start; NULL or "": none */
  const struct mount_spec *rootfs;
  size_t n_rootfs;
  struct task_options *opts; /* decoded options: moved into the container (left initialized) */
};
/* Creates container req->id (the runtime's create, or, for a restore, nothing until Start). */
void model_create (struct model *m, const struct model_create *req, model_done_fn done, void *arg);

struct model_exec
{
  const char *id, *exec_id;
  const char *stdin_path, *stdout_path, *stderr_path;
  bool terminal;
  const char *spec_json; /* the process spec as the runtime reads it */
};
/* 0 if an exec named exec_id may be added to container id now. */
int model_exec_check (struct model *m, const char *id, const char *exec_id, shim_error_t *err);
/* Records the exec (the runtime runs at Start) and reports exec_added. */
int model_exec (struct model *m, const struct model_exec *req, shim_error_t *err);

void model_start (struct model *m, const char *id, const char *exec_id, model_done_fn done,
                  void *arg);
void model_delete (struct model *m, const char *id, const char *exec_id, model_done_fn done,
                   void *arg);
/* Not queued: a stuck lifecycle operation never blocks a kill. */
void model_kill (struct model *m, const char *id, const char *exec_id, int signal, bool all,
                 model_done_fn done, void *arg);
void model_pids (struct model *m, const char *id, model_done_fn done, void *arg);
/* The pids in the runtime's `ps --format json` output (a JSON array of numbers; entries that
 * are no pid are skipped). Pure; the caller frees *pids. */
int model_parse_pids (const char *out, pid_t **pids, size_t *n_pids, shim_error_t *err);
/* verb: PROCESS_PAUSE, PROCESS_RESUME or PROCESS_UPDATE (resources: JSON of LinuxResources,
 * given as the Any's type URL and value, which is checked when the update runs). */
struct model_resources
{
  const char *type_url;
  const void *data;
  size_t len;
};
void model_control (struct model *m, const char *id, enum process_verb verb,
                    const struct model_resources *resources, model_done_fn done, void *arg);

struct model_checkpoint
{
  const char *path; /* the request's image path; wins over opts.image_path */
  struct runtime_criu criu; /* image_path, work_path from the options; "" or NULL: default */
  bool exit; /* stop the container once checkpointed */
};
void model_checkpoint (struct model *m, const char *id, const struct model_checkpoint *req,
                       model_done_fn done, void *arg);

/* done gets the exit once it is published (at once if it was); NULL with err if there is no
 * such process. gone (optional) says whether the caller left while parked. */
int model_wait (struct model *m, const char *id, const char *exec_id, const struct waiter *w,
                shim_error_t *err);

struct model_state
{
  const char *id; /* the exec id, or the container id for the init */
  const char *bundle;
  pid_t pid;
  enum process_state state; /* as State reports it: an exec of a paused container is paused */
  const char *stdin_path, *stdout_path, *stderr_path;
  bool terminal;
  int exit_status;
  struct timespec exited_at;
};
int model_state (struct model *m, const char *id, const char *exec_id, struct model_state *out,
                 shim_error_t *err);
int model_close_stdin (struct model *m, const char *id, const char *exec_id, shim_error_t *err);
int model_resize (struct model *m, const char *id, const char *exec_id, unsigned width,
                  unsigned height, shim_error_t *err);
/* The init's cgroups, for Stats (resolved on first use). */
struct cgroup *model_cgroup (struct model *m, const char *id, shim_error_t *err);

#endif
