#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "wire/ttrpc_wire.h"
#include "base/util.h"

static void
append_frame (struct evbuffer *b, uint32_t id, uint8_t type, const char *data)
{
  assert_int_equal (ttrpc_frame_append (b, id, type, 0, data, data ? strlen (data) : 0), 0);
}

static void
expect_frame (struct ttrpc_reader *r, struct evbuffer *in, uint32_t id, const char *data)
{
  struct ttrpc_frame f;
  assert_int_equal (ttrpc_reader_next (r, in, &f), TTRPC_READ_FRAME);
  assert_int_equal (f.header.stream_id, id);
  assert_int_equal (f.header.type, TTRPC_TYPE_REQUEST);
  assert_int_equal (f.header.length, strlen (data));
  if (*data)
    assert_memory_equal (f.data, data, strlen (data));
  else
    assert_null (f.data);
  free (f.data);
}

static void
test_header_round_trip (void **state)
{
  (void) state;
  struct ttrpc_header h = { .length = 0x00123456, .stream_id = 0x89abcdef, .type = 2, .flags = 5 };
  struct ttrpc_header back;
  uint8_t raw[TTRPC_HEADER_LEN];
  const uint8_t want[TTRPC_HEADER_LEN] = { 0x00, 0x12, 0x34, 0x56, 0x89, 0xab, 0xcd, 0xef, 2, 5 };

  ttrpc_header_encode (&h, raw);
  assert_memory_equal (raw, want, sizeof want);
  ttrpc_header_decode (raw, &back);
  assert_int_equal (back.length, h.length);
  assert_int_equal (back.stream_id, h.stream_id);
  assert_int_equal (back.type, h.type);
  assert_int_equal (back.flags, h.flags);
}

static void
test_split_byte_by_byte (void **state)
{
  (void) state;
  struct evbuffer *src = evbuffer_new ();
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  struct ttrpc_frame f;

  append_frame (src, 7, TTRPC_TYPE_REQUEST, "hello, frame");
  size_t total = evbuffer_get_length (src);
  for (size_t i = 0; i + 1 < total; i++)
    {
      evbuffer_remove_buffer (src, in, 1);
      assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
      assert_true (ttrpc_reader_room (in) >= 1);
    }
  evbuffer_remove_buffer (src, in, 1);
  expect_frame (&r, in, 7, "hello, frame");
  assert_int_equal (evbuffer_get_length (in), 0);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
  evbuffer_free (src);
  evbuffer_free (in);
}

static void
test_coalesced_frames (void **state)
{
  (void) state;
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  struct ttrpc_frame f;

  append_frame (in, 1, TTRPC_TYPE_REQUEST, "one");
  append_frame (in, 3, TTRPC_TYPE_REQUEST, "");
  append_frame (in, 5, TTRPC_TYPE_REQUEST, "three");
  /* and half of a fourth */
  evbuffer_add (in, "\0\0\0\x09\0\0", 6);
  expect_frame (&r, in, 1, "one");
  expect_frame (&r, in, 3, "");
  expect_frame (&r, in, 5, "three");
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
  assert_int_equal (evbuffer_get_length (in), 6);
  evbuffer_free (in);
}

static void
test_zero_length_frame (void **state)
{
  (void) state;
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  struct ttrpc_frame f;

  assert_int_equal (ttrpc_frame_append (in, 9, TTRPC_TYPE_DATA, TTRPC_FLAG_NO_DATA, NULL, 0), 0);
  assert_int_equal (evbuffer_get_length (in), TTRPC_HEADER_LEN);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_FRAME);
  assert_int_equal (f.header.length, 0);
  assert_int_equal (f.header.stream_id, 9);
  assert_int_equal (f.header.type, TTRPC_TYPE_DATA);
  assert_int_equal (f.header.flags, TTRPC_FLAG_NO_DATA);
  assert_null (f.data);
  assert_int_equal (evbuffer_get_length (in), 0);
  evbuffer_free (in);
}

static void
add_header (struct evbuffer *b, uint32_t length, uint32_t id)
{
  uint8_t raw[TTRPC_HEADER_LEN];
  struct ttrpc_header h = { .length = length, .stream_id = id, .type = TTRPC_TYPE_REQUEST };
  ttrpc_header_encode (&h, raw);
  evbuffer_add (b, raw, sizeof raw);
}

static void
add_junk (struct evbuffer *b, size_t n)
{
  cleanup_free char *junk = xmalloc (n);
  memset (junk, 'x', n);
  evbuffer_add (b, junk, n);
}

static void
test_oversize_skipped (void **state)
{
  (void) state;
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  struct ttrpc_frame f;
  const size_t big = TTRPC_MAX_DATA + 1000000;
  const size_t chunk = 300000;

  add_header (in, big, 11);
  add_junk (in, 100);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_OVERSIZE);
  assert_int_equal (f.header.length, big);
  assert_int_equal (f.header.stream_id, 11);
  assert_null (f.data);
  assert_int_equal (evbuffer_get_length (in), 0);
  size_t left = big - 100;
  while (left > chunk)
    {
      add_junk (in, chunk);
      left -= chunk;
      /* reported once only; the data never accumulates */
      assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
      assert_int_equal (evbuffer_get_length (in), 0);
    }
  /* the tail of the big frame and the next frame arrive together */
  add_junk (in, left);
  append_frame (in, 13, TTRPC_TYPE_REQUEST, "after");
  expect_frame (&r, in, 13, "after");
  assert_int_equal (r.skip, 0);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
  evbuffer_free (in);
}

static void
test_max_frame_accepted (void **state)
{
  (void) state;
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  struct ttrpc_frame f;

  add_header (in, TTRPC_MAX_DATA, 1);
  add_junk (in, TTRPC_MAX_DATA - 1);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_NEED_MORE);
  assert_int_equal (ttrpc_reader_room (in), 1);
  add_junk (in, 1);
  assert_int_equal (ttrpc_reader_room (in), 0);
  assert_int_equal (ttrpc_reader_next (&r, in, &f), TTRPC_READ_FRAME);
  assert_int_equal (f.header.length, TTRPC_MAX_DATA);
  free (f.data);
  assert_int_equal (ttrpc_reader_room (in), TTRPC_HEADER_LEN + TTRPC_MAX_DATA);
  evbuffer_free (in);
}

static void
test_frame_append_limit (void **state)
{
  (void) state;
  struct evbuffer *out = evbuffer_new ();
  cleanup_free char *data = xcalloc (1, TTRPC_MAX_DATA + 1);

  assert_int_equal (ttrpc_frame_append (out, 1, TTRPC_TYPE_RESPONSE, 0, data, TTRPC_MAX_DATA + 1),
                    -1);
  assert_int_equal (evbuffer_get_length (out), 0);
  assert_int_equal (ttrpc_frame_append (out, 1, TTRPC_TYPE_RESPONSE, 0, data, TTRPC_MAX_DATA), 0);
  assert_int_equal (evbuffer_get_length (out), TTRPC_HEADER_LEN + TTRPC_MAX_DATA);
  evbuffer_free (out);
}

static void
test_io_read_bounded (void **state)
{
  (void) state;
  int sv[2];
  struct evbuffer *in = evbuffer_new ();

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal (ttrpc_io_read (in, sv[0], 16), -1);
  assert_int_equal (errno, EAGAIN);
  assert_int_equal (write (sv[1], "0123456789", 10), 10);
  assert_int_equal (ttrpc_io_read (in, sv[0], 4), 4);
  assert_int_equal (evbuffer_get_length (in), 4);
  assert_int_equal (ttrpc_io_read (in, sv[0], 100), 6);
  assert_memory_equal (evbuffer_pullup (in, -1), "0123456789", 10);
  close (sv[1]);
  assert_int_equal (ttrpc_io_read (in, sv[0], 100), 0);
  close (sv[0]);
  evbuffer_free (in);
}

static void
test_io_write_no_sigpipe (void **state)
{
  (void) state;
  int sv[2];
  struct evbuffer *out = evbuffer_new ();
  char buf[8];

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  evbuffer_add (out, "abc", 3);
  assert_int_equal (ttrpc_io_write (out, sv[0]), 0);
  assert_int_equal (evbuffer_get_length (out), 0);
  assert_int_equal (read (sv[1], buf, sizeof buf), 3);
  close (sv[1]);
  evbuffer_add (out, "def", 3);
  /* would kill the process with SIGPIPE without MSG_NOSIGNAL */
  assert_int_equal (ttrpc_io_write (out, sv[0]), -1);
  assert_int_equal (errno, EPIPE);
  close (sv[0]);
  evbuffer_free (out);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_header_round_trip),   cmocka_unit_test (test_split_byte_by_byte),
    cmocka_unit_test (test_coalesced_frames),    cmocka_unit_test (test_zero_length_frame),
    cmocka_unit_test (test_oversize_skipped),    cmocka_unit_test (test_max_frame_accepted),
    cmocka_unit_test (test_frame_append_limit),  cmocka_unit_test (test_io_read_bounded),
    cmocka_unit_test (test_io_write_no_sigpipe),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
