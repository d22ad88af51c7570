#ifndef CSHIM_TRACE_INTERNAL_H
#define CSHIM_TRACE_INTERNAL_H

/* Between the two halves of the trace: trace.c makes the lines (format, log copy, the call
 * in flight), trace_file.c owns the file (directory, pruning, reopening, the size cap). */

#include <stdbool.h>
#include <stddef.h>

struct trace
{
  int refs;
  int fd; /* -1 until the first write */
  bool off; /* size cap reached or the file failed: nothing more is written */
  size_t max_size;
  char *namespace;
  char *id;
  char *path; /* absolute: <dir>/<namespace>/<id>.jsonl */
};

/* Appends line (without its newline) to t's file, opening it on first use: one write(2),
 * nothing past the size cap but one note line, and a failing file turned off with one
 * warning. */
void trace_append (struct trace *t, const char *line);

#endif
