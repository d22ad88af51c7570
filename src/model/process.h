#ifndef CSHIM_PROCESS_H
#define CSHIM_PROCESS_H

/* A process of a container (its init or an exec) and its lifecycle as one table: which verb
 * is legal in which state, the state it leads to, and the exact error otherwise: the stock
 * shim's code and text. Every state change goes through process_move(). */

#include <bsd/sys/queue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/error.h"

struct container;
struct proc_io;
struct reaper_watch;

enum process_state
{
  PROCESS_CREATED,
  PROCESS_RUNNING,
  PROCESS_PAUSED,
  PROCESS_STOPPED,
  PROCESS_DELETED,
  PROCESS_N_STATES,
};

enum process_verb
{
  PROCESS_START,
  PROCESS_KILL,
  PROCESS_PAUSE,
  PROCESS_RESUME,
  PROCESS_DELETE,
  PROCESS_EXEC, /* exec a new process in this (init) process's container */
  PROCESS_UPDATE,
  PROCESS_CHECKPOINT,
  PROCESS_RESIZE, /* ResizePty */
  PROCESS_EXIT, /* the process was reaped */
  PROCESS_N_VERBS,
};

/* A parked Wait: done answers it with the exit once that is published. gone says whether its
 * caller has left (NULL: never), so reconnecting clients cannot pile Waits up. */
struct waiter
{
  TAILQ_ENTRY (waiter) link;
  void (*done) (int exit_status, const struct timespec *exited_at, void *arg);
  bool (*gone) (void *arg);
  void *arg;
};
TAILQ_HEAD (waiter_list, waiter);

struct process
{
  TAILQ_ENTRY (process) link; /* in the container's exec list */
  struct container *container;
  char *exec_id; /* NULL for the init process */
  enum process_state state;
  pid_t pid;
  bool terminal;
  char *stdin_path, *stdout_path, *stderr_path;
  char *spec_path; /* exec: process spec file handed to the runtime */
  struct proc_io *io;
  struct reaper_watch *watch;
  /* When the runtime call that made it started (CLOCK_MONOTONIC ms): an exit the reaper cached
   * before then is an earlier process's whose pid was reused. */
  uint64_t spawned_ms;
  bool starting; /* Start's runtime call in flight: an exit waits for its start event */
  unsigned killing; /* runtime kill calls in flight: an exit waits for their answers */
  bool started; /* TaskStart / TaskExecStarted published */
  bool exited; /* reaped */
  bool exit_published; /* TaskExit queued, waiters answered */
  int exit_status;
  struct timespec exited_at;
  struct waiter_list waiters;
};
TAILQ_HEAD (process_list, process);

const char *process_state_name (enum process_state s);

/* 0 if verb is legal in state s, else < 0 with err set. */
int process_check (enum process_state s, enum process_verb verb, shim_error_t *err);
/* State after verb succeeded in s (s itself for verbs that do not move it). */
enum process_state process_next (enum process_state s, enum process_verb verb);
/* Moves p as verb does, once the verb is known to be legal: checked with process_check before
 * its runtime call, moved when that succeeded. */
void process_move (struct process *p, enum process_verb verb);

void process_init (struct process *p, struct container *c, const char *exec_id);
/* Answers parked Waits with what p recorded, frees its strings and stdio. */
void process_release (struct process *p);
/* Name used for a process in messages: the exec id or the container id. */
const char *process_name (const struct process *p);
bool process_is_init (const struct process *p);
/* Records a reaped exit and moves the process to STOPPED. */
void process_record_exit (struct process *p, int status, const struct timespec *when);
/* The runtime could not start p. If no process exists, Waits get status 255 (no TaskExit: there
 * was no TaskStart). */
void process_record_failed_start (struct process *p);
void process_add_waiter (struct process *p, const struct waiter *w);
/* Answers every parked Wait with p's recorded exit. */
void process_answer_waiters (struct process *p);
/* Answers the parked Waits whose caller has gone. */
void process_drop_gone_waiters (struct process *p);

#endif
