#include "process.h"

#include <stddef.h>

#include "util.h"

static const char *const state_names[PROCESS_N_STATES] = {
  [PROCESS_CREATED] = "created", [PROCESS_RUNNING] = "running", [PROCESS_PAUSED] = "paused",
  [PROCESS_STOPPED] = "stopped", [PROCESS_DELETED] = "deleted",
};

static const char *const verb_names[PROCESS_N_VERBS] = {
  [PROCESS_START] = "start",   [PROCESS_KILL] = "kill",     [PROCESS_PAUSE] = "pause",
  [PROCESS_RESUME] = "resume", [PROCESS_DELETE] = "delete", [PROCESS_EXEC] = "exec",
  [PROCESS_UPDATE] = "update", [PROCESS_CHECKPOINT] = "checkpoint", [PROCESS_EXIT] = "exit",
};

struct transition
{
  int code;          /* SHIM_OK when legal */
  int next;          /* next state when legal; -1: unchanged */
  const char *what;  /* error text, formatted with the process id when it has %s */
};

#define OK(n) { SHIM_OK, n, NULL }
#define STAY { SHIM_OK, -1, NULL }
#define NO(c, w) { c, -1, w }
#define BAD(w) NO (SHIM_FAILED_PRECONDITION, w)
#define GONE NO (SHIM_NOT_FOUND, "process %s already finished")

static const struct transition table[PROCESS_N_STATES][PROCESS_N_VERBS] = {
  [PROCESS_CREATED] = {
    [PROCESS_START] = OK (PROCESS_RUNNING),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = BAD ("cannot pause task %s in created state"),
    [PROCESS_RESUME] = BAD ("cannot resume task %s in created state"),
    [PROCESS_DELETE] = OK (PROCESS_DELETED),
    [PROCESS_EXEC] = STAY,
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = BAD ("cannot checkpoint task %s in created state"),
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_RUNNING] = {
    [PROCESS_START] = BAD ("cannot start a running process %s"),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = OK (PROCESS_PAUSED),
    [PROCESS_RESUME] = BAD ("cannot resume a running process %s"),
    [PROCESS_DELETE] = BAD ("cannot delete a running process %s"),
    [PROCESS_EXEC] = STAY,
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = STAY,
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_PAUSED] = {
    [PROCESS_START] = BAD ("cannot start a paused process %s"),
    [PROCESS_KILL] = STAY,
    [PROCESS_PAUSE] = BAD ("cannot pause a paused process %s"),
    [PROCESS_RESUME] = OK (PROCESS_RUNNING),
    [PROCESS_DELETE] = BAD ("cannot delete a paused process %s"),
    [PROCESS_EXEC] = BAD ("cannot exec in a paused container %s"),
    [PROCESS_UPDATE] = STAY,
    [PROCESS_CHECKPOINT] = STAY,
    [PROCESS_EXIT] = OK (PROCESS_STOPPED),
  },
  [PROCESS_STOPPED] = {
    [PROCESS_START] = BAD ("cannot start a stopped process %s"),
    [PROCESS_KILL] = GONE,
    [PROCESS_PAUSE] = BAD ("cannot pause a stopped process %s"),
    [PROCESS_RESUME] = BAD ("cannot resume a stopped process %s"),
    [PROCESS_DELETE] = OK (PROCESS_DELETED),
    [PROCESS_EXEC] = BAD ("container %s init process is not running"),
    [PROCESS_UPDATE] = BAD ("cannot update a stopped process %s"),
    [PROCESS_CHECKPOINT] = BAD ("cannot checkpoint a stopped process %s"),
    [PROCESS_EXIT] = STAY,
  },
  [PROCESS_DELETED] = {
    [PROCESS_START] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_KILL] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_PAUSE] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_RESUME] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_DELETE] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_EXEC] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_UPDATE] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_CHECKPOINT] = NO (SHIM_NOT_FOUND, "process %s deleted"),
    [PROCESS_EXIT] = STAY,
  },
};

const char *
process_state_name (enum process_state s)
{
  return (unsigned) s < PROCESS_N_STATES ? state_names[s] : "unknown";
}

int
process_check (enum process_state s, enum process_verb verb, const char *id, shim_error_t *err)
{
  if ((unsigned) s >= PROCESS_N_STATES || (unsigned) verb >= PROCESS_N_VERBS)
    return shim_error_make (err, 0, SHIM_INTERNAL, "bad process state %d or verb %d", s, verb);
  const struct transition *t = &table[s][verb];
  if (t->code == SHIM_OK)
    return 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  return shim_error_make (err, 0, t->code, t->what, id);
#pragma GCC diagnostic pop
}

enum process_state
process_next (enum process_state s, enum process_verb verb)
{
  if ((unsigned) s >= PROCESS_N_STATES || (unsigned) verb >= PROCESS_N_VERBS)
    return s;
  const struct transition *t = &table[s][verb];
  return t->code == SHIM_OK && t->next >= 0 ? (enum process_state) t->next : s;
}

const char *
process_verb_name (enum process_verb verb)
{
  return (unsigned) verb < PROCESS_N_VERBS ? verb_names[verb] : "unknown";
}
