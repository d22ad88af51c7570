#ifndef CSHIM_PROCIO_H
#define CSHIM_PROCIO_H

/* A process's stdio: containerd's FIFOs on one side, pipes handed to the runtime (and so to the
 * container) on the other, copied by the loop. Each stream is bounded (a pipe's capacity,
 * spliced without copying where possible): a slow or vanished reader stalls that stream only. */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct event_base;
struct proc_io;

struct proc_io_paths
{
  const char *stdin_path; /* "" or NULL: none */
  const char *stdout_path;
  const char *stderr_path;
  uint32_t uid, gid; /* owner of the container's pipe ends (0: leave as is) */
};

struct proc_io *proc_io_new (struct event_base *base, const struct proc_io_paths *paths,
                             shim_error_t *err);
void proc_io_free (struct proc_io *io);

/* The container's stdio fds for the runtime (SPAWN_FD_NULL where a stream is absent). */
void proc_io_runtime_fds (const struct proc_io *io, int fds[3]);
/* Closes the shim's copies of the container ends and starts copying. */
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
