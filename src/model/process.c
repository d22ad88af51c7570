#include "model/process.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "model/container.h"
#include "stdio/procio.h"

static const char *const state_names[PROCESS_N_STATES] = {
  [PROCESS_CREATED] = "created", [PROCESS_RUNNING] = "running", [PROCESS_PAUSED] = "paused",
  [PROCESS_STOPPED] = "stopped", [PROCESS_DELETED] = "deleted",
};

struct transition
{
  int code; /* SHIM_OK when legal */
  int next; /* next state when legal; -1: unchanged */
  const char *what; /* error text */
};

/* Refusals read and classify as the stock shim's: state-machine refusals are plain errors
 * there (Unknown on the wire), only a finished or deleted process is NotFound. */
#define OK(n)                                                                                      \
  {                                                                                                \
    SHIM_OK, n, NULL                                                                               \
  }
#define STAY                                                                                       \
  {                                                                                                \
    SHIM_OK, -1, NULL                                                                              \
  }
#define NO(c, w)                                                                                   \
  {                                                                                                \
    c, -1, w                                                                                       \
  }
#define BAD(w) NO (SHIM_UNKNOWN, w)
#define GONE(w) NO (SHIM_NOT_FOUND, w)

static const struct transition table[PROCESS_N_STATES][PROCESS_N_VERBS] = {
  [PROCESS_CREATED] = {
    [PROCESS_START] = OK (PROCESS_RUNNING),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = BAD ("cannot pause task in created state"),
    [PROCESS_RESUME] = BAD ("cannot resume task in created state"),
    [PROCESS_DELETE] = OK (PROCESS_DELETED),
    [PROCESS_EXEC] = STAY,
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = BAD ("cannot checkpoint a task in created state"),
    [PROCESS_RESIZE] = STAY,
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_RUNNING] = {
    [PROCESS_START] = BAD ("cannot start a running process"),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = OK (PROCESS_PAUSED),
    [PROCESS_RESUME] = BAD ("cannot resume a running process"),
    [PROCESS_DELETE] = BAD ("cannot delete a running process"),
    [PROCESS_EXEC] = STAY,
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = STAY,
    [PROCESS_RESIZE] = STAY,
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_PAUSED] = {
    [PROCESS_START] = BAD ("cannot start a paused process"),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = BAD ("cannot pause a paused container"),
    [PROCESS_RESUME] = OK (PROCESS_RUNNING),
    [PROCESS_DELETE] = BAD ("cannot delete a paused process"),
    [PROCESS_EXEC] = BAD ("cannot exec in a paused state"),
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = STAY,
    [PROCESS_RESIZE] = STAY,
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_STOPPED] = {
    [PROCESS_START] = BAD ("cannot start a stopped process"),
    [PROCESS_KILL] = GONE ("process already finished"),
    [PROCESS_PAUSE] = BAD ("cannot pause a stopped container"),
    [PROCESS_RESUME] = BAD ("cannot resume a stopped container"),
    [PROCESS_DELETE] = OK (PROCESS_DELETED),
    [PROCESS_EXEC] = BAD ("cannot exec in a stopped state"),
    [PROCESS_UPDATE] = BAD ("cannot update a stopped container"),
    [PROCESS_CHECKPOINT] = BAD ("cannot checkpoint a stopped container"),
    [PROCESS_RESIZE] = BAD ("cannot resize a stopped container"),
    [PROCESS_EXIT] = STAY,
  },
  [PROCESS_DELETED] = {
    [PROCESS_START] = BAD ("cannot start a deleted process"),
    [PROCESS_KILL] = GONE ("cannot kill a deleted process"),
    [PROCESS_PAUSE] = BAD ("cannot pause a deleted process"),
    [PROCESS_RESUME] = BAD ("cannot resume a deleted process"),
    [PROCESS_DELETE] = GONE ("cannot delete a deleted process"),
    [PROCESS_EXEC] = BAD ("cannot exec in a deleted state"),
    [PROCESS_UPDATE] = BAD ("cannot update a deleted process"),
    [PROCESS_CHECKPOINT] = BAD ("cannot checkpoint a deleted process"),
    [PROCESS_RESIZE] = BAD ("cannot resize a deleted process"),
    [PROCESS_EXIT] = STAY,
  },
};

const char *
process_state_name (enum process_state s)
{
  return (unsigned) s < PROCESS_N_STATES ? state_names[s] : "unknown";
}

int
process_check (enum process_state s, enum process_verb verb, shim_error_t *err)
{
  if ((unsigned) s >= PROCESS_N_STATES || (unsigned) verb >= PROCESS_N_VERBS)
    return shim_error_make (err, 0, SHIM_INTERNAL, "bad process state %d or verb %d", s, verb);
  const struct transition *t = &table[s][verb];
  if (t->code == SHIM_OK)
    return 0;
  return shim_error_make (err, 0, t->code, "%s", t->what);
}

enum process_state
process_next (enum process_state s, enum process_verb verb)
{
  if ((unsigned) s >= PROCESS_N_STATES || (unsigned) verb >= PROCESS_N_VERBS)
    return s;
  const struct transition *t = &table[s][verb];
  return t->code == SHIM_OK && t->next >= 0 ? (enum process_state) t->next : s;
}

void
process_move (struct process *p, enum process_verb verb)
{
  p->state = process_next (p->state, verb);
}

/* ---- the record ---- */

void
process_init (struct process *p, struct container *c, const char *exec_id)
{
  memset (p, 0, sizeof *p);
  p->container = c;
  p->exec_id = exec_id ? xstrdup (exec_id) : NULL;
  p->state = PROCESS_CREATED;
  TAILQ_INIT (&p->waiters);
}

void
process_release (struct process *p)
{
  /* No Wait is dropped unanswered: it gets what the process recorded, as a stock shim's Wait
   * returns once its process is gone. */
  process_answer_waiters (p);
  proc_io_free (p->io);
  free (p->exec_id);
  free (p->stdin_path);
  free (p->stdout_path);
  free (p->stderr_path);
  if (p->spec_path)
    unlink (p->spec_path);
  free (p->spec_path);
}

const char *
process_name (const struct process *p)
{
  return p->exec_id ? p->exec_id : p->container->id;
}

bool
process_is_init (const struct process *p)
{
  return p->exec_id == NULL;
}

void
process_record_exit (struct process *p, int status, const struct timespec *when)
{
  p->exited = true;
  p->exit_status = wait_status_to_exit_code (status);
  p->exited_at = *when;
  p->watch = NULL;
  process_move (p, PROCESS_EXIT);
}

void
process_record_failed_start (struct process *p)
{
  /* No process came to be: its Waits are answered as for an exit (255), with no event. */
  if (p->pid <= 0 && !p->exited)
    {
      /* Its stdio was never handed over: nothing to drain. */
      proc_io_free (p->io);
      p->io = NULL;
      struct timespec now = now_realtime ();
      process_record_exit (p, 255 << 8, &now);
    }
}

/* ---- parked Waits ---- */

void
process_add_waiter (struct process *p, const struct waiter *w)
{
  struct waiter *copy = xmalloc (sizeof *copy);
  *copy = *w;
  TAILQ_INSERT_TAIL (&p->waiters, copy, link);
}

static void
answer (struct process *p, struct waiter *w)
{
  TAILQ_REMOVE (&p->waiters, w, link);
  w->done (p->exit_status, &p->exited_at, w->arg);
  free (w);
}

void
process_answer_waiters (struct process *p)
{
  struct waiter *w;
  while ((w = TAILQ_FIRST (&p->waiters)))
    answer (p, w);
}

void
process_drop_gone_waiters (struct process *p)
{
  struct waiter *w, *tmp;
  TAILQ_FOREACH_SAFE (w, &p->waiters, link, tmp)
  if (w->gone && w->gone (w->arg))
    answer (p, w);
}
