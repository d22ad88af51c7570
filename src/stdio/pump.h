#ifndef CSHIM_PUMP_H
#define CSHIM_PUMP_H

/* One direction of a process's stdio, copied by the loop: src -> dst, both non-blocking.
 * splice(2) moves pages between pipes without copying; when a side is not a pipe the copy goes
 * through a buffer. Internal to stdio/ (procio.c drives it).
 *
 * An output stream never lets its sink hurt the container: when writing to the sink fails
 * (ENOSPC or EIO on a file, EPIPE from a FIFO whose reader has gone or from a logging binary
 * that died), the pump keeps draining the container's pipe and discards, offers each new chunk
 * to the sink again (a FIFO is reopened for a reader that came back) and logs one line when the
 * failure starts and one when it ends, with the bytes discarded. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event;
struct event_base;
struct pump;

typedef void (*pump_done_cb) (struct pump *p, void *arg);

struct pump
{
  struct event_base *base;
  const char *name; /* "stdin", "stdout", "stderr": for log lines */
  const char *owner; /* the container's id, for log lines */
  char *sink; /* what dst is (a path or URI), for log lines; NULL for stdin */
  int src, dst;
  struct event *ev_read, *ev_write;
  struct event *flush_timer; /* the source ended, the sink's reader has bytes left to take */
  uint64_t flush_until; /* monotonic ms */
  int flush_unread; /* what the sink's reader had left at the last look */
  unsigned long long progress; /* bytes the sink took, or its reader took while flushing */
  unsigned long long progress_seen; /* at the last pump_draining_by_itself() */
  char *buf; /* the copy path's buffer: buf_len bytes at buf_off are read but not yet written */
  size_t buf_off, buf_len;
  size_t buf_size; /* PUMP_CHUNK, or PUMP_BIG_CHUNK while the stream is busy */
  bool busy; /* the last wakeup moved PUMP_GROW_AFTER bytes or more */
  bool use_splice;
  bool output; /* an output stream: a failing sink is discarded, never the container's end */
  bool drop_when_full; /* io_policy "drop": a full sink discards instead of stalling */
  bool reopen_fifo; /* dst is a FIFO opened write-only: EPIPE means its reader went away */
  bool grown; /* a busy output: its pipes were given PUMP_PIPE_SIZE */
  bool await_reader; /* dst is not open yet: the FIFO has had no reader (pump_await_fifo_reader) */
  struct event *reader_timer; /* the next look for that reader */
  unsigned reader_wait_ms;
  dev_t fifo_dev; /* which FIFO, so that a reopen finds the same one */
  ino_t fifo_ino;
  unsigned long long dropped; /* io_policy drop: bytes the sink had no room for */
  int sink_errno; /* 0, or why the sink fails: its output is discarded */
  unsigned long long discarded; /* while the sink failed, since the failure started */
  unsigned long long discarded_total;
  bool done;
  pump_done_cb done_cb;
  void *done_arg;
};

/* Absent and done until a caller gives it fds and clears done. */
void pump_init (struct pump *p, const char *name, pump_done_cb cb, void *arg);
/* dst is a FIFO opened O_WRONLY: remembers which, so that it can be reopened for a new reader. */
void pump_set_fifo_sink (struct pump *p, int dst);
/* p->sink is a FIFO nobody has opened for reading yet (opening it write-only said ENXIO). The
 * pump opens it write-only once a reader is there (looked for at once, then with a backoff),
 * and until then leaves the output in the container's pipe: back-pressure, as a blocking open
 * would give, or dropped under io_policy drop. A reader that comes late and leaves again is
 * then an EPIPE like any other, never a container stalled for good. False if p->sink is not a
 * FIFO (errno set). p->base must be set: the looks start now. */
bool pump_await_fifo_reader (struct pump *p);

/* How busy an output stream is sets its sizes. One that moved PUMP_GROW_AFTER bytes in one
 * wakeup (its writer filled the kernel's default 64 KiB pipe) gets:
 * - pipes of PUMP_PIPE_SIZE, the container's end and a pipe or FIFO sink, for good: the
 *   writer runs ahead and each wakeup moves more (FIFO throughput more than doubles);
 * - while it stays busy, a copy buffer of PUMP_BIG_CHUNK (the copy path: a file sink, which
 *   splice cannot append to, or a PTY). One read empties the whole pipe: the container's
 *   writes and the shim's reads take the pipe's lock in turn, and with the pipe drained at
 *   once the writer refills it while the page cache takes the bytes (file:// 1.12x faster
 *   than 256 KiB reads). Writes stay at PUMP_WRITE_MAX: the page cache takes large writes in
 *   large folios, but 512 KiB and 1 MiB writes stalled a third of the runs here, in filling
 *   the new folios (a VM whose balloon hands freed memory back to the host). The buffer is
 *   mapped apart and unmapped at the first quieter wakeup.
 * Quiet streams keep the kernel's default pipes, with a smaller slot array in kernel memory,
 * and a 64 KiB buffer (docs/performance.md). */
#define PUMP_GROW_AFTER (64 * 1024)
#define PUMP_PIPE_SIZE (1024 * 1024)
#define PUMP_BIG_CHUNK PUMP_PIPE_SIZE
#define PUMP_WRITE_MAX (256 * 1024)

/* Starts watching, once both fds are there and the stream is not done. */
void pump_start (struct pump *p, struct event_base *base);
/* True when the stream's writer is gone (its source is at or before EOF) and bytes moved since
 * the last call: a stream that will end by itself, only at its reader's pace. */
bool pump_draining_by_itself (struct pump *p);
/* Moves what can be moved now without waiting: the last copy before a forced close. */
void pump_last_transfer (struct pump *p);
/* Closes both fds, frees what the pump holds and, the first time, calls done_cb. */
void pump_close (struct pump *p);

#endif
