#ifndef CSHIM_SHIM_H
#define CSHIM_SHIM_H

/* What the daemon's modules share, passed explicitly (no globals). */

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct reaper;
struct publisher;

struct shim
{
  struct event_base *base;
  struct reaper *reaper;
  struct publisher *publisher;
  const char *namespace;
  const char *id;
  bool debug;
  /* Asks the daemon to exit once pending events are published. */
  void (*request_exit) (struct shim *shim);
  /* Optional: Delete removed a container (its bundle still exists), remaining are left. */
  void (*task_deleted) (struct shim *shim, const char *bundle, size_t remaining);
  /* Optional: true while the shim holds a pod sandbox (Sandbox API) that Shutdown must not end. */
  bool (*sandbox_active) (struct shim *shim);
};

#endif
