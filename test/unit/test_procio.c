/* A process's stdio over real pipes and FIFOs, no containerd: copies to a FIFO and to a file,
 * io_policy block and drop, the drain deadline, EOF both ways, CloseIO on stdin, and sinks
 * that fail (a FIFO whose reader went away, a full disk, a dead logger's pipe): the
 * container's writer never blocks nor dies, the bytes discarded are counted and logged. */

#include "testutil.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/param.h>
#include <sys/wait.h>

#include "base/log.h"
#include "stdio/procio.h"
#include "stdio/pump.h"

#define MIB (1024 * 1024)

struct fx
{
  struct event_base *base;
  char dir[64];
  char fifo[96];
  char stdin_fifo[96];
  int reader; /* the client's end of the stdout FIFO, -1 when it went away */
  int log_reader; /* the shim's log, as containerd reads it */
  int saved_stderr;
  struct proc_io *io;
  int out; /* the container's stdout */
  bool drained;
};

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  fx->base = event_base_new ();
  fx->out = -1;
  snprintf (fx->dir, sizeof fx->dir, "/tmp/test-procio-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->fifo, sizeof fx->fifo, "%s/stdout", fx->dir);
  snprintf (fx->stdin_fifo, sizeof fx->stdin_fifo, "%s/stdin", fx->dir);
  assert_int_equal (mkfifo (fx->fifo, 0600), 0);
  assert_int_equal (mkfifo (fx->stdin_fifo, 0600), 0);
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true (fx->reader >= 0);

  char log_fifo[128];
  snprintf (log_fifo, sizeof log_fifo, "%s/log", fx->dir);
  assert_int_equal (mkfifo (log_fifo, 0600), 0);
  fx->log_reader = open (log_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  fx->saved_stderr = dup (STDERR_FILENO);
  log_init ("test", "procio", false);
  shim_error_t err = NULL;
  assert_int_equal (log_open_fifo (log_fifo, &err), 0);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  proc_io_free (fx->io);
  close_fd (&fx->out);
  close_fd (&fx->reader);
  dup2 (fx->saved_stderr, STDERR_FILENO);
  close (fx->saved_stderr);
  close (fx->log_reader);
  event_base_free (fx->base);
  remove_tree (fx->dir);
  free (fx);
  return 0;
}

/* ---- helpers ---- */

/* Every "msg" the shim logged since the last call, joined by newlines. */
static char *
logged (struct fx *fx)
{
  static char buf[65536 + 1]; /* a FIFO's capacity: all the lines there can be */
  size_t len = 0;
  ssize_t n;
  while (len < sizeof buf - 1 && (n = read (fx->log_reader, buf + len, sizeof buf - 1 - len)) > 0)
    len += n;
  buf[len] = '\0';
  char *all = xstrdup ("");
  for (char *line = strtok (buf, "\n"); line; line = strtok (NULL, "\n"))
    {
      cJSON *o = cJSON_Parse (line);
      assert_non_null (o);
      char *next = xasprintf ("%s%s\n", all, cJSON_GetObjectItem (o, "msg")->valuestring);
      free (all);
      all = next;
      cJSON_Delete (o);
    }
  return all;
}

static void
start_io (struct fx *fx, const struct proc_io_config *cfg)
{
  shim_error_t err = NULL;
  fx->io = proc_io_new (fx->base, cfg, &err);
  assert_null (err);
  assert_non_null (fx->io);
  int fds[3];
  proc_io_runtime_fds (fx->io, fds);
  if (fds[1] >= 0)
    {
      fx->out = dup (fds[1]);
      assert_int_equal (set_nonblock (fx->out, true), 0);
    }
  proc_io_start (fx->io);
  proc_io_on_drained (fx->io, raise_flag, &fx->drained);
}

/* The container writes total bytes through its non-blocking fd while the loop runs; returns
 * what it got written before the pipe stayed full for 100 turns of the loop (a writer that
 * would block for good). */
static size_t
write_with_loop (struct event_base *base, int fd, size_t total)
{
  static char chunk[16384];
  size_t written = 0;
  for (int stalled = 0; written < total && stalled < 100;)
    {
      size_t n = total - written < sizeof chunk ? total - written : sizeof chunk;
      ssize_t w = write (fd, chunk, n);
      if (w > 0)
        {
          written += w;
          stalled = 0;
          continue;
        }
      assert_true (w < 0 && errno == EAGAIN);
      event_base_loop (base, EVLOOP_NONBLOCK);
      stalled++;
    }
  return written;
}

/* A run_until condition: the pipe that fd writes to has been emptied by the pump. */
static bool
pipe_empty (void *arg)
{
  int unread = -1;
  assert_int_equal (ioctl (*(int *) arg, FIONREAD, &unread), 0);
  return unread == 0;
}

/* Reads the client's FIFO up to EOF or until nothing more comes for 100 loop turns. */
static size_t
read_fifo (struct fx *fx, char *buf, size_t size)
{
  size_t got = 0;
  for (int idle = 0; got < size && idle < 100;)
    {
      ssize_t n = read (fx->reader, buf + got, size - got);
      if (n == 0)
        break;
      if (n > 0)
        {
          got += n;
          idle = 0;
          continue;
        }
      event_base_loop (fx->base, EVLOOP_NONBLOCK);
      idle++;
    }
  return got;
}

/* ---- copying ---- */

static void
test_copies_to_a_fifo_and_ends_with_eof (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  assert_int_equal (write (fx->out, "hello\n", 6), 6);
  close_fd (&fx->out); /* the container exits */
  char buf[64] = { 0 };
  assert_int_equal (read_fifo (fx, buf, 6), 6);
  assert_string_equal (buf, "hello\n");
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  /* the shim closed its end: the client sees EOF */
  assert_int_equal (read (fx->reader, buf, sizeof buf), 0);
}

/* A quiet stream keeps the kernel's 64 KiB pipes; one whose writer fills them gets 1 MiB pipes,
 * the container's and the FIFO. */
static void
test_busy_output_grows_its_pipes (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  int default_size = fcntl (fx->out, F_GETPIPE_SZ);
  assert_true (default_size < PUMP_PIPE_SIZE);
  assert_int_equal (write (fx->out, "hello\n", 6), 6);
  char buf[64] = { 0 };
  assert_int_equal (read_fifo (fx, buf, 6), 6);
  assert_int_equal (fcntl (fx->out, F_GETPIPE_SZ), default_size);
  assert_int_equal (fcntl (fx->reader, F_GETPIPE_SZ), default_size);

  /* Nobody reads: the writer fills both pipes at their new size before it stalls. */
  size_t written = write_with_loop (fx->base, fx->out, 4 * MIB);
  assert_int_equal (fcntl (fx->out, F_GETPIPE_SZ), PUMP_PIPE_SIZE);
  assert_int_equal (fcntl (fx->reader, F_GETPIPE_SZ), PUMP_PIPE_SIZE);
  assert_true (written >= 2 * PUMP_PIPE_SIZE);
  cleanup_free char *all = xmalloc (written + 1);
  assert_int_equal (read_fifo (fx, all, written + 1), written);
}

static void
test_copies_to_a_file (void **state)
{
  struct fx *fx = *state;
  cleanup_free char *path = xasprintf ("%s/logs/sub/out.log", fx->dir);
  cleanup_free char *uri = xasprintf ("file://%s", path);
  struct proc_io_config cfg = { .stdout_path = uri, .id = "c1" };
  start_io (fx, &cfg);
  assert_int_equal (write_with_loop (fx->base, fx->out, 3 * MIB), 3 * MIB);
  close_fd (&fx->out);
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, 3 * MIB);
}

static void
test_block_policy_stalls_the_writer (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  /* The reader is there but does not read: the pipe and the FIFO fill, then the writer waits
   * (back-pressure), losing nothing. */
  size_t written = write_with_loop (fx->base, fx->out, 8 * MIB);
  assert_true (written < 3 * PUMP_PIPE_SIZE); /* the two pipes and at most one chunk */
  assert_true (written >= 2 * PUMP_PIPE_SIZE);
  cleanup_free char *buf = xmalloc (written + 1);
  assert_int_equal (read_fifo (fx, buf, written + 1), written);
}

static void
test_drop_policy_never_stalls_the_writer (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .drop_when_full = true, .id = "c1" };
  start_io (fx, &cfg);
  assert_int_equal (write_with_loop (fx->base, fx->out, 4 * MIB), 4 * MIB);
  close_fd (&fx->out);
  cleanup_free char *buf = xmalloc (4 * MIB);
  size_t got = read_fifo (fx, buf, 4 * MIB);
  assert_true (got <= 2 * PUMP_PIPE_SIZE); /* what the two pipes held; the rest was dropped */
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  cleanup_free char *log = logged (fx);
  cleanup_free char *want = xasprintf ("%zu bytes were dropped (io_policy drop)", 4 * MIB - got);
  assert_non_null (strstr (log, want));
}

/* A background child keeps the container's stdout open after the process exited: the drain
 * deadline closes the stream anyway, after one last copy. */
static void
test_drain_deadline_closes_a_held_stream (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  assert_int_equal (write (fx->out, "before exit\n", 12), 12);
  proc_io_process_exited (fx->io, 50);
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  char buf[64] = { 0 };
  assert_int_equal (read (fx->reader, buf, sizeof buf), 12);
  assert_string_equal (buf, "before exit\n");
  assert_int_equal (read (fx->reader, buf, sizeof buf), 0); /* EOF, though fx->out is open */
  /* the child's next write finds no reader: the pipe's read end is gone */
  assert_int_equal (write (fx->out, "x", 1), -1);
  assert_int_equal (errno, EPIPE);
}

/* The process exited with its last output still in the pipes, and the reader is slow (a busy
 * machine): its bytes keep moving, so the drain deadline does not cut them. It takes the
 * reader 40 steps of 50 ms, well past the 500 ms deadline, while each step is far within it. */
static void
test_drain_deadline_spares_a_slow_reader (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  size_t written = write_with_loop (fx->base, fx->out, 4 * MIB); /* pipe and FIFO full */
  close_fd (&fx->out);
  proc_io_process_exited (fx->io, 500);
  size_t step = written / 40 + 1, got = 0;
  cleanup_free char *buf = xmalloc (step);
  while (!fx->drained)
    {
      ssize_t n = read (fx->reader, buf, step);
      if (n > 0)
        got += n;
      run_for_ms (fx->base, 50);
    }
  for (ssize_t n; (n = read (fx->reader, buf, step)) > 0;)
    got += n;
  assert_int_equal (got, written);
  cleanup_free char *log = logged (fx);
  assert_null (strstr (log, "still held open"));
}

static bool
readable (void *arg)
{
  struct pollfd p = { .fd = *(int *) arg, .events = POLLIN };
  return poll (&p, 1, 0) == 1;
}

static void
test_stdin_data_then_eof_on_close (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdin_path = fx->stdin_fifo, .id = "c1" };
  shim_error_t err = NULL;
  fx->io = proc_io_new (fx->base, &cfg, &err);
  assert_non_null (fx->io);
  int fds[3];
  proc_io_runtime_fds (fx->io, fds);
  int in = dup (fds[0]);
  assert_int_equal (set_nonblock (in, true), 0);
  proc_io_start (fx->io);

  /* A client writes and goes away; a held writer keeps EOF from the container. */
  int client = open (fx->stdin_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  assert_int_equal (write (client, "input", 5), 5);
  close (client);
  run_until_or_fail (fx->base, readable, &in);
  char buf[16] = { 0 };
  assert_int_equal (read (in, buf, sizeof buf), 5);
  assert_string_equal (buf, "input");
  run_for_ms (fx->base, 20);
  assert_int_equal (read (in, buf, sizeof buf), -1);
  assert_int_equal (errno, EAGAIN);

  /* CloseIO: the container reads EOF. */
  proc_io_close_stdin (fx->io);
  run_until_or_fail (fx->base, readable, &in);
  assert_int_equal (read (in, buf, sizeof buf), 0);
  close (in);
}

/* ---- sinks that fail ---- */

static void
test_fifo_reader_gone_discards_then_reopens (void **state)
{
  struct fx *fx = *state;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
  /* busy first: its pipes grow, and the FIFO's new pipe after the reopen must too */
  cleanup_free char *busy = xmalloc (256 * 1024);
  assert_int_equal (write_with_loop (fx->base, fx->out, 128 * 1024), 128 * 1024);
  assert_int_equal (read_fifo (fx, busy, 256 * 1024), 128 * 1024);
  close_fd (&fx->reader); /* ctr run -d exits */
  assert_int_equal (write_with_loop (fx->base, fx->out, 4 * MIB), 4 * MIB);
  run_until_or_fail (fx->base, pipe_empty, &fx->out);
  cleanup_free char *log = logged (fx);
  assert_non_null (strstr (log, "stdout of c1: writing to `"));
  assert_non_null (strstr (log, "failed: Broken pipe; discarding the output until a reader "
                                "opens it again"));

  /* A reader comes back (ctr task attach): the next output reaches it. */
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_int_equal (write (fx->out, "again\n", 6), 6);
  close_fd (&fx->out);
  char buf[64] = { 0 };
  assert_int_equal (read_fifo (fx, buf, sizeof buf - 1), 6);
  assert_string_equal (buf, "again\n");
  assert_int_equal (fcntl (fx->reader, F_GETPIPE_SZ), PUMP_PIPE_SIZE); /* a new pipe, grown */
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  cleanup_free char *log2 = logged (fx);
  cleanup_free char *want = xasprintf ("takes output again; %d bytes were discarded", 4 * MIB);
  assert_non_null (strstr (log2, want));
}

/* ---- a FIFO whose reader comes late ---- */

/* A run_until condition: the client's end of the FIFO has bytes to read. */
static bool
fifo_readable (void *arg)
{
  struct fx *fx = arg;
  struct pollfd pfd = { .fd = fx->reader, .events = POLLIN };
  return fx->reader >= 0 && poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* stdout to the FIFO, which nobody reads yet. */
static void
start_io_without_reader (struct fx *fx)
{
  close_fd (&fx->reader);
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  start_io (fx, &cfg);
}

/* The client opens its end after Create (ctr does, from a goroutine): the output waits in the
 * container's pipe meanwhile, and none of it is lost. */
static void
test_fifo_read_late_gets_the_output_that_waited (void **state)
{
  struct fx *fx = *state;
  start_io_without_reader (fx);
  assert_int_equal (write (fx->out, "early\n", 7), 7);
  run_for_ms (fx->base, 20);
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  run_until_or_fail (fx->base, fifo_readable, fx);
  char buf[64] = { 0 };
  assert_int_equal (read (fx->reader, buf, sizeof buf), 7);
  assert_string_equal (buf, "early\n");
}

/* A client that opened its end late and went away again (ctr run -d) is an EPIPE like any
 * other: the container's writer never stalls, its output is discarded. */
static void
test_late_reader_that_leaves_does_not_stall_the_writer (void **state)
{
  struct fx *fx = *state;
  start_io_without_reader (fx);
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_int_equal (write (fx->out, "one\n", 4), 4);
  run_until_or_fail (fx->base, fifo_readable, fx);
  char buf[64] = { 0 };
  assert_int_equal (read (fx->reader, buf, sizeof buf), 4);
  close_fd (&fx->reader);
  assert_int_equal (write_with_loop (fx->base, fx->out, 4 * MIB), 4 * MIB);
  cleanup_free char *log = logged (fx);
  assert_non_null (strstr (log, "failed: Broken pipe"));
}

struct child
{
  pid_t pid;
  int status;
  bool reaped;
};

/* A run_until condition: the child exited (reaped once, status kept). */
static bool
child_exited (void *arg)
{
  struct child *c = arg;
  if (!c->reaped)
    c->reaped = waitpid (c->pid, &c->status, WNOHANG) == c->pid;
  return c->reaped;
}

/* A client that waits in a blocking open of its end before it calls Start: the shim opens
 * the FIFO from Create on, so that open returns. */
static void
test_blocking_reader_open_before_start_returns (void **state)
{
  struct fx *fx = *state;
  close_fd (&fx->reader);
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .id = "c1" };
  shim_error_t err = NULL;
  fx->io = proc_io_new (fx->base, &cfg, &err);
  assert_non_null (fx->io);
  struct child c = { .pid = fork () };
  if (c.pid == 0)
    _exit (open (fx->fifo, O_RDONLY) >= 0 ? 0 : 1);
  bool exited = run_until (fx->base, child_exited, &c, 5000); /* ticking: no event says it */
  if (!exited) /* a child stuck in open() would hold the test's fds for ever */
    {
      kill (c.pid, SIGKILL);
      waitpid (c.pid, NULL, 0);
    }
  assert_true (exited);
  assert_true (WIFEXITED (c.status));
  assert_int_equal (WEXITSTATUS (c.status), 0);
}

/* Nobody ever opens the FIFO: the stream ends at the drain deadline after the exit, saying
 * why its output was not read. */
static void
test_fifo_never_read_ends_at_the_drain_deadline (void **state)
{
  struct fx *fx = *state;
  start_io_without_reader (fx);
  assert_int_equal (write (fx->out, "lost\n", 5), 5);
  close_fd (&fx->out); /* the container exits */
  proc_io_process_exited (fx->io, 50);
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  cleanup_free char *log = logged (fx);
  cleanup_free char *want = xasprintf ("stdout of c1 ended before `%s` had a reader", fx->fifo);
  assert_non_null (strstr (log, want));
}

struct pump_fx
{
  struct pump p;
  int writer; /* the container's end */
  bool done;
};

static void
pump_done (struct pump *p, void *arg)
{
  (void) p;
  *(bool *) arg = true;
}

/* An output pump from a fresh pipe into sink. */
static void
pump_fx_start (struct pump_fx *pf, struct event_base *base, int sink, const char *what)
{
  int fds[2];
  assert_int_equal (pipe2 (fds, O_CLOEXEC | O_NONBLOCK), 0);
  pump_init (&pf->p, "stdout", pump_done, &pf->done);
  pf->p.owner = "c1";
  pf->p.sink = xstrdup (what);
  pf->p.src = fds[0];
  pf->p.dst = sink;
  pf->p.output = true;
  pf->p.done = false;
  pf->writer = fds[1];
  pump_start (&pf->p, base);
}

/* ENOSPC (/dev/full is a disk that is always full), then a disk with room again: a file put
 * in place of the sink's fd. */
static void
test_full_disk_discards_then_resumes (void **state)
{
  struct fx *fx = *state;
  struct pump_fx pf = { 0 };
  pump_fx_start (&pf, fx->base, open ("/dev/full", O_WRONLY | O_CLOEXEC), "/dev/full");
  assert_int_equal (write_with_loop (fx->base, pf.writer, 2 * MIB), 2 * MIB);
  run_until_or_fail (fx->base, pipe_empty, &pf.writer);
  assert_int_equal (pf.p.sink_errno, ENOSPC);
  assert_int_equal (pf.p.discarded, 2 * MIB);
  cleanup_free char *log = logged (fx);
  assert_non_null (strstr (log, "stdout of c1: writing to `/dev/full` failed: No space left on "
                                "device; discarding the output until it works again"));

  cleanup_free char *path = xasprintf ("%s/room", fx->dir);
  int file = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_int_equal (dup3 (file, pf.p.dst, O_CLOEXEC), pf.p.dst);
  close (file);
  assert_int_equal (write (pf.writer, "after\n", 6), 6);
  close (pf.writer);
  run_until_or_fail (fx->base, flag_raised, &pf.done);
  cleanup_free char *text = NULL;
  assert_int_equal (read_file (path, 64, &text, NULL, NULL), 0);
  assert_string_equal (text, "after\n");
  cleanup_free char *log2 = logged (fx);
  cleanup_free char *want = xasprintf ("`/dev/full` takes output again; %d bytes", 2 * MIB);
  assert_non_null (strstr (log2, want));
  assert_non_null (strstr (log2, "2097152 bytes were discarded while `/dev/full` failed"));
}

/* The container writes total bytes of a counting pattern (byte i is i % 251) through its
 * non-blocking fd, running the loop whenever the pipe is full. */
static void
write_pattern_with_loop (struct event_base *base, int fd, size_t total)
{
  static char chunk[16384];
  for (size_t written = 0; written < total;)
    {
      size_t n = total - written < sizeof chunk ? total - written : sizeof chunk;
      for (size_t i = 0; i < n; i++)
        chunk[i] = (char) ((written + i) % 251);
      ssize_t w = write (fd, chunk, n);
      if (w > 0)
        written += w;
      else
        {
          assert_true (w < 0 && errno == EAGAIN);
          event_base_loop (base, EVLOOP_NONBLOCK);
        }
    }
}

/* A busy stream into a file copies through the big buffer, which is gone at the first quiet
 * wakeup; every byte lands in order. */
static void
test_busy_file_stream_big_buffer_comes_and_goes (void **state)
{
  struct fx *fx = *state;
  cleanup_free char *path = xasprintf ("%s/out.log", fx->dir);
  struct pump_fx pf = { 0 };
  pump_fx_start (&pf, fx->base, open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), path);
  write_pattern_with_loop (fx->base, pf.writer, 8 * MIB);
  assert_true (pf.p.busy);
  assert_true (pf.p.buf == NULL || pf.p.buf_size == PUMP_BIG_CHUNK);
  assert_int_equal (fcntl (pf.writer, F_GETPIPE_SZ), PUMP_PIPE_SIZE);
  run_until_or_fail (fx->base, pipe_empty, &pf.writer);

  assert_int_equal (write (pf.writer, "tail\n", 5), 5); /* a quiet wakeup */
  run_until_or_fail (fx->base, pipe_empty, &pf.writer);
  assert_false (pf.p.busy);
  assert_null (pf.p.buf);
  close (pf.writer);
  run_until_or_fail (fx->base, flag_raised, &pf.done);

  cleanup_free char *text = NULL;
  size_t len = 0;
  assert_int_equal (read_file (path, 16 * MIB, &text, &len, NULL), 0);
  assert_int_equal (len, 8 * MIB + 5);
  for (size_t i = 0; i < 8 * MIB; i++)
    if ((unsigned char) text[i] != i % 251)
      fail_msg ("byte %zu is %u, not %zu", i, (unsigned char) text[i], i % 251);
  assert_memory_equal (text + 8 * MIB, "tail\n", 5);
}

/* The copy path (a PTY sink, or a pipe splice cannot serve) into a sink whose reader takes
 * odd small pieces: the sink takes part of each buffer at a time, and every byte still lands
 * once and in order. */
static void
test_copy_path_partial_writes_keep_order (void **state)
{
  struct fx *fx = *state;
  int sink[2];
  assert_int_equal (pipe2 (sink, O_CLOEXEC | O_NONBLOCK), 0);
  struct pump_fx pf = { 0 };
  pump_fx_start (&pf, fx->base, sink[1], "a pipe");
  pf.p.use_splice = false;

  const size_t total = 4 * MIB;
  static char chunk[16384], got[3001];
  size_t written = 0, read_total = 0;
  for (int idle = 0; read_total < total && idle < 1000; idle++)
    {
      if (written < total)
        {
          size_t n = MIN (total - written, sizeof chunk);
          for (size_t i = 0; i < n; i++)
            chunk[i] = (char) ((written + i) % 251);
          ssize_t w = write (pf.writer, chunk, n);
          if (w > 0)
            written += w;
        }
      event_base_loop (fx->base, EVLOOP_NONBLOCK);
      ssize_t r = read (sink[0], got, sizeof got);
      for (ssize_t i = 0; i < r; i++, read_total++)
        if ((unsigned char) got[i] != read_total % 251)
          fail_msg ("byte %zu is %u, not %zu", read_total, (unsigned char) got[i],
                    read_total % 251);
      if (r > 0)
        idle = 0;
    }
  assert_int_equal (read_total, total);
  close (pf.writer);
  run_until_or_fail (fx->base, flag_raised, &pf.done);
  assert_int_equal (read (sink[0], got, sizeof got), 0);
  close (sink[0]);
}

/* A logging binary that died: its pipe has no reader and never gets one again. */
static void
test_dead_logger_discards_to_the_end (void **state)
{
  struct fx *fx = *state;
  int logger[2];
  assert_int_equal (pipe2 (logger, O_CLOEXEC | O_NONBLOCK), 0);
  close (logger[0]);
  struct pump_fx pf = { 0 };
  pump_fx_start (&pf, fx->base, logger[1], "binary:///logger");
  assert_int_equal (write_with_loop (fx->base, pf.writer, 3 * MIB), 3 * MIB);
  close (pf.writer);
  run_until_or_fail (fx->base, flag_raised, &pf.done);
  cleanup_free char *log = logged (fx);
  assert_non_null (strstr (log, "failed: Broken pipe; discarding the rest of the output"));
  assert_non_null (strstr (log, "stdout of c1 ended while `binary:///logger` still failed "
                                "(Broken pipe): 3145728 bytes were discarded"));
  assert_null (strstr (log, "takes output again"));
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN); /* as the shim does */
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_copies_to_a_fifo_and_ends_with_eof, setup, teardown),
    cmocka_unit_test_setup_teardown (test_busy_output_grows_its_pipes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_copies_to_a_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_block_policy_stalls_the_writer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_drop_policy_never_stalls_the_writer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_drain_deadline_closes_a_held_stream, setup, teardown),
    cmocka_unit_test_setup_teardown (test_drain_deadline_spares_a_slow_reader, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stdin_data_then_eof_on_close, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fifo_reader_gone_discards_then_reopens, setup, teardown),
    cmocka_unit_test_setup_teardown (test_busy_file_stream_big_buffer_comes_and_goes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_full_disk_discards_then_resumes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_copy_path_partial_writes_keep_order, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fifo_read_late_gets_the_output_that_waited, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_late_reader_that_leaves_does_not_stall_the_writer, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_blocking_reader_open_before_start_returns, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_fifo_never_read_ends_at_the_drain_deadline, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_dead_logger_discards_to_the_end, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
