/* test-volume.c — the volumes of qubes (core/qube-volume.c) with the real
 * storage-file plugin of the build tree and real data: the layout of each
 * class, start/stop cycles through the library API with known bytes
 * written into the started images (qcow2 images through qemu-io), revert,
 * resize, import and export, clone, removal, and what a failure leaves.
 * The data cases run twice: in the mode the work directory's filesystem
 * gives (qcow2 on ext4), and in reflink mode on a loop-mounted XFS (as
 * root, with mkfs.xfs; said on stdout when it cannot run). */
#include "config.h"

#define _GNU_SOURCE 1

#include <check.h>
#include <stdarg.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-storage-private.h"
#include "qube-vm-private.h"
#include "state-fixture.h"
#include "storage-harness.h"

#define MIB (G_GUINT64_CONSTANT (1) << 20)

static QubeVm *
create (const char *klass, const char *name, const char *template_name)
{
  return fixture_create (fixture_manager, klass, name, template_name);
}

static QubeVolume *
volume (QubeVm *vm, const char *name)
{
  g_autoptr(GError) error = NULL;
  QubeVolume *v = qube_vm_get_volume (vm, name, &error);

  ck_assert_msg (v != NULL, "%s", error ? error->message : "");
  return v;
}

static GPtrArray *
start (QubeVm *vm)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *devices = qube_vm_start_volumes (vm, &error);

  ck_assert_msg (devices != NULL, "cannot start %s: %s", qube_vm_get_name (vm),
                 error ? error->message : "");
  return devices;
}

static void
stop (QubeVm *vm)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_vm_stop_volumes (vm, &error), "cannot stop %s: %s",
                 qube_vm_get_name (vm), error ? error->message : "");
}

/* The started device of volume `name`, as the plugin ABI describes it. */
static QubeBlockDev
device (GPtrArray *devices, const char *name)
{
  QubeBlockDev dev = { sizeof dev, { 0 }, 0 };

  for (guint i = 0; i < devices->len; i++)
    {
      QubeBlockDevice *d = devices->pdata[i];
      if (strcmp (d->volume, name) == 0)
        {
          g_strlcpy (dev.path, d->path, sizeof dev.path);
          dev.format = strcmp (d->format, "qcow2") == 0 ? QUBE_BLOCK_QCOW2 : QUBE_BLOCK_RAW;
          return dev;
        }
    }
  ck_abort_msg ("no started device for volume %s", name);
  return dev;
}

static void
fill (GPtrArray *devices, const char *name, guint8 byte)
{
  QubeBlockDev dev = device (devices, name);
  g_autoptr(GError) error = NULL;

  ck_assert_msg (storage_image_fill (&dev, 0, MIB, byte, &error), "%s", error ? error->message : "");
}

static void
check_bytes (GPtrArray *devices, const char *name, guint8 byte)
{
  QubeBlockDev dev = device (devices, name);
  g_autoptr(GError) error = NULL;

  ck_assert_msg (storage_image_check (&dev, 0, MIB, byte, &error), "volume %s: %s", name,
                 error ? error->message : "");
}

/* Starts the qube, applies `op` to each VOLUME, BYTE pair of `ap`
 * (NULL-terminated), and stops it. */
static void
cycle (QubeVm *vm, void (*op) (GPtrArray *, const char *, guint8), va_list ap)
{
  g_autoptr(GPtrArray) devices = start (vm);

  for (const char *name = va_arg (ap, const char *); name != NULL;
       name = va_arg (ap, const char *))
    op (devices, name, (guint8) va_arg (ap, int));
  stop (vm);
}

/* What the qube sees at its next start: each VOLUME holds a MiB of BYTE. */
static void
expect_at_start (QubeVm *vm, ...)
{
  va_list ap;

  va_start (ap, vm);
  cycle (vm, check_bytes, ap);
  va_end (ap);
}

/* One run of the qube that writes a MiB of BYTE into each VOLUME. */
static void
write_in_cycle (QubeVm *vm, ...)
{
  va_list ap;

  va_start (ap, vm);
  cycle (vm, fill, ap);
  va_end (ap);
}

static gboolean
is_started (QubeVm *vm, const char *name)
{
  g_autoptr(QubeVolume) v = volume (vm, name);
  g_autoptr(GError) error = NULL;
  gboolean started = TRUE;

  ck_assert_msg (qube_volume_query (v, NULL, &started, NULL, NULL, &error), "%s",
                 error ? error->message : "");
  return started;
}

static char *
pool_dir (const char *pool)
{
  return g_build_filename (fixture_state_dir, "pools", pool, NULL);
}

/* A template with 0xA1 in its root and 0x5A in its private. */
static QubeVm *
template_with_data (const char *name)
{
  QubeVm *t = create ("TemplateVM", name, NULL);

  write_in_cycle (t, "root", 0xA1, "private", 0x5A, NULL);
  return t;
}

typedef struct {
  const char *name;
  const char *pool;
  const char *flags;   /* rw/ro, s = snap_on_start, S = save_on_stop */
  guint64 size;
  const char *source;
  gboolean storage;
} Expect;

static void
assert_layout (QubeVm *vm, const Expect *expect, guint n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) volumes = qube_vm_list_volumes (vm, &error);

  ck_assert_msg (volumes != NULL, "%s", error ? error->message : "");
  ck_assert_msg (volumes->len == n, "%s has %u volumes, expected %u", qube_vm_get_name (vm),
                 volumes->len, n);
  for (guint i = 0; i < n; i++)
    {
      QubeVolume *v = volumes->pdata[i];
      g_autofree char *flags = g_strdup_printf ("%s%s%s", qube_volume_get_rw (v) ? "rw" : "ro",
                                                qube_volume_get_snap_on_start (v) ? "s" : "",
                                                qube_volume_get_save_on_stop (v) ? "S" : "");

      ck_assert_str_eq (qube_volume_get_name (v), expect[i].name);
      ck_assert_str_eq (qube_volume_get_pool (v), expect[i].pool);
      ck_assert_msg (strcmp (flags, expect[i].flags) == 0, "%s:%s flags %s, expected %s",
                     qube_vm_get_name (vm), expect[i].name, flags, expect[i].flags);
      ck_assert_uint_eq (qube_volume_get_size (v), expect[i].size);
      ck_assert_str_eq (qube_volume_get_source (v) ? qube_volume_get_source (v) : "-",
                        expect[i].source);
      ck_assert_int_eq (qube_volume_has_storage (v), expect[i].storage);
      if (expect[i].storage)
        ck_assert_uint_eq (qube_volume_get_revisions_to_keep (v), 1);
    }
}

#define ROOT QUBE_VOLUME_ROOT_SIZE
#define PRIV QUBE_VOLUME_PRIVATE_SIZE
#define VOLA QUBE_VOLUME_VOLATILE_SIZE

START_TEST (test_layout_per_class)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(QubeVm) s = create ("StandaloneVM", "alone", NULL);
  g_autoptr(QubeVm) dvm = create ("AppVM", "dvm", "deb");
  g_autoptr(QubeVm) d = NULL;
  g_autoptr(QubeVm) dom0 = NULL;
  g_autoptr(GError) error = NULL;
  const Expect persistent[] = {
    { "kernel", "linux-kernel", "ro", 0, "-", FALSE },
    { "private", "default", "rwS", PRIV, "-", TRUE },
    { "root", "default", "rwS", ROOT, "-", TRUE },
    { "volatile", "default", "rw", VOLA, "-", TRUE },
  };
  const Expect app[] = {
    { "kernel", "linux-kernel", "ro", 0, "-", FALSE },
    { "private", "default", "rwS", PRIV, "-", TRUE },
    { "root", "default", "rws", ROOT, "deb/root", TRUE },
    { "volatile", "default", "rw", VOLA, "-", TRUE },
  };
  const Expect disp[] = {
    { "kernel", "linux-kernel", "ro", 0, "6.1-test", FALSE },
    { "private", "default", "rws", PRIV, "dvm/private", TRUE },
    { "root", "default", "rws", ROOT, "deb/root", TRUE },
    { "volatile", "default", "rw", VOLA, "-", TRUE },
  };

  assert_layout (t, persistent, G_N_ELEMENTS (persistent));
  assert_layout (s, persistent, G_N_ELEMENTS (persistent));
  assert_layout (a, app, G_N_ELEMENTS (app));

  fixture_set (dvm, "template_for_dispvms", "True");
  fixture_set (dvm, "kernel", "6.1-test");
  d = create ("DispVM", "disp1", "dvm");
  assert_layout (d, disp, G_N_ELEMENTS (disp));

  /* The admin qube is the host: no volumes. */
  dom0 = qube_manager_lookup (fixture_manager, "dom0", &error);
  ck_assert (dom0 != NULL);
  assert_layout (dom0, NULL, 0);

  /* The kernel volume has no storage to work on. */
  {
    g_autoptr(QubeVolume) kernel = volume (d, "kernel");
    ck_assert (!qube_volume_resize (kernel, ROOT, &error));
    fixture_assert_error (&error, QUBE_ERROR_NOT_SUPPORTED,
                          "cannot resize volume 'kernel' of qube 'disp1': it has no storage "
                          "(it names the files of the kernel '6.1-test')");
  }
  ck_assert (qube_vm_get_volume (a, "swap", &error) == NULL);
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "qube 'work' has no volume 'swap' (it has: kernel, private, root, "
                        "volatile)");
}
END_TEST

START_TEST (test_start_stop_flag_matrix)
{
  g_autoptr(QubeVm) t = template_with_data ("deb");
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GPtrArray) template_devices = NULL;
  g_autoptr(QubeVolume) root = volume (a, "root");
  g_autoptr(GError) error = NULL;
  gboolean outdated = TRUE;

  /* Started in Qubes' order, with Qubes' device names. */
  devices = start (a);
  ck_assert_uint_eq (devices->len, 3);
  ck_assert_str_eq (((QubeBlockDevice *) devices->pdata[0])->volume, "root");
  ck_assert_str_eq (((QubeBlockDevice *) devices->pdata[0])->devname, "xvda");
  ck_assert_str_eq (((QubeBlockDevice *) devices->pdata[1])->devname, "xvdb");
  ck_assert_str_eq (((QubeBlockDevice *) devices->pdata[2])->devname, "xvdc");
  ck_assert (!((QubeBlockDevice *) devices->pdata[0])->read_only);
  {
    /* What the isolation backend is handed for it. */
    QubeDiskSpec disk;
    QubeBlockDev dev = device (devices, "private");

    _qube_block_device_to_disk (devices->pdata[1], &disk);
    ck_assert_str_eq (disk.volume, "private");
    ck_assert_str_eq (disk.devname, "xvdb");
    ck_assert_str_eq (disk.path, dev.path);
    ck_assert_uint_eq (disk.format, dev.format);
    ck_assert_uint_eq (disk.readonly, 0);
  }
  ck_assert (is_started (a, "private"));

  /* The template's root as committed; private and volatile start empty. */
  check_bytes (devices, "root", 0xA1);
  check_bytes (devices, "private", 0x00);
  check_bytes (devices, "volatile", 0x00);
  fill (devices, "root", 0xB2);
  fill (devices, "private", 0xC3);
  fill (devices, "volatile", 0xD4);
  ck_assert (qube_volume_is_outdated (root, &outdated, &error));
  ck_assert (!outdated);

  /* The template changes while the AppVM runs: its root is now outdated. */
  template_devices = start (t);
  fill (template_devices, "root", 0xE5);
  stop (t);
  ck_assert (qube_volume_is_outdated (root, &outdated, &error));
  ck_assert_msg (outdated, "the root of a running AppVM is not outdated after its "
                           "template changed");
  stop (a);
  ck_assert (!is_started (a, "private"));
  g_clear_pointer (&devices, g_ptr_array_unref);

  /* Next start: the template's new root, root and volatile writes gone,
   * private kept. */
  expect_at_start (a, "root", 0xE5, "private", 0xC3, "volatile", 0x00, NULL);

  /* The template's own private is its own. */
  g_clear_pointer (&template_devices, g_ptr_array_unref);
  template_devices = start (t);
  check_bytes (template_devices, "private", 0x5A);
  stop (t);
}
END_TEST

START_TEST (test_disposable_discards_everything)
{
  g_autoptr(QubeVm) t = template_with_data ("deb");
  g_autoptr(QubeVm) dvm = create ("AppVM", "dvm", "deb");
  g_autoptr(QubeVm) d = NULL;
  g_autoptr(GPtrArray) devices = NULL;

  write_in_cycle (dvm, "private", 0x42, NULL);
  fixture_set (dvm, "template_for_dispvms", "True");
  d = create ("DispVM", "disp1", "dvm");

  devices = start (d);
  check_bytes (devices, "root", 0xA1);
  check_bytes (devices, "private", 0x42);
  fill (devices, "root", 0x01);
  fill (devices, "private", 0x02);
  stop (d);
  g_clear_pointer (&devices, g_ptr_array_unref);

  expect_at_start (d, "root", 0xA1, "private", 0x42, NULL);
  /* The disposable template's own private is untouched. */
  expect_at_start (dvm, "private", 0x42, NULL);
}
END_TEST

/* The committed data of `v` starts with a MiB of `byte`. */
static void
assert_committed (QubeVolume *v, guint8 byte)
{
  g_autofree char *path = g_build_filename (fixture_state_dir, "committed.img", NULL);
  g_autoptr(GError) error = NULL;
  QubeBlockDev dev = { sizeof dev, { 0 }, QUBE_BLOCK_RAW };

  ck_assert_msg (qube_volume_export_file (v, path, NULL, NULL, &error), "%s",
                 error ? error->message : "");
  g_strlcpy (dev.path, path, sizeof dev.path);
  ck_assert_msg (storage_image_check (&dev, 0, MIB, byte, &error), "%s", error->message);
  g_unlink (path);
}

START_TEST (test_revert)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(QubeVolume) private = volume (a, "private");
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  g_autoptr(GError) error = NULL;

  write_in_cycle (a, "private", 0xC3, NULL);
  write_in_cycle (a, "private", 0x77, NULL);

  revisions = qube_volume_list_revisions (private, &error);
  ck_assert_msg (revisions != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq (revisions->len, 1);

  /* A revision that does not exist: refused, data untouched (the export
   * reads the committed data without starting anything). */
  ck_assert (!qube_volume_revert (private, "20000101", &error));
  ck_assert_int_eq (error->code, QUBE_ERROR_NOT_FOUND);
  ck_assert_msg (strstr (error->message, "qube 'work'") && strstr (error->message, "pool 'default'")
                 && strstr (error->message, "work/private")
                 && strstr (error->message, "no revision '20000101'"), "%s", error->message);
  g_clear_error (&error);
  assert_committed (private, 0x77);

  ck_assert_msg (qube_volume_revert (private, ((QubeVolumeRevision *) revisions->pdata[0])->name,
                                     &error), "%s", error ? error->message : "");
  assert_committed (private, 0xC3);
  devices = start (a);
  check_bytes (devices, "private", 0xC3);

  /* Refused while started. */
  ck_assert (!qube_volume_revert (private, NULL, &error));
  ck_assert_msg (error->code == QUBE_ERROR_IN_USE && strstr (error->message, "in use"), "%s",
                 error->message);
  g_clear_error (&error);
  stop (a);
}
END_TEST

START_TEST (test_resize)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVolume) private = volume (t, "private");
  g_autoptr(QubeVolume) again = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GError) error = NULL;

  write_in_cycle (t, "private", 0x33, NULL);

  ck_assert (!qube_volume_resize (private, PRIV / 2, &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot resize volume 'private' of qube 'deb' in pool 'default' from "
                        "2.0 GiB to 1.0 GiB: shrinking would cut off data; volumes only grow");
  ck_assert_msg (qube_volume_resize (private, 3 * PRIV, &error), "%s",
                 error ? error->message : "");
  again = volume (t, "private");
  ck_assert_uint_eq (qube_volume_get_size (again), 3 * PRIV);

  devices = start (t);
  check_bytes (devices, "private", 0x33);
  {
    QubeBlockDev dev = device (devices, "private");
    /* The grown end is there and reads as zeros. */
    ck_assert_msg (storage_image_check (&dev, 3 * PRIV - MIB, MIB, 0x00, &error), "%s",
                   error ? error->message : "");
  }
  stop (t);
}
END_TEST

static void
write_file (const char *path, guint64 size, guint8 byte)
{
  g_autofree guint8 *data = g_malloc (size);
  g_autoptr(GError) error = NULL;

  for (guint64 i = 0; i < size; i++)
    data[i] = (guint8) (byte + i * 7);
  ck_assert (g_file_set_contents (path, (const char *) data, (gssize) size, &error));
}

static void
count_progress (guint64 done, guint64 total, gpointer user_data)
{
  guint64 *last = user_data;

  ck_assert_uint_ge (done, *last);
  *last = done;
  (void) total;
}

typedef struct {
  int fd;
  guint64 bytes;
} Feeder;

static gpointer
feed_pipe (gpointer data)
{
  Feeder *feeder = data;
  g_autofree guint8 *chunk = g_malloc (MIB);
  guint64 sent = 0;

  /* Data first, then zeros: the copy leaves zero blocks as holes, so the
   * test does not write gigabytes to find the end. */
  memset (chunk, 0x11, MIB);
  while (sent < feeder->bytes)
    {
      if (sent == MIB)
        memset (chunk, 0, MIB);
      ssize_t n = write (feeder->fd, chunk, MIN (MIB, feeder->bytes - sent));
      if (n <= 0)
        break;
      sent += (guint64) n;
    }
  close (feeder->fd);
  return NULL;
}

START_TEST (test_import_export)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVolume) root = volume (t, "root");
  g_autoptr(QubeVolume) private = volume (t, "private");
  g_autofree char *in = g_build_filename (fixture_state_dir, "in.img", NULL);
  g_autofree char *out = g_build_filename (fixture_state_dir, "out.img", NULL);
  g_autofree char *big = g_build_filename (fixture_state_dir, "big.img", NULL);
  g_autofree char *in_data = NULL;
  g_autofree char *out_data = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GPtrArray) revisions = NULL;
  g_autoptr(GError) error = NULL;
  gsize in_len;
  guint64 last = 0;
  int fd;

  write_file (in, 3 * MIB + 512, 0x10);
  ck_assert_msg (qube_volume_import_file (root, in, count_progress, &last, &error), "%s",
                 error ? error->message : "");
  ck_assert_uint_eq (last, 3 * MIB + 512);

  /* The imported data is what the template starts with. */
  devices = start (t);
  {
    QubeBlockDev dev = device (devices, "root");
    if (dev.format == QUBE_BLOCK_RAW)
      {
        g_autofree char *cmp = NULL;
        int dev_fd = open (dev.path, O_RDONLY);

        ck_assert (g_file_get_contents (in, &in_data, &in_len, NULL));
        cmp = g_malloc (in_len);
        ck_assert_int_eq (pread (dev_fd, cmp, in_len, 0), (ssize_t) in_len);
        close (dev_fd);
        ck_assert (memcmp (cmp, in_data, in_len) == 0);
        g_clear_pointer (&in_data, g_free);
      }
  }
  stop (t);

  ck_assert_msg (qube_volume_export_file (root, out, NULL, NULL, &error), "%s",
                 error ? error->message : "");
  ck_assert (g_file_get_contents (in, &in_data, &in_len, NULL));
  {
    /* A raw image of the volume's size: the data, then zeros (sparse). */
    struct stat st;
    guint8 tail[4096];
    int out_fd = open (out, O_RDONLY);

    ck_assert_int_ge (out_fd, 0);
    ck_assert_int_eq (fstat (out_fd, &st), 0);
    ck_assert_uint_eq ((guint64) st.st_size, ROOT);
    ck_assert_msg ((guint64) st.st_blocks * 512 < 64 * MIB, "the export is not sparse");
    out_data = g_malloc (in_len);
    ck_assert_int_eq (pread (out_fd, out_data, in_len, 0), (ssize_t) in_len);
    ck_assert (memcmp (in_data, out_data, in_len) == 0);
    ck_assert_int_eq (pread (out_fd, tail, sizeof tail, (off_t) in_len), sizeof tail);
    for (gsize i = 0; i < sizeof tail; i++)
      ck_assert_msg (tail[i] == 0, "byte %zu after the imported data is not zero", i);
    close (out_fd);
  }

  revisions = qube_volume_list_revisions (root, &error);
  ck_assert_uint_eq (revisions->len, 1);

  /* More than the volume holds, from a file: refused before anything. */
  fd = open (big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, (off_t) (PRIV + MIB)), 0);
  close (fd);
  ck_assert (!qube_volume_import_file (private, big, NULL, NULL, &error));
  fixture_assert_error (&error, QUBE_ERROR_NO_SPACE,
                        "cannot import into volume 'private' of qube 'deb' (pool 'default'): "
                        "2.0 GiB of data (2148532224 bytes) does not fit in its 2.0 GiB "
                        "(2147483648 bytes); resize it first");

  /* More than the volume holds, from a pipe: found out while copying,
   * nothing changed. */
  {
    int fds[2];
    Feeder feeder;
    GThread *thread;
    g_autoptr(GPtrArray) before = qube_volume_list_revisions (private, NULL);
    g_autoptr(GPtrArray) after = NULL;

    ck_assert_int_eq (pipe (fds), 0);
    feeder.fd = fds[1];
    feeder.bytes = PRIV + MIB;
    thread = g_thread_new ("feeder", feed_pipe, &feeder);
    ck_assert (!qube_volume_import_fd (private, fds[0], 0, NULL, NULL, &error));
    close (fds[0]);
    g_thread_join (thread);
    ck_assert_int_eq (error->code, QUBE_ERROR_NO_SPACE);
    ck_assert_msg (strstr (error->message, "more than its 2.0 GiB"), "%s", error->message);
    g_clear_error (&error);
    after = qube_volume_list_revisions (private, NULL);
    ck_assert_uint_eq (after->len, before->len);
  }
  g_clear_pointer (&devices, g_ptr_array_unref);
  expect_at_start (t, "private", 0x00, NULL);
}
END_TEST

START_TEST (test_clone)
{
  g_autoptr(QubeVm) t = template_with_data ("deb");
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(QubeVm) c = NULL;
  g_autoptr(QubeVm) tc = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVolume) root = NULL;

  write_in_cycle (a, "private", 0x61, NULL);

  c = qube_manager_clone_vm (fixture_manager, "work", "work2", &error);
  ck_assert_msg (c != NULL, "%s", error ? error->message : "");
  root = volume (c, "root");
  ck_assert_str_eq (qube_volume_get_source (root), "deb/root");
  devices = start (c);
  check_bytes (devices, "root", 0xA1);
  check_bytes (devices, "private", 0x61);
  fill (devices, "private", 0x62);
  stop (c);
  g_clear_pointer (&devices, g_ptr_array_unref);

  /* The original is untouched by the copy's writes. */
  expect_at_start (a, "private", 0x61, NULL);

  /* A template's root is copied too. */
  tc = qube_manager_clone_vm (fixture_manager, "deb", "deb2", &error);
  ck_assert_msg (tc != NULL, "%s", error ? error->message : "");
  expect_at_start (tc, "root", 0xA1, "private", 0x5A, NULL);
}
END_TEST

START_TEST (test_template_change_repoints_root)
{
  g_autoptr(QubeVm) t = template_with_data ("deb");
  g_autoptr(QubeVm) t2 = create ("TemplateVM", "fed", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(QubeVolume) root = NULL;
  g_autoptr(GPtrArray) devices = NULL;

  write_in_cycle (t2, "root", 0xF0, NULL);

  fixture_set (a, "template", "fed");
  root = volume (a, "root");
  ck_assert_str_eq (qube_volume_get_source (root), "fed/root");
  expect_at_start (a, "root", 0xF0, NULL);
}
END_TEST

START_TEST (test_remove)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = pool_dir ("default");
  g_autofree char *work_dir = g_build_filename (dir, "work", NULL);

  devices = start (a);
  fill (devices, "private", 0x99);
  ck_assert (g_file_test (work_dir, G_FILE_TEST_IS_DIR));

  /* In use: refused, nothing removed. */
  ck_assert (!qube_manager_remove_vm (fixture_manager, "work", &error));
  ck_assert_int_eq (error->code, QUBE_ERROR_IN_USE);
  ck_assert_str_eq (error->message, "cannot remove qube 'work': its volume 'private' in pool "
                                    "'default' is in use (started)");
  g_clear_error (&error);
  check_bytes (devices, "private", 0x99);
  stop (a);
  g_clear_pointer (&devices, g_ptr_array_unref);
  expect_at_start (a, "private", 0x99, NULL);

  ck_assert_msg (qube_manager_remove_vm (fixture_manager, "work", &error), "%s",
                 error ? error->message : "");
  ck_assert_msg (!g_file_test (work_dir, G_FILE_TEST_EXISTS), "%s is left", work_dir);
  {
    g_autoptr(QubeStoragePool) pool = qube_manager_lookup_pool (fixture_manager, "default",
                                                                &error);
    g_auto(GStrv) left = qube_storage_pool_list_volumes (pool, &error);
    g_autofree char *joined = g_strjoinv (" ", left);
    ck_assert_str_eq (joined, "deb:private deb:root deb:volatile");
  }
}
END_TEST

START_TEST (test_start_failure_stops_the_others)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = pool_dir ("default");
  g_autofree char *conf = g_build_filename (dir, "work", "volatile", "volume.conf", NULL);
  g_autofree char *saved = NULL;
  gsize saved_len;

  write_in_cycle (a, "private", 0x44, NULL);

  /* volatile, the last to start, is damaged. */
  ck_assert (g_file_get_contents (conf, &saved, &saved_len, NULL));
  ck_assert (g_file_set_contents (conf, "garbage\n", -1, NULL));
  devices = qube_vm_start_volumes (a, &error);
  ck_assert (devices == NULL);
  ck_assert_msg (g_str_has_prefix (error->message, "cannot start the volumes of qube 'work': "
                                                   "pool 'default': ")
                 && strstr (error->message, "work/volatile"), "%s", error->message);
  g_clear_error (&error);
  ck_assert_msg (!is_started (a, "root") && !is_started (a, "private"),
                 "volumes started before the failure were left started");

  ck_assert (g_file_set_contents (conf, saved, (gssize) saved_len, NULL));
  expect_at_start (a, "private", 0x44, NULL);
}
END_TEST

/* A 64 MiB tmpfs for a pool that runs out of space, mounted in a mount
 * namespace of the test's own process, so that nothing outlives it. */
static char *small_dir;

static gboolean
mount_small (void)
{
  small_dir = g_build_filename (fixture_state_dir, "small", NULL);
  g_mkdir (small_dir, 0700);
  return unshare (CLONE_NEWNS) == 0
         && mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0
         && mount ("tmpfs", small_dir, "tmpfs", 0, "size=64m") == 0;
}

static void
teardown (void)
{
  if (small_dir != NULL)
    umount2 (small_dir, MNT_DETACH);
  g_clear_pointer (&small_dir, g_free);
  fixture_teardown_manager ();
}

START_TEST (test_create_failure_leaves_nothing)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autoptr(QubeVm) a = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *option = NULL;
  g_autofree char *work_default = NULL;
  g_autofree char *work_small = NULL;
  g_auto(GStrv) left = NULL;
  const char *options[2] = { NULL, NULL };

  if (!mount_small ())
    {
      /* Only without the right to mount: we run as root in CI. */
      ck_assert_msg (geteuid () != 0, "cannot mount a tmpfs as root: %s", g_strerror (errno));
      return;
    }
  option = g_strconcat ("dir_path=", small_dir, NULL);
  options[0] = option;
  pool = qube_manager_add_pool (fixture_manager, "small", "file", options, &error);
  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
  ck_assert (qube_manager_set_property (fixture_manager, "default_pool", "small", &error));

  /* The root (a snapshot, beside the template's root in "default") is made
   * first, then private (2 GiB) does not fit in "small". */
  a = qube_manager_create_vm (fixture_manager, "AppVM", "work", "deb", NULL, &error);
  ck_assert (a == NULL);
  ck_assert_int_eq (error->code, QUBE_ERROR_NO_SPACE);
  ck_assert_msg (strstr (error->message, "cannot create AppVM 'work'")
                 && strstr (error->message, "pool 'small'")
                 && strstr (error->message, "work/private")
                 && strstr (error->message, "2048 MiB"), "%s", error->message);
  g_clear_error (&error);

  /* Nothing is left: no qube, no volume record, no volume in either pool. */
  ck_assert (qube_manager_lookup (fixture_manager, "work", &error) == NULL);
  g_clear_error (&error);
  work_default = g_build_filename (fixture_state_dir, "pools", "default", "work", NULL);
  work_small = g_build_filename (small_dir, "work", NULL);
  ck_assert_msg (!g_file_test (work_default, G_FILE_TEST_EXISTS), "%s is left", work_default);
  ck_assert_msg (!g_file_test (work_small, G_FILE_TEST_EXISTS), "%s is left", work_small);
  left = qube_storage_pool_list_volumes (pool, &error);
  ck_assert_uint_eq (g_strv_length (left), 0);

  /* The same name works once there is room. */
  ck_assert (qube_manager_reset_property (fixture_manager, "default_pool", &error));
  a = qube_manager_create_vm (fixture_manager, "AppVM", "work", "deb", NULL, &error);
  ck_assert_msg (a != NULL, "%s", error ? error->message : "");
  ck_assert (qube_manager_remove_pool (fixture_manager, "small", &error));
}
END_TEST

/* The pool's volumes, "qube:volume" joined by spaces. */
static char *
pool_volumes (const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeStoragePool) pool = qube_manager_lookup_pool (fixture_manager, name, &error);
  g_auto(GStrv) left = NULL;

  ck_assert_msg (pool != NULL, "%s", error ? error->message : "");
  left = qube_storage_pool_list_volumes (pool, &error);
  ck_assert_msg (left != NULL, "%s", error ? error->message : "");
  return g_strjoinv (" ", left);
}

/* A commit that fails (a full disk, say) leaves the old state whole: no
 * qube made without its volumes nor volumes without their qube, and no
 * qube kept without its volumes. */
START_TEST (test_commit_failure_create_and_clone_leave_nothing)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = NULL;
  g_autoptr(QubeVm) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = pool_volumes ("default");
  g_autofree char *after_create = NULL;
  g_autofree char *after_clone = NULL;
  g_autofree char *dir = pool_dir ("default");
  g_autofree char *work_dir = g_build_filename (dir, "work", NULL);
  g_autofree char *deb2_dir = g_build_filename (dir, "deb2", NULL);

  _qube_store_fail_commits (_qube_manager_get_store (fixture_manager), TRUE);
  a = qube_manager_create_vm (fixture_manager, "AppVM", "work", "deb", NULL, &error);
  ck_assert (a == NULL);
  ck_assert_int_eq (error->code, QUBE_ERROR_STORE);
  g_clear_error (&error);
  after_create = pool_volumes ("default");
  ck_assert_str_eq (after_create, before);
  ck_assert_msg (!g_file_test (work_dir, G_FILE_TEST_EXISTS), "%s is left", work_dir);

  c = qube_manager_clone_vm (fixture_manager, "deb", "deb2", &error);
  ck_assert (c == NULL);
  ck_assert_int_eq (error->code, QUBE_ERROR_STORE);
  g_clear_error (&error);
  after_clone = pool_volumes ("default");
  ck_assert_str_eq (after_clone, before);
  ck_assert_msg (!g_file_test (deb2_dir, G_FILE_TEST_EXISTS), "%s is left", deb2_dir);

  /* Nothing stands in the way once commits work. */
  _qube_store_fail_commits (_qube_manager_get_store (fixture_manager), FALSE);
  ck_assert (qube_manager_lookup (fixture_manager, "work", NULL) == NULL);
  ck_assert (qube_manager_lookup (fixture_manager, "deb2", NULL) == NULL);
  a = qube_manager_create_vm (fixture_manager, "AppVM", "work", "deb", NULL, &error);
  ck_assert_msg (a != NULL, "%s", error ? error->message : "");
  c = qube_manager_clone_vm (fixture_manager, "deb", "deb2", &error);
  ck_assert_msg (c != NULL, "%s", error ? error->message : "");
}
END_TEST

START_TEST (test_commit_failure_remove_keeps_the_qube)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeVm) a = create ("AppVM", "work", "deb");
  g_autoptr(QubeVm) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  write_in_cycle (a, "private", 0x77, NULL);
  before = pool_volumes ("default");
  _qube_store_fail_commits (_qube_manager_get_store (fixture_manager), TRUE);
  ck_assert (!qube_manager_remove_vm (fixture_manager, "work", &error));
  ck_assert_int_eq (error->code, QUBE_ERROR_STORE);
  g_clear_error (&error);
  _qube_store_fail_commits (_qube_manager_get_store (fixture_manager), FALSE);

  /* Still there, with its volumes and their data. */
  after = pool_volumes ("default");
  ck_assert_str_eq (after, before);
  again = qube_manager_lookup (fixture_manager, "work", &error);
  ck_assert_msg (again != NULL, "%s", error ? error->message : "");
  expect_at_start (again, "private", 0x77, NULL);
}
END_TEST

START_TEST (test_check_formats)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeStoragePool) pool = qube_manager_lookup_pool (fixture_manager, "default", NULL);
  g_auto(GStrv) formats = NULL;
  g_autoptr(GError) error = NULL;
  gboolean qcow2;
  g_autofree char *expected = NULL;

  ck_assert (qube_storage_pool_query (pool, NULL, NULL, NULL, NULL, &formats, &error));
  ck_assert_uint_eq (g_strv_length (formats), 1);
  qcow2 = strcmp (formats[0], "qcow2") == 0;

  ck_assert (_qube_volumes_check_formats (t, "any", QUBE_BLOCK_RAW | QUBE_BLOCK_QCOW2, &error));
  ck_assert (!_qube_volumes_check_formats (t, "xen", qcow2 ? QUBE_BLOCK_RAW : QUBE_BLOCK_QCOW2,
                                           &error));
  expected = g_strdup_printf ("qube 'deb': backend 'xen' accepts %s volumes only, pool "
                              "'default' makes %s volumes", qcow2 ? "raw" : "qcow2",
                              formats[0]);
  fixture_assert_error (&error, QUBE_ERROR_NOT_SUPPORTED, expected);
}
END_TEST

/* Reflink mode: the state directory's pools/ on a loop-mounted XFS made
 * with reflink=1 (sparse, large enough for Qubes' sizes), in a mount
 * namespace of the test's own process.  The default pool made there on
 * first use finds reflinks and gives raw images. */
static void
setup_reflink (void)
{
  g_autofree char *pools = NULL;
  g_autofree char *image = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;
  int fd;

  fixture_setup_manager ();
  pools = g_build_filename (fixture_state_dir, "pools", NULL);
  image = g_build_filename (fixture_state_dir, "xfs.img", NULL);
  ck_assert_int_eq (g_mkdir (pools, 0700), 0);
  fd = open (image, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, (off_t) 64 << 30), 0);
  close (fd);
  ck_assert_msg (unshare (CLONE_NEWNS) == 0
                 && mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0,
                 "cannot make a mount namespace: %s", g_strerror (errno));
  {
    const char *mkfs[] = { "mkfs.xfs", "-q", "-m", "reflink=1", image, NULL };
    const char *mnt[] = { "mount", "-o", "loop", image, pools, NULL };

    ck_assert (g_spawn_sync (NULL, (char **) mkfs, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                             &err, &status, &error));
    ck_assert_msg (g_spawn_check_wait_status (status, NULL), "mkfs.xfs: %s", err);
    g_clear_pointer (&err, g_free);
    ck_assert (g_spawn_sync (NULL, (char **) mnt, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                             &err, &status, &error));
    ck_assert_msg (g_spawn_check_wait_status (status, NULL), "mount: %s", err);
  }
  small_dir = g_steal_pointer (&pools); /* unmounted by teardown() */
}

/* Whether the reflink cases can run here: root (loop mounts) and mkfs.xfs. */
static gboolean
reflink_possible (void)
{
  g_autofree char *mkfs = g_find_program_in_path ("mkfs.xfs");

  if (geteuid () != 0 || mkfs == NULL)
    {
      g_print ("test-volume: reflink mode not run: %s\n",
               geteuid () != 0 ? "loop-mounting needs root" : "mkfs.xfs not found (xfsprogs)");
      return FALSE;
    }
  return TRUE;
}

START_TEST (test_reflink_mode)
{
  g_autoptr(QubeVm) t = create ("TemplateVM", "deb", NULL);
  g_autoptr(QubeStoragePool) pool = qube_manager_lookup_pool (fixture_manager, "default", NULL);
  g_autofree char *mode = NULL;
  g_autoptr(GError) error = NULL;

  ck_assert (qube_storage_pool_query (pool, NULL, NULL, &mode, NULL, NULL, &error));
  ck_assert_str_eq (mode, "reflink");
}
END_TEST

static Suite *
volume_suite (void)
{
  Suite *suite = suite_create ("volume");
  TCase *tc = tcase_create ("volume");

  tcase_add_checked_fixture (tc, fixture_setup_manager, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_layout_per_class);
  tcase_add_test (tc, test_start_stop_flag_matrix);
  tcase_add_test (tc, test_disposable_discards_everything);
  tcase_add_test (tc, test_revert);
  tcase_add_test (tc, test_resize);
  tcase_add_test (tc, test_import_export);
  tcase_add_test (tc, test_clone);
  tcase_add_test (tc, test_template_change_repoints_root);
  tcase_add_test (tc, test_remove);
  tcase_add_test (tc, test_start_failure_stops_the_others);
  tcase_add_test (tc, test_create_failure_leaves_nothing);
  tcase_add_test (tc, test_commit_failure_create_and_clone_leave_nothing);
  tcase_add_test (tc, test_commit_failure_remove_keeps_the_qube);
  tcase_add_test (tc, test_check_formats);
  suite_add_tcase (suite, tc);

  /* The same data flows with raw images and reflinks. */
  if (reflink_possible ())
    {
      TCase *reflink = tcase_create ("reflink");

      tcase_add_checked_fixture (reflink, setup_reflink, teardown);
      tcase_set_timeout (reflink, 120);
      tcase_add_test (reflink, test_reflink_mode);
      tcase_add_test (reflink, test_start_stop_flag_matrix);
      tcase_add_test (reflink, test_disposable_discards_everything);
      tcase_add_test (reflink, test_clone);
      tcase_add_test (reflink, test_revert);
      tcase_add_test (reflink, test_import_export);
      tcase_add_test (reflink, test_remove);
      tcase_add_test (reflink, test_check_formats);
      suite_add_tcase (suite, reflink);
    }
  return suite;
}

int
main (void)
{
  return fixture_run_suite (volume_suite ());
}
