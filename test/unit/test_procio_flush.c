/* An output stream ends only once its FIFO reader has taken every byte: a client that closes
 * its end when it learns of the exit (ctr) must not lose the tail of the output. */

#include "testutil.h"

#include "base/log.h"
#include "stdio/procio.h"

struct fx
{
  struct event_base *base;
  char dir[64];
  char fifo[96];
  int reader;
  struct proc_io *io;
  bool drained;
};

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  log_init ("test", "procio", getenv ("TEST_DEBUG") != NULL);
  fx->base = event_base_new ();
  snprintf (fx->dir, sizeof fx->dir, "/tmp/procio-flush-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->fifo, sizeof fx->fifo, "%s/stdout", fx->dir);
  assert_int_equal (mkfifo (fx->fifo, 0600), 0);
  /* The client's reader, as ctr opens it. */
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true (fx->reader >= 0);
  shim_error_t err = NULL;
  struct proc_io_config cfg = { .stdout_path = fx->fifo, .namespace = "ns", .id = "c1" };
  fx->io = proc_io_new (fx->base, &cfg, &err);
  assert_null (err);
  assert_non_null (fx->io);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  proc_io_free (fx->io);
  close (fx->reader);
  event_base_free (fx->base);
  remove_tree (fx->dir);
  free (fx);
  return 0;
}

/* The container writes and exits: its end of the pipe is closed. */
static void
container_writes_and_exits (struct fx *fx, const char *text)
{
  int fds[3];
  proc_io_runtime_fds (fx->io, fds);
  int out = dup (fds[1]);
  assert_true (out >= 0);
  proc_io_start (fx->io);
  assert_int_equal (write (out, text, strlen (text)), (ssize_t) strlen (text));
  close (out);
  proc_io_on_drained (fx->io, raise_flag, &fx->drained);
}

static void
test_ends_after_reader_took_everything (void **state)
{
  struct fx *fx = *state;
  container_writes_and_exits (fx, "the last line\n");
  /* The bytes are in the FIFO, but nobody has read them: the stream is not over (looked at
   * well within the 2 s the shim waits for a reader at most). */
  uint64_t start = now_monotonic_ms ();
  run_for_ms (fx->base, 100);
  if (now_monotonic_ms () - start < 1000)
    assert_false (fx->drained);
  char buf[64] = { 0 };
  assert_int_equal (read (fx->reader, buf, sizeof buf), 14);
  assert_string_equal (buf, "the last line\n");
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
}

static void
test_reader_that_never_reads_is_not_waited_for_ever (void **state)
{
  struct fx *fx = *state;
  container_writes_and_exits (fx, "nobody reads this\n");
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_ends_after_reader_took_everything, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reader_that_never_reads_is_not_waited_for_ever, setup,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
