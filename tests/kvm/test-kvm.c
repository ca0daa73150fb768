/* test-kvm.c — integration tests of the kvm isolation backend
 * (plugins/kvm/): real qubes booted under QEMU (TCG on machines without a
 * working KVM), loaded through the core's plugin registry.
 *
 * The guest image is built once per run from the host's Debian packages
 * (template/build-template.sh) into a temporary directory.  Every test waits
 * with a timeout and ends by checking that no QEMU it started is left.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "qube-plugin-private.h"

#define READY_MARKER "qube-guest: ready"
#define BOOT_TIMEOUT_S 90
#define GUEST_MEMORY_MIB 192

/* Per run: the template, the state directory (so the acceleration is
 * measured once and every test reuses the answer), and the runtime
 * directory, where each test's qubes have their own names (so that the
 * run can kill whatever a failed test left behind). */
static char *tmp_dir;
static char *template_dir;
static char *state_dir;
static char *runtime_root;

/* Per test. */
static char *test_dir;

typedef struct
{
  char *name;
  char *uuid;
  char *runtime_dir;
  char *console;
  char *pidfile;
  QubeDomainRef ref;
} TestQube;

/* ---- loading the plugin ---- */

typedef struct
{
  QubePluginRegistry *registry;
  QubePluginInfo *info;
  const QubeBackendOps *ops;
  void *data;
} Backend;

/* The kvm plugin as the core sees it: found by the registry in the build
 * tree (QUBE_PLUGIN_PATH), with host services bound to this test's state
 * and runtime directories. */
static void
backend_load (Backend *backend)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");
  g_autofree char *plugin_dir = NULL;
  g_autoptr(GError) error = NULL;
  const QubePluginDesc *desc;

  ck_assert_msg (builddir != NULL, "QUBE_TEST_BUILDDIR is not set");
  plugin_dir = g_build_filename (builddir, "plugins", "kvm", ".libs", NULL);
  g_setenv ("QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  backend->registry = qube_plugin_registry_new (state_dir, runtime_root);
  backend->info = _qube_plugin_registry_find (backend->registry, QUBE_PLUGIN_KIND_BACKEND,
                                              "kvm", &error);
  ck_assert_msg (backend->info != NULL, "kvm plugin not loaded: %s",
                 error ? error->message : "");
  desc = _qube_plugin_info_get_desc (backend->info);
  backend->ops = desc->backend;
  backend->data = _qube_plugin_info_get_data (backend->info);
  ck_assert_ptr_nonnull (backend->ops);
}

static void
backend_unload (Backend *backend)
{
  g_clear_object (&backend->registry);
}

/* Fails the test with the plugin's message when rc is not 0. */
static void
check_rc (Backend *backend, int rc, const char *what)
{
  g_autoptr(GError) error = NULL;

  if (rc == 0)
    return;
  _qube_plugin_take_error (backend->info, rc, what, &error);
  ck_abort_msg ("%s", error->message);
}

/* ---- qubes ---- */

static TestQube *
test_qube_new (const char *name)
{
  TestQube *qube = g_new0 (TestQube, 1);

  qube->name = g_strdup (name);
  qube->uuid = g_uuid_string_random ();
  qube->runtime_dir = g_build_filename (runtime_root, name, NULL);
  qube->console = g_build_filename (qube->runtime_dir, "console.log", NULL);
  qube->pidfile = g_build_filename (qube->runtime_dir, "qemu.pid", NULL);
  ck_assert_int_eq (g_mkdir_with_parents (qube->runtime_dir, 0755), 0);
  qube->ref.size = sizeof qube->ref;
  qube->ref.name = qube->name;
  qube->ref.uuid = qube->uuid;
  qube->ref.runtime_dir = qube->runtime_dir;
  return qube;
}

static void
test_qube_free (TestQube *qube)
{
  g_free (qube->name);
  g_free (qube->uuid);
  g_free (qube->runtime_dir);
  g_free (qube->console);
  g_free (qube->pidfile);
  g_free (qube);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestQube, test_qube_free)

static char *
template_file (const char *name)
{
  return g_build_filename (template_dir, name, NULL);
}

/* Creates the qube: `root` in `root_format` (read-only when raw, the
 * template's own image), `private` (nullable) writable, an echo port,
 * `kernelopts` (nullable) added. */
static void
create_qube_with_root (Backend *backend, TestQube *qube, const char *root,
                       QubeBlockFormat root_format, const char *private_img,
                       const char *kernelopts)
{
  g_autofree char *kernel = template_file ("vmlinux");
  g_autofree char *initramfs = template_file ("initramfs.img");
  g_autofree char *opts = g_strdup_printf ("qube.echo=org.test.echo%s%s",
                                           kernelopts ? " " : "",
                                           kernelopts ? kernelopts : "");
  QubeDiskSpec disks[2] = {
    { .size = sizeof (QubeDiskSpec), .volume = "root", .path = root,
      .format = root_format, .readonly = root_format == QUBE_BLOCK_RAW, .devname = "vda" },
    { .size = sizeof (QubeDiskSpec), .volume = "private", .path = private_img,
      .format = QUBE_BLOCK_RAW, .readonly = 0, .devname = "vdb" },
  };
  QubeKeyValue extra[] = { { "serial-ports", "org.test.echo,org.test.idle" } };
  QubeDomainConfig config = {
    .size = sizeof config,
    .ref = qube->ref,
    .klass = "AppVM",
    .memory_mib = GUEST_MEMORY_MIB,
    .maxmem_mib = GUEST_MEMORY_MIB,
    .vcpus = 1,
    .virt_mode = "pvh",
    .kernel = kernel,
    .initramfs = initramfs,
    .kernelopts = opts,
    .disks = disks,
    .n_disks = private_img != NULL ? 2 : 1,
    .extra = extra,
    .n_extra = G_N_ELEMENTS (extra),
  };
  char *backend_id = NULL;

  check_rc (backend, backend->ops->create (backend->data, &config, &backend_id),
            "create");
  ck_assert_ptr_nonnull (backend_id);
  ck_assert_int_gt (atoi (backend_id), 1);
  free (backend_id);
}

/* The qube on the template's root, read-only. */
static void
create_qube (Backend *backend, TestQube *qube, const char *private_img,
             const char *kernelopts)
{
  g_autofree char *root = template_file ("root.img");

  create_qube_with_root (backend, qube, root, QUBE_BLOCK_RAW, private_img, kernelopts);
}

static QubeDomainInfo
qube_info (Backend *backend, TestQube *qube)
{
  QubeDomainInfo info = { .size = sizeof info };

  check_rc (backend, backend->ops->info (backend->data, &qube->ref, &info), "info");
  return info;
}

static pid_t
qube_pid (TestQube *qube)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents (qube->pidfile, &text, NULL, NULL))
    return 0;
  return (pid_t) atoi (text);
}

static gboolean
process_alive (pid_t pid)
{
  g_autofree char *stat_path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *p;

  if (pid <= 0 || kill (pid, 0) != 0)
    return FALSE;
  if (!g_file_get_contents (stat_path, &stat, NULL, NULL))
    return FALSE;
  p = strrchr (stat, ')');
  return p != NULL && p[1] == ' ' && p[2] != 'Z';
}

/* Waits for `text` on the console; on timeout (or if QEMU is gone) the
 * error carries the console's last lines. */
static gboolean
wait_console (TestQube *qube, pid_t pid, const char *text, int timeout_s, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;

  for (;;)
    {
      g_autofree char *console = NULL;
      gboolean alive = process_alive (pid);

      g_file_get_contents (qube->console, &console, NULL, NULL);
      if (console != NULL && strstr (console, text) != NULL)
        return TRUE;
      if (!alive || g_get_monotonic_time () > deadline)
        {
          g_auto(GStrv) lines = g_strsplit (console ? console : "", "\n", -1);
          guint n = g_strv_length (lines);
          guint first = n > 8 ? n - 8 : 0;
          g_autofree char *tail = g_strjoinv ("\n", lines + first);

          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "qube '%s' did not print '%s' %s; console ends with:\n%s",
                       qube->name, text,
                       alive ? "in time" : "before its QEMU exited", tail);
          return FALSE;
        }
      g_usleep (50 * 1000);
    }
}

/* Starts a created qube and waits for its ready marker. */
static pid_t
start_qube (Backend *backend, TestQube *qube)
{
  g_autoptr(GError) error = NULL;
  QubeDomainInfo info;
  pid_t pid;

  info = qube_info (backend, qube);
  ck_assert_int_eq (info.state, QUBE_DOMAIN_CREATED);
  check_rc (backend, backend->ops->start (backend->data, &qube->ref), "start");
  pid = qube_pid (qube);
  ck_assert_msg (wait_console (qube, pid, READY_MARKER, BOOT_TIMEOUT_S, &error),
                 "%s", error ? error->message : "");
  return pid;
}

static pid_t
boot_qube (Backend *backend, TestQube *qube, const char *private_img)
{
  create_qube (backend, qube, private_img, NULL);
  return start_qube (backend, qube);
}

static gboolean
wait_gone (pid_t pid, int timeout_s)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;

  while (process_alive (pid))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (20 * 1000);
    }
  return TRUE;
}

/* The end of every test: no QEMU left, nothing but logs in the runtime
 * directory. */
static void
assert_cleaned_up (TestQube *qube, pid_t pid)
{
  static const char *const gone[] = {
    "qemu.pid", "qmp.sock", "kvm.conf", "shutdown",
    "vport-org.test.echo.sock", "vport-org.test.idle.sock",
  };

  ck_assert_msg (!process_alive (pid), "QEMU pid %d of qube '%s' is still running",
                 (int) pid, qube->name);
  for (gsize i = 0; i < G_N_ELEMENTS (gone); i++)
    {
      g_autofree char *path = g_build_filename (qube->runtime_dir, gone[i], NULL);
      ck_assert_msg (!g_file_test (path, G_FILE_TEST_EXISTS), "%s was left behind", path);
    }
}

/* Kills the qube and checks that nothing of it is left. */
static void
kill_qube (Backend *backend, TestQube *qube, pid_t pid)
{
  check_rc (backend, backend->ops->kill (backend->data, &qube->ref), "kill");
  assert_cleaned_up (qube, pid);
}

/* Last resort so that a failed assertion never leaves a QEMU running:
 * every process whose arguments name this test's runtime directory. */
static void
kill_leftovers (void)
{
  g_autoptr(GDir) proc = NULL;
  const char *entry;

  if (runtime_root == NULL || (proc = g_dir_open ("/proc", 0, NULL)) == NULL)
    return;
  while ((entry = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *cmdline_path = NULL;
      g_autofree char *cmdline = NULL;
      int pid = atoi (entry);
      gsize len;

      if (pid <= 1 || pid == getpid ())
        continue;
      cmdline_path = g_strdup_printf ("/proc/%d/cmdline", pid);
      if (g_file_get_contents (cmdline_path, &cmdline, &len, NULL) &&
          memmem (cmdline, len, runtime_root, strlen (runtime_root)) != NULL)
        kill (pid, SIGKILL);
    }
}

/* ---- the echo port (virtio-serial) ---- */

static GSocketConnection *
port_connect (TestQube *qube, const char *port)
{
  g_autofree char *name = g_strdup_printf ("vport-%s.sock", port);
  g_autofree char *path = g_build_filename (qube->runtime_dir, name, NULL);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection;

  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, &error);
  ck_assert_msg (connection != NULL, "cannot connect to port %s: %s", path,
                 error ? error->message : "");
  return connection;
}

/* Sends `text` and returns TRUE when it comes back within `timeout_s`.  The
 * guest reopens the port after each connection, so a send may be lost
 * while it does: resend until the echo comes. */
static gboolean
port_echoes (GSocketConnection *connection, const char *text, int timeout_s)
{
  GSocket *socket = g_socket_connection_get_socket (connection);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_s * G_USEC_PER_SEC;
  g_autoptr(GString) received = g_string_new (NULL);

  while (g_get_monotonic_time () < deadline)
    {
      char buf[256];
      gssize n;

      if (received->len == 0)
        g_socket_send (socket, text, strlen (text), NULL, NULL);
      if (!g_socket_condition_timed_wait (socket, G_IO_IN, G_USEC_PER_SEC, NULL, NULL))
        continue;
      n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);
      if (n <= 0)
        return FALSE;
      g_string_append_len (received, buf, n);
      if (strstr (received->str, text) != NULL)
        return TRUE;
    }
  return FALSE;
}

/* ---- fixtures ---- */

static void
setup (void)
{
  test_dir = g_build_filename (tmp_dir, "test-XXXXXX", NULL);
  ck_assert_ptr_nonnull (g_mkdtemp (test_dir));
}

static void
teardown (void)
{
  kill_leftovers ();
  /* A small recursive removal through rm(1): the tree holds only files
   * this test made. */
  {
    const char *argv[] = { "rm", "-rf", test_dir, NULL };
    g_autoptr(GSubprocess) rm = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, NULL);
    if (rm != NULL)
      g_subprocess_wait (rm, NULL, NULL);
  }
  g_clear_pointer (&test_dir, g_free);
}

static void
run_command (const char *const *argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  int status;

  ck_assert_msg (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH |
                               G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                               &status, &error),
                 "%s: %s", argv[0], error ? error->message : "");
  ck_assert_msg (g_spawn_check_wait_status (status, NULL), "%s failed: %s", argv[0], err);
}

/* An empty ext4 private volume with `rc_local` (nullable) as its
 * /config/rc.local, made without mounting. */
static char *
make_private (const char *rc_local)
{
  g_autofree char *dir = g_build_filename (test_dir, "private-content", NULL);
  g_autofree char *config = g_build_filename (dir, "config", NULL);
  char *image = g_build_filename (test_dir, "private.img", NULL);

  ck_assert_int_eq (g_mkdir_with_parents (config, 0755), 0);
  if (rc_local != NULL)
    {
      g_autofree char *script = g_build_filename (config, "rc.local", NULL);
      ck_assert (g_file_set_contents (script, rc_local, -1, NULL));
      ck_assert_int_eq (g_chmod (script, 0755), 0);
    }
  {
    const char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-d", dir, image, "32M", NULL };
    run_command (argv);
  }
  return image;
}

/* A file of an ext4 image, read without mounting it (debugfs). */
static char *
read_from_image (const char *image, const char *path)
{
  g_autofree char *request = g_strdup_printf ("cat %s", path);
  const char *argv[] = { "debugfs", "-R", request, image, NULL };
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status;

  ck_assert_msg (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL,
                               &status, &error),
                 "debugfs: %s", error ? error->message : "");
  return out;
}

/* ---- tests ---- */

/* A qube boots to its ready marker, runs under the acceleration the
 * plugin chose, talks over a named virtio-serial port, and kill removes it. */
START_TEST (test_boot_and_kill)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GSocketConnection) port = NULL;
  QubeDomainInfo info;
  pid_t pid;

  backend_load (&backend);
  qube = test_qube_new ("boot");
  pid = boot_qube (&backend, qube, NULL);

  info = qube_info (&backend, qube);
  ck_assert_int_eq (info.state, QUBE_DOMAIN_RUNNING);
  ck_assert_uint_eq (info.memory_kib, GUEST_MEMORY_MIB * 1024);
  ck_assert_uint_eq (info.vcpus, 1);
  ck_assert_msg (g_str_equal (info.accel, "tcg") || g_str_equal (info.accel, "kvm"),
                 "accel is '%s'", info.accel);
  ck_assert_uint_gt (info.host_overhead_kib, 0);
  ck_assert_uint_gt (info.cpu_time_ns, 0);
  {
    uint64_t total = 0, free_mib = 0;

    check_rc (&backend, backend.ops->host_memory (backend.data, &total, &free_mib), "host_memory");
    ck_assert_uint_gt (total, GUEST_MEMORY_MIB);
    ck_assert_uint_le (free_mib, total);
  }

  port = port_connect (qube, "org.test.echo");
  ck_assert_msg (port_echoes (port, "hello through virtio-serial\n", 30),
                 "the guest did not echo on port org.test.echo");
  g_io_stream_close (G_IO_STREAM (port), NULL, NULL);

  check_rc (&backend, backend.ops->kill (backend.data, &qube->ref), "kill");
  ck_assert (wait_gone (pid, 10));
  info = qube_info (&backend, qube);
  ck_assert_int_eq (info.state, QUBE_DOMAIN_HALTED);
  assert_cleaned_up (qube, pid);
  /* Killing a halted qube is not an error. */
  check_rc (&backend, backend.ops->kill (backend.data, &qube->ref), "second kill");
  backend_unload (&backend);
}
END_TEST

/* Pause stops the guest (its port stops answering), unpause resumes it. */
START_TEST (test_pause_unpause)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GSocketConnection) port = NULL;
  pid_t pid;

  backend_load (&backend);
  qube = test_qube_new ("pause");
  pid = boot_qube (&backend, qube, NULL);
  port = port_connect (qube, "org.test.echo");
  ck_assert (port_echoes (port, "before\n", 30));

  check_rc (&backend, backend.ops->pause (backend.data, &qube->ref), "pause");
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_PAUSED);
  /* A paused guest cannot answer, however long we wait. */
  ck_assert (!port_echoes (port, "while paused\n", 2));

  check_rc (&backend, backend.ops->unpause (backend.data, &qube->ref), "unpause");
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_RUNNING);
  /* The line sent while paused is delivered now, then a new one. */
  ck_assert (port_echoes (port, "after\n", 30));
  g_io_stream_close (G_IO_STREAM (port), NULL, NULL);

  kill_qube (&backend, qube, pid);
  backend_unload (&backend);
}
END_TEST

/* Shutdown powers the guest off cleanly: QEMU exits by itself, the qube is
 * halted (not crashed) and its runtime files are gone; what the guest wrote
 * to its private volume is on the host's image file. */
START_TEST (test_shutdown_keeps_private_data)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *private_img = NULL;
  g_autofree char *written = NULL;
  g_autofree char *console = NULL;
  QubeDomainInfo info;
  pid_t pid;

  backend_load (&backend);
  private_img = make_private ("#!/bin/sh\n"
                              "uname -r > /home/user/written-by-guest\n"
                              "echo rc.local ran\n");
  qube = test_qube_new ("shutdown");
  pid = boot_qube (&backend, qube, private_img);
  ck_assert (wait_console (qube, pid, "rc.local ran", 5, &error));

  check_rc (&backend, backend.ops->shutdown (backend.data, &qube->ref), "shutdown");
  ck_assert_msg (wait_gone (pid, 60), "QEMU did not exit after shutdown");
  info = qube_info (&backend, qube);
  ck_assert_int_eq (info.state, QUBE_DOMAIN_HALTED);
  assert_cleaned_up (qube, pid);

  g_file_get_contents (qube->console, &console, NULL, NULL);
  ck_assert_ptr_nonnull (strstr (console, "qube-guest: powering off"));
  written = read_from_image (private_img, "/home/user/written-by-guest");
  ck_assert_msg (written != NULL && g_str_has_prefix (written, "6."),
                 "the private volume holds '%s' instead of the guest's kernel release",
                 written ? written : "");
  backend_unload (&backend);
}
END_TEST

/* The root volume as a qcow2 snapshot of the template's root: the guest's
 * writes to its root land in the snapshot, the template stays as it was. */
START_TEST (test_root_writes_go_to_snapshot)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *template_root = template_file ("root.img");
  g_autofree char *snapshot = g_build_filename (test_dir, "root.qcow2", NULL);
  g_autofree char *flattened = g_build_filename (test_dir, "root-flat.img", NULL);
  g_autofree char *private_img = NULL;
  g_autofree char *in_snapshot = NULL;
  g_autofree char *in_template = NULL;
  pid_t pid;

  {
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                           "-b", template_root, snapshot, NULL };
    run_command (argv);
  }
  private_img = make_private ("#!/bin/sh\n"
                              "echo written in root > /etc/root-write\n"
                              "echo rc.local ran\n");
  backend_load (&backend);
  qube = test_qube_new ("snapshot");
  create_qube_with_root (&backend, qube, snapshot, QUBE_BLOCK_QCOW2, private_img, NULL);
  pid = start_qube (&backend, qube);
  ck_assert (wait_console (qube, pid, "rc.local ran", 5, &error));
  check_rc (&backend, backend.ops->shutdown (backend.data, &qube->ref), "shutdown");
  ck_assert_msg (wait_gone (pid, 60), "QEMU did not exit after shutdown");
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_HALTED);
  assert_cleaned_up (qube, pid);

  {
    const char *argv[] = { "qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                           snapshot, flattened, NULL };
    run_command (argv);
  }
  in_snapshot = read_from_image (flattened, "/etc/root-write");
  ck_assert_str_eq (in_snapshot, "written in root\n");
  in_template = read_from_image (template_root, "/etc/root-write");
  ck_assert_str_eq (in_template, "");
  backend_unload (&backend);
}
END_TEST

/* QEMU killed by someone else: the qube is reported crashed, and kill
 * cleans up after it. */
START_TEST (test_qemu_killed_from_outside)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  pid_t pid;

  backend_load (&backend);
  qube = test_qube_new ("outside");
  pid = boot_qube (&backend, qube, NULL);
  ck_assert_int_eq (kill (pid, SIGKILL), 0);
  ck_assert (wait_gone (pid, 10));

  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_CRASHED);
  check_rc (&backend, backend.ops->kill (backend.data, &qube->ref), "kill");
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_HALTED);
  assert_cleaned_up (qube, pid);
  backend_unload (&backend);
}
END_TEST

/* A guest whose init never gets ready: the wait ends with the console's
 * last lines, and kill leaves nothing running. */
START_TEST (test_guest_never_ready)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *console = NULL;
  g_auto(GStrv) lines = NULL;
  const char *quoted;
  pid_t pid;

  backend_load (&backend);
  qube = test_qube_new ("stuck");
  /* loglevel after the plugin's "quiet" makes the kernel say what it runs. */
  create_qube (&backend, qube, NULL, "loglevel=7 rdinit=/bin/sleep -- 100000");
  check_rc (&backend, backend.ops->start (backend.data, &qube->ref), "start");
  pid = qube_pid (qube);

  /* The broken init runs (a loaded machine may take long to get there),
   * and the ready line does not follow. */
  ck_assert_msg (wait_console (qube, pid, "Run /bin/sleep as init process", BOOT_TIMEOUT_S, &error),
                 "%s", error ? error->message : "");
  ck_assert (!wait_console (qube, pid, READY_MARKER, 15, &error));
  /* The message quotes the console's last lines (the guest may have
   * printed more since, so each quoted line is looked up in it). */
  ck_assert (g_file_get_contents (qube->console, &console, NULL, NULL));
  quoted = strstr (error->message, "console ends with:\n");
  ck_assert_msg (quoted != NULL, "no console in the error: %s", error->message);
  lines = g_strsplit (quoted + strlen ("console ends with:\n"), "\n", -1);
  ck_assert_uint_ge (g_strv_length (lines), 4);
  for (guint i = 0; lines[i] != NULL; i++)
    ck_assert_msg (strstr (console, lines[i]) != NULL,
                   "'%s' in the error is not on the console", lines[i]);
  /* The kernel ran the broken init: that is what the console shows. */
  ck_assert_ptr_nonnull (strstr (console, "Run /bin/sleep as init process"));
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_RUNNING);

  kill_qube (&backend, qube, pid);
  backend_unload (&backend);
}
END_TEST

/* Number of processes whose arguments name `path`. */
static guint
count_processes_naming (const char *path)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *entry;
  guint n = 0;

  while (proc != NULL && (entry = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *cmdline_path = g_strdup_printf ("/proc/%s/cmdline", entry);
      g_autofree char *cmdline = NULL;
      gsize len;

      if (atoi (entry) > 1 && atoi (entry) != getpid () &&
          g_file_get_contents (cmdline_path, &cmdline, &len, NULL) &&
          memmem (cmdline, len, path, strlen (path)) != NULL)
        n++;
    }
  return n;
}

/* Creating a qube that runs already is refused and leaves it running; a
 * missing kernel is refused with nothing started. */
START_TEST (test_create_refusals)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(TestQube) other = NULL;
  g_autoptr(GError) error = NULL;
  QubeDomainConfig config = { .size = sizeof config };
  char *backend_id = NULL;
  int rc;
  pid_t pid;

  backend_load (&backend);
  qube = test_qube_new ("twice");
  create_qube (&backend, qube, NULL, NULL);
  pid = qube_pid (qube);

  config.ref = qube->ref;
  config.memory_mib = GUEST_MEMORY_MIB;
  config.vcpus = 1;
  config.kernel = template_dir;
  rc = backend.ops->create (backend.data, &config, &backend_id);
  ck_assert_int_eq (rc, QUBE_ABI_E_EXISTS);
  _qube_plugin_take_error (backend.info, rc, "create", &error);
  ck_assert_ptr_nonnull (strstr (error->message, "already running"));
  ck_assert (process_alive (pid));
  g_clear_error (&error);

  other = test_qube_new ("nokernel");
  config.ref = other->ref;
  config.kernel = "/nonexistent/vmlinux";
  rc = backend.ops->create (backend.data, &config, &backend_id);
  ck_assert_int_eq (rc, QUBE_ABI_E_NOT_FOUND);
  _qube_plugin_take_error (backend.info, rc, "create", &error);
  ck_assert_msg (strstr (error->message, "cannot create qube 'nokernel': kernel /nonexistent/vmlinux not found") != NULL,
                 "%s", error->message);
  ck_assert_int_eq (qube_info (&backend, other).state, QUBE_DOMAIN_HALTED);
  g_clear_error (&error);

  /* QEMU itself refuses: a raw image handed over as qcow2.  Its message
   * reaches the caller and nothing of the qube remains. */
  {
    g_autofree char *root = template_file ("root.img");
    g_autofree char *kernel = template_file ("vmlinux");
    QubeDiskSpec disk = { .size = sizeof disk, .volume = "root", .path = root,
                          .format = QUBE_BLOCK_QCOW2, .readonly = 1 };

    config.kernel = kernel;
    config.disks = &disk;
    config.n_disks = 1;
    rc = backend.ops->create (backend.data, &config, &backend_id);
    ck_assert_int_ne (rc, 0);
    _qube_plugin_take_error (backend.info, rc, "create", &error);
    ck_assert_msg (strstr (error->message, "QEMU exited") != NULL &&
                   strstr (error->message, "qcow2") != NULL, "%s", error->message);
    ck_assert_uint_eq (count_processes_naming (other->runtime_dir), 0);
    assert_cleaned_up (other, 0);
  }

  kill_qube (&backend, qube, pid);
  backend_unload (&backend);
}
END_TEST

/* Two processes creating the same qube at once: one QEMU, one success,
 * the other refused as busy or already running. */
START_TEST (test_concurrent_creates)
{
  g_autoptr(TestQube) qube = test_qube_new ("race");
  Backend backend = { 0 };
  pid_t children[2];
  int successes = 0;

  for (int i = 0; i < 2; i++)
    {
      children[i] = fork ();
      ck_assert_int_ge (children[i], 0);
      if (children[i] == 0)
        {
          Backend mine = { 0 };
          g_autofree char *kernel = template_file ("vmlinux");
          QubeDomainConfig config = {
            .size = sizeof config, .ref = qube->ref, .memory_mib = GUEST_MEMORY_MIB,
            .vcpus = 1, .kernel = kernel,
          };
          char *backend_id = NULL;
          int rc;

          backend_load (&mine);
          rc = mine.ops->create (mine.data, &config, &backend_id);
          _exit (rc);
        }
    }
  for (int i = 0; i < 2; i++)
    {
      int status;

      ck_assert_int_eq (waitpid (children[i], &status, 0), children[i]);
      ck_assert (WIFEXITED (status));
      if (WEXITSTATUS (status) == 0)
        successes++;
      else
        ck_assert_msg (WEXITSTATUS (status) == QUBE_ABI_E_BUSY ||
                       WEXITSTATUS (status) == QUBE_ABI_E_EXISTS,
                       "the second create failed with %d", WEXITSTATUS (status));
    }
  ck_assert_int_eq (successes, 1);
  ck_assert_uint_eq (count_processes_naming (qube->pidfile), 1);

  backend_load (&backend);
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_CREATED);
  kill_qube (&backend, qube, qube_pid (qube));
  backend_unload (&backend);
}
END_TEST

/* A qube outlives the process that started it; another process finds it
 * through its runtime directory alone, pauses and kills it. */
START_TEST (test_second_process)
{
  g_autoptr(TestQube) qube = test_qube_new ("second");
  Backend backend = { 0 };
  pid_t child, pid;
  int status;

  child = fork ();
  ck_assert_int_ge (child, 0);
  if (child == 0)
    {
      Backend first = { 0 };

      backend_load (&first);
      boot_qube (&first, qube, NULL);
      _exit (0);
    }
  ck_assert_int_eq (waitpid (child, &status, 0), child);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "the first process could not boot the qube");

  pid = qube_pid (qube);
  ck_assert (process_alive (pid));
  backend_load (&backend);
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_RUNNING);
  check_rc (&backend, backend.ops->pause (backend.data, &qube->ref), "pause");
  ck_assert_int_eq (qube_info (&backend, qube).state, QUBE_DOMAIN_PAUSED);
  kill_qube (&backend, qube, pid);
  backend_unload (&backend);
}
END_TEST

/* Without an override the plugin measures whether KVM works by booting,
 * caches the answer with the QEMU version it measured, and uses it. */
START_TEST (test_accel_probe_cached)
{
  Backend backend = { 0 };
  g_autoptr(TestQube) qube = NULL;
  g_autoptr(GKeyFile) cache = g_key_file_new ();
  g_autofree char *cache_path = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *version = NULL;
  QubeDomainInfo info;
  pid_t pid;

  cache_path = g_build_filename (state_dir, "kvm", "accel", NULL);
  g_unlink (cache_path);
  g_unsetenv ("QUBE_KVM_ACCEL");
  backend_load (&backend);
  qube = test_qube_new ("probe");
  pid = boot_qube (&backend, qube, NULL);

  ck_assert_msg (g_key_file_load_from_file (cache, cache_path, G_KEY_FILE_NONE, NULL),
                 "no acceleration cache at %s", cache_path);
  accel = g_key_file_get_string (cache, "probe", "accel", NULL);
  version = g_key_file_get_string (cache, "probe", "qemu-version", NULL);
  ck_assert_ptr_nonnull (accel);
  ck_assert_ptr_nonnull (version);
  ck_assert_ptr_nonnull (strstr (version, "QEMU"));
  if (access ("/dev/kvm", R_OK | W_OK) != 0)
    ck_assert_str_eq (accel, "tcg");
  info = qube_info (&backend, qube);
  ck_assert_str_eq (info.accel, accel);

  kill_qube (&backend, qube, pid);
  backend_unload (&backend);
}
END_TEST

static gboolean
build_template (void)
{
  const char *srcdir = g_getenv ("QUBE_TEST_SRCDIR");
  g_autofree char *script = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  int status;

  tmp_dir = g_dir_make_tmp ("qube-kvm-template-XXXXXX", &error);
  if (tmp_dir == NULL)
    g_error ("%s", error->message);
  template_dir = g_build_filename (tmp_dir, "debian-minimal", NULL);
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  runtime_root = g_build_filename (tmp_dir, "run", NULL);
  g_mkdir_with_parents (state_dir, 0755);
  g_mkdir_with_parents (runtime_root, 0755);
  script = g_build_filename (srcdir ? srcdir : ".", "template", "build-template.sh", NULL);
  {
    const char *argv[] = { "/bin/sh", script, template_dir, NULL };
    if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                       NULL, &err, &status, &error) ||
        !g_spawn_check_wait_status (status, &error))
      {
        g_printerr ("cannot build the guest image: %s\n%s", error->message, err ? err : "");
        return FALSE;
      }
  }
  return TRUE;
}

int
main (void)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  int failed;

  if (qemu == NULL)
    {
      printf ("SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)\n");
      return 77;
    }
  if (!build_template ())
    return 1;

  suite = suite_create ("kvm");
  tc = tcase_create ("qubes");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_boot_and_kill);
  tcase_add_test (tc, test_pause_unpause);
  tcase_add_test (tc, test_shutdown_keeps_private_data);
  tcase_add_test (tc, test_root_writes_go_to_snapshot);
  tcase_add_test (tc, test_qemu_killed_from_outside);
  tcase_add_test (tc, test_guest_never_ready);
  tcase_add_test (tc, test_create_refusals);
  tcase_add_test (tc, test_concurrent_creates);
  tcase_add_test (tc, test_second_process);
  tcase_add_test (tc, test_accel_probe_cached);
  suite_add_tcase (suite, tc);

  runner = srunner_create (suite);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);

  /* A failed assertion ends its test before the test's own kill. */
  kill_leftovers ();
  {
    const char *argv[] = { "rm", "-rf", tmp_dir, NULL };
    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                  NULL, NULL);
  }
  return failed == 0 ? 0 : 1;
}
