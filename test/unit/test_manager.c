/* `start` helpers: socket address (must equal containerd's runc shim), grouping key, the
 * server's argv; mount option parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/runtime/bootstrap/v1/bootstrap.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "cli/manager.h"
#include "base/pb.h"
#include "base/util.h"
#include "platform/mount.h"

/* Captured from containerd-shim-runc-v2 1.6.20: the `address` file it wrote for container
 * "stock1" in namespace "default" of a containerd listening on /tmp/cd1/containerd.sock. */
#define STOCK_ADDRESS                                                                              \
  "unix:///run/containerd/s/1f71ee1da4eec5f3cd574ce414fdcbd57fefab35d592460970c08e42c4f8d6b0"

static void
test_socket_address_matches_upstream (void **state)
{
  (void) state;
  char *a = manager_socket_address ("/tmp/cd1/containerd.sock", "default", "stock1");
  assert_string_equal (a, STOCK_ADDRESS);
  free (a);
  /* filepath.Join cleans the path: doubled slashes and "." do not change the hash. */
  a = manager_socket_address ("/tmp//cd1/./containerd.sock/", "default", "stock1");
  assert_string_equal (a, STOCK_ADDRESS);
  free (a);
  a = manager_socket_address ("/tmp/cd1/containerd.sock", "other", "stock1");
  assert_string_not_equal (a, STOCK_ADDRESS);
  free (a);
}

static void
test_group_key (void **state)
{
  (void) state;
  char *k = manager_group_key (NULL, "id1");
  assert_string_equal (k, "id1");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"sb\"}}", "id1");
  assert_string_equal (k, "sb");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"sb\","
                         "\"io.containerd.runc.v2.group\":\"grp\"}}",
                         "id1");
  assert_string_equal (k, "grp");
  free (k);
  k = manager_group_key ("not json", "id1");
  assert_string_equal (k, "id1");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.containerd.runc.v2.group\":\"\"}}", "id1");
  assert_string_equal (k, "id1");
  free (k);
  /* A label spelled with \u escapes is still found. */
  k = manager_group_key ("{\"annotations\":{\"io.containerd.runc.v2.\\u0067roup\":\"g2\"}}", "id1");
  assert_string_equal (k, "g2");
  free (k);
  k = manager_group_key ("{\"process\":{\"args\":[\"sh\"]},\"annotations\":{\"a\":\"b\"}}", "id1");
  assert_string_equal (k, "id1");
  free (k);
}

static void
test_mount_options (void **state)
{
  (void) state;
  char *opts[] = { "ro", "nosuid", "lowerdir=/a:/b", "upperdir=/u", "rw", "rbind" };
  unsigned long flags;
  char *data;
  mount_parse_options (opts, 4, &flags, &data);
  assert_int_equal (flags, MS_RDONLY | MS_NOSUID);
  assert_string_equal (data, "lowerdir=/a:/b,upperdir=/u");
  free (data);
  mount_parse_options (opts, 6, &flags, &data);
  assert_int_equal (flags, MS_NOSUID | MS_BIND | MS_REC);
  free (data);
  mount_parse_options (opts, 0, &flags, &data);
  assert_int_equal (flags, 0);
  assert_null (data);
}

static void
test_bootstrap_params (void **state)
{
  (void) state;
  struct shim_args args = { .id = "task-1", .namespace = "k8s.io" };
  Containerd__Runc__V1__Options r = CONTAINERD__RUNC__V1__OPTIONS__INIT;
  r.binary_name = "/usr/bin/crun";
  Google__Protobuf__Any *opts = pb_any_pack (&r.base);
  Containerd__Runtime__Bootstrap__V1__Extension ext
      = CONTAINERD__RUNTIME__BOOTSTRAP__V1__EXTENSION__INIT;
  ext.value = opts;
  Containerd__Runtime__Bootstrap__V1__Extension *exts[] = { &ext };
  Containerd__Runtime__Bootstrap__V1__BootstrapParams b
      = CONTAINERD__RUNTIME__BOOTSTRAP__V1__BOOTSTRAP_PARAMS__INIT;
  b.instance_id = "task-1";
  b.namespace_ = "k8s.io";
  b.containerd_version = "2.3.0";
  b.n_extensions = 1;
  b.extensions = exts;
  size_t len, out_len;
  uint8_t *data = pb_pack (&b.base, &len);
  uint8_t *out = manager_bootstrap_options (&args, data, len, &out_len);
  size_t want_len;
  uint8_t *want = pb_pack (&opts->base, &want_len);
  assert_non_null (out);
  assert_int_equal (out_len, want_len);
  assert_memory_equal (out, want, want_len);
  free (out);
  free (data);

  /* Another task's parameters, or a plain options Any, are not ours to unwrap. */
  b.instance_id = "task-2";
  data = pb_pack (&b.base, &len);
  assert_null (manager_bootstrap_options (&args, data, len, &out_len));
  free (data);
  assert_null (manager_bootstrap_options (&args, want, want_len, &out_len));

  /* No extension: no options. */
  b.instance_id = "task-1";
  b.n_extensions = 0;
  data = pb_pack (&b.base, &len);
  out = manager_bootstrap_options (&args, data, len, &out_len);
  assert_non_null (out);
  assert_int_equal (out_len, 0);
  free (out);
  free (data);
  free (want);
  pb_any_free (opts);
}

#define ADDR "unix:///run/containerd/s/abc"

/* 1.6 and 1.7 (and an unknown caller) get the plain address: 1.6 reads nothing else and 1.7
 * rejects version 3. */
static void
test_start_reply_plain (void **state)
{
  (void) state;
  enum buildinfo_containerd callers[] = { BUILDINFO_UNKNOWN, BUILDINFO_CONTAINERD_1 };
  for (size_t i = 0; i < 2; i++)
    {
      size_t len = 0;
      uint8_t *out = manager_start_reply (ADDR, false, callers[i], &len);
      assert_int_equal (len, strlen (ADDR));
      assert_memory_equal (out, ADDR, len);
      free (out);
    }
}

/* 2.x gets the JSON bootstrap params with version 3, so it calls task v3. */
static void
test_start_reply_json_v3 (void **state)
{
  (void) state;
  size_t len = 0;
  char *out = (char *) manager_start_reply (ADDR, false, BUILDINFO_CONTAINERD_2, &len);
  assert_int_equal (len, strlen (out));
  cJSON *doc = cJSON_Parse (out);
  assert_non_null (doc);
  assert_int_equal (cJSON_GetObjectItem (doc, "version")->valueint, 3);
  assert_string_equal (cJSON_GetObjectItem (doc, "address")->valuestring, ADDR);
  assert_string_equal (cJSON_GetObjectItem (doc, "protocol")->valuestring, "ttrpc");
  cJSON_Delete (doc);
  free (out);
}

/* BootstrapParams on stdin (2.3+): a protobuf BootstrapResult, whatever the build info says. */
static void
test_start_reply_bootstrap_result (void **state)
{
  (void) state;
  size_t len = 0;
  uint8_t *out = manager_start_reply (ADDR, true, BUILDINFO_CONTAINERD_1, &len);
  Containerd__Runtime__Bootstrap__V1__BootstrapResult *r
      = containerd__runtime__bootstrap__v1__bootstrap_result__unpack (NULL, len, out);
  assert_non_null (r);
  assert_int_equal (r->version, 3);
  assert_string_equal (r->address, ADDR);
  assert_string_equal (r->protocol, "ttrpc");
  /* Not text: containerd must not mistake it for a plain address or JSON. */
  assert_int_not_equal (out[0], 'u');
  assert_int_not_equal (out[0], '{');
  containerd__runtime__bootstrap__v1__bootstrap_result__free_unpacked (r, NULL);
  free (out);
}

/* The word `start` in argv, as main hands it to manager_start. */
static char start_word[] = "start";

static int
serve_reports_start_word (const struct shim_args *args)
{
  (void) args;
  return start_word[0] == '\0' ? 0 : 1; /* the server's exit status tells the test */
}

/* The server's copy of `start` is blank from its first instruction: a server reparented
 * before it ran never reads as an invocation to ps or pgrep. `start` keeps its own. */
static void
test_start_blanks_the_word_in_the_server_only (void **state)
{
  (void) state;
  char bundle[] = "/tmp/test-manager-XXXXXX";
  assert_non_null (mkdtemp (bundle));
  struct shim_args args = { .namespace = "cshim-unit",
                            .id = "blank1",
                            .address = "/tmp/test-manager-ctd.sock",
                            .bundle = bundle };
  int saved_in = dup (STDIN_FILENO), saved_out = dup (STDOUT_FILENO);
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  dup2 (devnull, STDIN_FILENO); /* no start options on stdin */
  dup2 (devnull, STDOUT_FILENO); /* the address reply */
  shim_error_t err = NULL;
  int r = manager_start (&args, serve_reports_start_word, start_word, &err);
  dup2 (saved_in, STDIN_FILENO);
  dup2 (saved_out, STDOUT_FILENO);
  close (saved_in);
  close (saved_out);
  close (devnull);
  assert_int_equal (r, 0);
  assert_string_equal (start_word, "start");
  int status = 0;
  assert_true (waitpid (-1, &status, 0) > 0); /* the server, our only child */
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);

  char *path = xasprintf ("%s/address", bundle);
  char *address = NULL;
  assert_int_equal (read_file (path, 4096, &address, NULL, NULL), 0);
  assert_int_equal (unlink (address + strlen ("unix://")), 0);
  unlink (path);
  free (address);
  free (path);
  rmdir (bundle);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_socket_address_matches_upstream),
    cmocka_unit_test (test_group_key),
    cmocka_unit_test (test_mount_options),
    cmocka_unit_test (test_bootstrap_params),
    cmocka_unit_test (test_start_reply_plain),
    cmocka_unit_test (test_start_reply_json_v3),
    cmocka_unit_test (test_start_reply_bootstrap_result),
    cmocka_unit_test (test_start_blanks_the_word_in_the_server_only),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
