/* kvm-vchan-fixture.c — a real qube with a guest vchan peer, for the kvm
 * vchan tests and benchmark (see kvm-vchan-fixture.h).
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "kvm-vchan-fixture.h"
#include "vchan-peer-proto.h"
#include "qube-error.h"

#define BOOT_TIMEOUT_S 120
#define READY_MARKER "qube-guest: ready"
#define CHUNK ((gsize) 256 * 1024)

char *
kvm_test_build_path (const char *rel)
{
  const char *builddir = g_getenv ("QUBE_TEST_BUILDDIR");

  return g_build_filename (builddir != NULL ? builddir : ".", rel, NULL);
}

static gboolean
run (const char *const *argv, GError **error)
{
  g_autofree char *err = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                     NULL, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "%s: %s", argv[0], err != NULL ? err : "");
      return FALSE;
    }
  return TRUE;
}

char *
kvm_test_plugin_error (KvmTestQube *q, int rc)
{
  g_autoptr(GError) error = NULL;

  _qube_plugin_take_error (q->info, rc ? rc : QUBE_ABI_E_FAILED, "kvm", &error);
  return g_strdup (error->message);
}

gboolean
kvm_test_qube_prepare (KvmTestQube *q, const char *const *extra, GError **error)
{
  const char *srcdir = g_getenv ("QUBE_TEST_SRCDIR");
  g_autofree char *script = g_build_filename (srcdir ? srcdir : ".", "template",
                                              "build-template.sh", NULL);
  g_autofree char *kvm_dir = kvm_test_build_path ("plugins/kvm/.libs");
  g_autofree char *storage_dir = kvm_test_build_path ("plugins/storage-file/.libs");
  /* Qubes get volumes: the file pool is needed beside the kvm plugin. */
  g_autofree char *plugin_dir = g_strjoin (":", kvm_dir, storage_dir, NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const QubePluginDesc *desc;

  memset (q, 0, sizeof *q);
  q->tmp_dir = g_dir_make_tmp ("qube-kvm-vchan-XXXXXX", error);
  if (q->tmp_dir == NULL)
    return FALSE;
  q->template_dir = g_build_filename (q->tmp_dir, "template", NULL);
  q->state_dir = g_build_filename (q->tmp_dir, "state", NULL);
  g_mkdir_with_parents (q->state_dir, 0755);
  g_ptr_array_add (argv, (char *) "/bin/sh");
  g_ptr_array_add (argv, script);
  for (const char *const *x = extra; x != NULL && *x != NULL; x++)
    {
      g_ptr_array_add (argv, (char *) "-x");
      g_ptr_array_add (argv, (char *) *x);
    }
  g_ptr_array_add (argv, q->template_dir);
  g_ptr_array_add (argv, NULL);
  if (!run ((const char *const *) argv->pdata, error))
    return FALSE;

  g_setenv ("QUBE_PLUGIN_PATH", plugin_dir, TRUE);
  q->registry = qube_plugin_registry_new (q->state_dir, q->tmp_dir);
  q->info = _qube_plugin_registry_find (q->registry, QUBE_PLUGIN_KIND_BACKEND, "kvm", error);
  if (q->info == NULL)
    return FALSE;
  desc = _qube_plugin_info_get_desc (q->info);
  q->backend = desc->backend;
  q->ops = desc->vchan;
  q->plugin = _qube_plugin_info_get_data (q->info);
  return TRUE;
}

gboolean
kvm_test_qube_boot (KvmTestQube *q, const char *name, const char *runtime_dir,
                    const char *kernelopts, GError **error)
{
  g_autofree char *kernel = g_build_filename (q->template_dir, "vmlinux", NULL);
  g_autofree char *initramfs = g_build_filename (q->template_dir, "initramfs.img", NULL);
  g_autofree char *console = NULL;
  g_autofree char *backend_id = NULL;
  QubeDomainConfig config = {
    .size = sizeof config, .klass = "AppVM",
    .memory_mib = 256, .maxmem_mib = 256, .vcpus = 1, .virt_mode = "pvh",
    .kernel = kernel, .initramfs = initramfs, .kernelopts = kernelopts,
  };
  gint64 deadline;
  int rc;

  g_free (q->runtime_dir);
  q->runtime_dir = g_strdup (runtime_dir);
  g_mkdir_with_parents (runtime_dir, 0755);
  q->ref = (QubeDomainRef) { .size = sizeof q->ref, .name = name,
                             .uuid = "5b3a1c7e-0000-4000-8000-00000000c0de",
                             .runtime_dir = q->runtime_dir };
  q->peer = (QubeVchanPeer) { .size = sizeof q->peer, .name = name, .domid = -1,
                              .runtime_dir = q->runtime_dir };
  config.ref = q->ref;
  rc = q->backend->create (q->plugin, &config, &backend_id);
  q->created = rc == 0;
  if (rc == 0)
    rc = q->backend->start (q->plugin, &q->ref);
  if (rc != 0)
    {
      g_autofree char *message = kvm_test_plugin_error (q, rc);

      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "%s", message);
      return FALSE;
    }
  console = g_build_filename (runtime_dir, "console.log", NULL);
  deadline = g_get_monotonic_time () + BOOT_TIMEOUT_S * G_USEC_PER_SEC;
  for (;;)
    {
      g_autofree char *text = NULL;

      g_file_get_contents (console, &text, NULL, NULL);
      if (text != NULL && strstr (text, READY_MARKER) != NULL)
        return TRUE;
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_TIMEOUT,
                       "qube '%s' did not come up in %d s; console:\n%s", name,
                       BOOT_TIMEOUT_S, text ? text : "");
          return FALSE;
        }
      g_usleep (100 * 1000);
    }
}

void
kvm_test_qube_kill (KvmTestQube *q)
{
  if (q->created)
    q->backend->kill (q->plugin, &q->ref);
  q->created = FALSE;
}

void
kvm_test_qube_destroy (KvmTestQube *q)
{
  g_autoptr(GDir) proc = NULL;
  const char *entry;

  if (q->tmp_dir == NULL)
    return;
  kvm_test_qube_kill (q);
  /* Last resort: anything whose arguments name our directory. */
  proc = g_dir_open ("/proc", 0, NULL);
  while (proc != NULL && (entry = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = g_strdup_printf ("/proc/%s/cmdline", entry);
      g_autofree char *cmdline = NULL;
      gsize len;
      int pid = atoi (entry);

      if (pid > 1 && pid != getpid () && g_file_get_contents (path, &cmdline, &len, NULL) &&
          memmem (cmdline, len, q->tmp_dir, strlen (q->tmp_dir)) != NULL)
        kill (pid, SIGKILL);
    }
  {
    const char *argv[] = { "/bin/rm", "-rf", q->tmp_dir, NULL };

    run (argv, NULL);
  }
  g_clear_pointer (&q->tmp_dir, g_free);
  g_clear_pointer (&q->template_dir, g_free);
  g_clear_pointer (&q->state_dir, g_free);
  g_clear_pointer (&q->runtime_dir, g_free);
  g_clear_object (&q->registry);
}

static gboolean
plugin_failed (KvmTestQube *q, const char *what, GError **error)
{
  g_autofree char *message = kvm_test_plugin_error (q, 0);

  g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED, "%s: %s", what, message);
  return FALSE;
}

gboolean
kvm_test_peer_command (KvmTestQube *q, QubeVchan *ctrl, guint32 op, guint32 port,
                       guint32 count, guint32 size, GError **error)
{
  unsigned char buf[16];

  peer_put32 (buf, op);
  peer_put32 (buf + 4, port);
  peer_put32 (buf + 8, count);
  peer_put32 (buf + 12, size);
  if (q->ops->send (ctrl, buf, sizeof buf) != sizeof buf)
    return plugin_failed (q, "sending a command to the guest peer", error);
  return TRUE;
}

gboolean
kvm_test_peer_reply (KvmTestQube *q, QubeVchan *ctrl, guint64 *value, GError **error)
{
  unsigned char buf[16];

  if (q->ops->recv (ctrl, buf, sizeof buf) != sizeof buf)
    return plugin_failed (q, "reading the guest peer's reply", error);
  if (peer_get32 (buf) != 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                   "the guest peer failed the command (its console says why)");
      return FALSE;
    }
  if (value != NULL)
    *value = (guint64) peer_get32 (buf + 8) | (guint64) peer_get32 (buf + 12) << 32;
  return TRUE;
}

QubeVchan *
kvm_test_peer_connect (KvmTestQube *q, int timeout_s, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
  QubeVchan *ctrl;

  while ((ctrl = q->ops->client_init (q->plugin, &q->peer, 1)) == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        {
          plugin_failed (q, "no control channel to the guest peer", error);
          return NULL;
        }
      g_usleep (100 * 1000);
    }
  return ctrl;
}

static gboolean
write_all (KvmTestQube *q, QubeVchan *chan, const unsigned char *buf, gsize len, GError **error)
{
  for (gsize done = 0; done < len;)
    {
      long n = q->ops->write (chan, buf + done, len - done);

      if (n <= 0)
        return plugin_failed (q, "write", error);
      done += (gsize) n;
    }
  return TRUE;
}

static gboolean
read_all (KvmTestQube *q, QubeVchan *chan, unsigned char *buf, gsize len, GError **error)
{
  for (gsize done = 0; done < len;)
    {
      long n = q->ops->read (chan, buf + done, len - done);

      if (n <= 0)
        return plugin_failed (q, "read", error);
      done += (gsize) n;
    }
  return TRUE;
}

gboolean
kvm_test_stream (KvmTestQube *q, QubeVchan *ctrl, gboolean to_guest, guint32 port,
                 gsize bytes, double *mbps, GError **error)
{
  g_autofree unsigned char *buf = g_malloc (CHUNK);
  g_autofree unsigned char *want = g_malloc (CHUNK);
  guint64 state = peer_seed (port);
  QubeVchan *srv;
  PeerSum sum;
  gint64 start;
  guint64 value;
  gboolean ok = FALSE;

  g_return_val_if_fail (bytes % CHUNK == 0, FALSE);
  /* 1 MiB rings in the direction of the stream. */
  srv = q->ops->server_init (q->plugin, &q->peer, port, to_guest ? 0 : 1 << 20,
                             to_guest ? 1 << 20 : 0);
  if (srv == NULL)
    return plugin_failed (q, "server_init", error);
  start = g_get_monotonic_time ();
  if (!kvm_test_peer_command (q, ctrl, to_guest ? PEER_SINK : PEER_SOURCE, port,
                              (guint32) ((guint64) bytes >> 32), (guint32) bytes, error))
    goto out;
  peer_sum_init (&sum);
  for (gsize done = 0; done < bytes; done += CHUNK)
    {
      peer_pattern (&state, want, CHUNK);
      if (to_guest)
        {
          peer_sum_add (&sum, want, CHUNK);
          if (!write_all (q, srv, want, CHUNK, error))
            goto out;
        }
      else
        {
          if (!read_all (q, srv, buf, CHUNK, error))
            goto out;
          if (memcmp (buf, want, CHUNK) != 0)
            {
              g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                           "the stream from the guest differs in the chunk at %zu", done);
              goto out;
            }
        }
    }
  if (to_guest)
    {
      /* Closing ends the guest's read loop; it answers with its checksum. */
      q->ops->close (srv);
      srv = NULL;
      if (!kvm_test_peer_reply (q, ctrl, &value, error))
        goto out;
      if (value != peer_sum_end (&sum))
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                       "the guest's checksum of the stream differs");
          goto out;
        }
      if (!kvm_test_peer_reply (q, ctrl, &value, error))
        goto out;
      if (value != bytes)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_FAILED,
                       "the guest got %" G_GUINT64_FORMAT " bytes of %zu", value, bytes);
          goto out;
        }
    }
  else if (!kvm_test_peer_reply (q, ctrl, NULL, error))
    goto out;
  *mbps = (double) bytes / (double) (g_get_monotonic_time () - start);
  ok = TRUE;
out:
  q->ops->close (srv);
  return ok;
}
