#ifndef CSHIM_PROCIO_H
#define CSHIM_PROCIO_H

/* A process's stdio: containerd's FIFOs on one side, pipes handed to the runtime (and so to the
 * container) on the other, copied by the loop. Each stream is bounded (a pipe's capacity,
 * spliced without copying where possible): a slow or vanished reader stalls that stream only. */

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "base/error.h"

struct event_base;
struct proc_io;

struct reaper;

struct proc_io_config
{
  const char *stdin_path; /* "" or NULL: none */
  const char *stdout_path; /* FIFO path, fifo://, file://, binary:// or binary-v2:// */
  const char *stderr_path;
  bool terminal; /* a PTY through the runtime's console socket */
  bool drop_when_full; /* a full reader drops output instead of stalling the writer */
  uint32_t uid, gid; /* owner of the container's pipe ends (0: leave as is) */
  struct reaper *reaper; /* for a logging binary */
  const char *namespace; /* passed to a logging binary */
  const char *id;
};

struct proc_io *proc_io_new (struct event_base *base, const struct proc_io_config *cfg,
                             shim_error_t *err);
/* --console-socket for the runtime, NULL without a terminal. */
const char *proc_io_console_socket (const struct proc_io *io);
/* cb (with an error if the logging binary failed to start) once the process's IO is ready to
 * be handed to the runtime; at once when there is nothing to wait for. */
typedef void (*proc_io_ready_cb) (shim_error_t err, void *arg);
void proc_io_when_ready (struct proc_io *io, proc_io_ready_cb cb, void *arg);
/* ResizePty: TIOCSWINSZ on the master; a no-op without a terminal. */
int proc_io_resize (struct proc_io *io, unsigned width, unsigned height, shim_error_t *err);
void proc_io_free (struct proc_io *io);

/* The container's stdio fds for the runtime (SPAWN_FD_NULL where a stream is absent). */
void proc_io_runtime_fds (const struct proc_io *io, int fds[3]);
/* Before proc_io_start(): what the runtime wrote to the process's stderr pipe (a failed create
 * or exec writes its own complaint there, since the process's stdio is the runtime's).
 * NULL when nothing is there. */
char *proc_io_take_stderr (struct proc_io *io);
/* Closes the shim's copies of the container ends and starts copying. Called once the runtime
 * call that hands the stdio to the process has succeeded. */
void proc_io_start (struct proc_io *io);
/* cb runs once both output streams are finished (EOF, error or drain deadline). */
void proc_io_on_drained (struct proc_io *io, void (*cb) (void *arg), void *arg);
bool proc_io_drained (const struct proc_io *io);
/* The process exited: whatever still holds its output gets drain_ms to finish, then the
 * streams are closed so readers see EOF. */
void proc_io_process_exited (struct proc_io *io, unsigned drain_ms);
/* Drops the keep-alive writer of stdin so the container sees EOF once clients close theirs. */
void proc_io_close_stdin (struct proc_io *io);

#endif
