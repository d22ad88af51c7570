/* Every log line is valid JSON, one write of at most PIPE_BUF bytes: a long message is cut,
 * with a marker and at a UTF-8 boundary, never the line. */

#include "testutil.h"

#include <cjson/cJSON.h>
#include <limits.h>

#include "base/log.h"

#define MARKER " [truncated]"

struct fx
{
  char dir[64];
  char fifo[96];
  int reader;
  int saved_stderr;
};

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  snprintf (fx->dir, sizeof fx->dir, "/tmp/test-log-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->fifo, sizeof fx->fifo, "%s/log", fx->dir);
  assert_int_equal (mkfifo (fx->fifo, 0600), 0);
  fx->reader = open (fx->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true (fx->reader >= 0);
  fx->saved_stderr = dup (STDERR_FILENO);
  log_init ("test-ns", "test-id", false);
  shim_error_t err = NULL;
  assert_int_equal (log_open_fifo (fx->fifo, &err), 0);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  dup2 (fx->saved_stderr, STDERR_FILENO);
  close (fx->saved_stderr);
  close (fx->reader);
  remove_tree (fx->dir);
  free (fx);
  return 0;
}

/* The one line the logger wrote since the last call, parsed; fails unless it is exactly one
 * line of valid JSON within PIPE_BUF. */
static cJSON *
read_line (struct fx *fx)
{
  char buf[2 * PIPE_BUF];
  ssize_t n = read (fx->reader, buf, sizeof buf);
  assert_true (n > 1);
  assert_true (n <= PIPE_BUF);
  assert_int_equal (buf[n - 1], '\n');
  assert_null (memchr (buf, '\n', n - 1));
  cJSON *o = cJSON_ParseWithLength (buf, n - 1);
  assert_non_null (o);
  return o;
}

static bool
utf8_valid (const char *s)
{
  for (const unsigned char *p = (const unsigned char *) s; *p;)
    {
      int extra = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : -1;
      if (extra < 0)
        return false;
      p++;
      for (int i = 0; i < extra; i++, p++)
        if ((*p & 0xC0) != 0x80)
          return false;
    }
  return true;
}

static const char *
msg_of (cJSON *o)
{
  cJSON *m = cJSON_GetObjectItemCaseSensitive (o, "msg");
  assert_true (cJSON_IsString (m));
  return m->valuestring;
}

static bool
ends_with (const char *s, const char *tail)
{
  size_t n = strlen (s), t = strlen (tail);
  return n >= t && strcmp (s + n - t, tail) == 0;
}

static void
test_short_message_is_whole (void **state)
{
  struct fx *fx = *state;
  assert_true (fcntl (STDERR_FILENO, F_GETFL) & O_NONBLOCK); /* a full FIFO never blocks */
  log_warn ("hello %d", 42);
  cJSON *o = read_line (fx);
  assert_string_equal (msg_of (o), "hello 42");
  assert_string_equal (cJSON_GetObjectItem (o, "level")->valuestring, "warning");
  assert_string_equal (cJSON_GetObjectItem (o, "id")->valuestring, "test-id");
  cJSON_Delete (o);
}

static void
test_long_message_is_cut_not_the_line (void **state)
{
  struct fx *fx = *state;
  char *big = xmalloc (10000);
  memset (big, 'a', 9999);
  big[9999] = '\0';
  log_warn ("start %s", big);
  cJSON *o = read_line (fx);
  const char *msg = msg_of (o);
  assert_true (strncmp (msg, "start aaaa", 10) == 0);
  assert_true (ends_with (msg, MARKER));
  assert_true (strlen (msg) > PIPE_BUF / 2); /* cut, not emptied */
  cJSON_Delete (o);
  free (big);
}

/* Control characters grow six times when escaped (\u0001): the line, not the raw message,
 * must fit. */
static void
test_escapes_count_against_the_limit (void **state)
{
  struct fx *fx = *state;
  char raw[3001];
  memset (raw, '\001', 3000);
  raw[3000] = '\0';
  log_error ("%s", raw);
  cJSON *o = read_line (fx);
  const char *msg = msg_of (o);
  assert_true (ends_with (msg, MARKER));
  assert_int_equal (msg[0], '\001');
  cJSON_Delete (o);
}

static void
test_cut_keeps_utf8_whole (void **state)
{
  struct fx *fx = *state;
  for (int shift = 0; shift < 3; shift++)
    {
      /* "é" (2 bytes) and "€" (3 bytes) after 0..2 ASCII bytes: every cut position mod 3 */
      char raw[9000];
      size_t n = 0;
      for (int i = 0; i < shift; i++)
        raw[n++] = 'x';
      while (n + 5 < sizeof raw - 1)
        n += (size_t) sprintf (raw + n, "\xc3\xa9\xe2\x82\xac");
      raw[n] = '\0';
      log_info ("%s", raw);
      cJSON *o = read_line (fx);
      assert_true (ends_with (msg_of (o), MARKER));
      assert_true (utf8_valid (msg_of (o)));
      cJSON_Delete (o);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_short_message_is_whole, setup, teardown),
    cmocka_unit_test_setup_teardown (test_long_message_is_cut_not_the_line, setup, teardown),
    cmocka_unit_test_setup_teardown (test_escapes_count_against_the_limit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cut_keeps_utf8_whole, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
