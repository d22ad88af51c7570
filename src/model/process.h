#ifndef CSHIM_PROCESS_H
#define CSHIM_PROCESS_H

/* Process lifecycle as one table: which verb is legal in which state, the state it leads to,
 * and the exact error otherwise: the stock shim's code and text. */

#include "base/error.h"

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

const char *process_state_name (enum process_state s);
const char *process_verb_name (enum process_verb verb);

/* 0 if verb is legal in state s, else < 0 with err set. */
int process_check (enum process_state s, enum process_verb verb, shim_error_t *err);
/* State after verb succeeded in s (s itself for verbs that do not move it). */
enum process_state process_next (enum process_state s, enum process_verb verb);

#endif
