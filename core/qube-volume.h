/* qube-volume.h — the volumes of a qube and their life cycle.
 *
 * Each qube class gets Qubes' volume layout when it is created:
 *
 *   AppVM         root      snap_on_start, rw, source = its template's root
 *                 private   save_on_stop, rw
 *                 volatile  rw (made empty at start, discarded at stop)
 *                 kernel    read-only
 *   TemplateVM,   root      save_on_stop, rw
 *   StandaloneVM  private   save_on_stop, rw
 *                 volatile  rw
 *                 kernel    read-only
 *   DispVM        root      snap_on_start, source = its template's template's root
 *                 private   snap_on_start, source = its template's private
 *                 volatile  rw                 (all of it discarded at stop)
 *                 kernel    read-only
 *   AdminVM       none
 *
 * Sizes are Qubes' (root 20 GiB, private 2 GiB, volatile 10 GiB, all
 * sparse); a snapshot is as large as its source.  revisions_to_keep is 1.
 * A snapshot lives in its source's pool; the others in default_pool.
 *
 * `kernel` has no storage: it names the kernel files of the qube's kernel
 * property (vid = the kernel's name, pool shown as `linux-kernel`, empty
 * when the qube boots the kernel inside its root), which the isolation
 * backend reads itself.  It is listed but never started, imported or
 * resized.
 *
 * The isolation backends start a qube's volumes with
 * qube_vm_start_volumes() and stop them with qube_vm_stop_volumes().
 */
#pragma once

#include <glib-object.h>

#include "qube-vm.h"

G_BEGIN_DECLS

/* Qubes' default sizes. */
#define QUBE_VOLUME_ROOT_SIZE (G_GUINT64_CONSTANT (20) << 30)
#define QUBE_VOLUME_PRIVATE_SIZE (G_GUINT64_CONSTANT (2) << 30)
#define QUBE_VOLUME_VOLATILE_SIZE (G_GUINT64_CONSTANT (10) << 30)
#define QUBE_VOLUME_REVISIONS_TO_KEEP 1

/**
 * QubeBlockDevice:
 * @volume: the volume's name, e.g. `private`
 * @path: the file or device node to attach
 * @format: `raw` or `qcow2`
 * @read_only: whether the guest must not write to it
 * @devname: the guest's device name (`xvda` root, `xvdb` private,
 *   `xvdc` volatile), as Qubes names them
 *
 * One block device of a started qube, for the isolation backend.
 */
typedef struct {
  char *volume;
  char *path;
  char *format;
  gboolean read_only;
  char *devname;
} QubeBlockDevice;

#define QUBE_TYPE_BLOCK_DEVICE (qube_block_device_get_type ())
GType qube_block_device_get_type (void) G_GNUC_CONST;
QubeBlockDevice *qube_block_device_copy (const QubeBlockDevice *device);
void qube_block_device_free (QubeBlockDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeBlockDevice, qube_block_device_free)

/**
 * QubeVolumeRevision:
 * @name: the revision's name, as qube_volume_revert() takes it
 * @created: when it was committed (Unix time)
 *
 * A kept revision of a volume.
 */
typedef struct {
  char *name;
  gint64 created;
} QubeVolumeRevision;

#define QUBE_TYPE_VOLUME_REVISION (qube_volume_revision_get_type ())
GType qube_volume_revision_get_type (void) G_GNUC_CONST;
QubeVolumeRevision *qube_volume_revision_copy (const QubeVolumeRevision *revision);
void qube_volume_revision_free (QubeVolumeRevision *revision);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeVolumeRevision, qube_volume_revision_free)

/**
 * QubeProgressFunc:
 * @done: bytes copied so far
 * @total: bytes to copy (0 when unknown, e.g. reading a pipe)
 * @user_data: the data given with the function
 *
 * Called as an import or export advances.
 */
typedef void (*QubeProgressFunc) (guint64 done, guint64 total, gpointer user_data);

#define QUBE_TYPE_VOLUME (qube_volume_get_type ())
G_DECLARE_FINAL_TYPE (QubeVolume, qube_volume, QUBE, VOLUME, GObject)

GPtrArray *qube_vm_list_volumes (QubeVm *vm, GError **error);
QubeVolume *qube_vm_get_volume (QubeVm *vm, const char *name, GError **error);
GPtrArray *qube_vm_start_volumes (QubeVm *vm, GError **error);
gboolean qube_vm_stop_volumes (QubeVm *vm, GError **error);

const char *qube_volume_get_name (QubeVolume *self);
const char *qube_volume_get_qube_name (QubeVolume *self);
const char *qube_volume_get_pool (QubeVolume *self);
const char *qube_volume_get_vid (QubeVolume *self);
const char *qube_volume_get_source (QubeVolume *self);
guint64 qube_volume_get_size (QubeVolume *self);
guint qube_volume_get_revisions_to_keep (QubeVolume *self);
gboolean qube_volume_get_rw (QubeVolume *self);
gboolean qube_volume_get_snap_on_start (QubeVolume *self);
gboolean qube_volume_get_save_on_stop (QubeVolume *self);
gboolean qube_volume_has_storage (QubeVolume *self);

gboolean qube_volume_query (QubeVolume *self, guint64 *usage_bytes,
                            gboolean *started, gboolean *outdated,
                            gint64 *created, GError **error);
gboolean qube_volume_is_outdated (QubeVolume *self, gboolean *outdated,
                                  GError **error);
gboolean qube_volume_get_usage (QubeVolume *self, guint64 *usage_bytes,
                                GError **error);
GPtrArray *qube_volume_list_revisions (QubeVolume *self, GError **error);
gboolean qube_volume_revert (QubeVolume *self, const char *revision,
                             GError **error);
gboolean qube_volume_resize (QubeVolume *self, guint64 size_bytes,
                             GError **error);
gboolean qube_volume_verify (QubeVolume *self, GError **error);
gboolean qube_volume_import_fd (QubeVolume *self, int fd, guint64 size_bytes,
                                QubeProgressFunc progress, gpointer user_data,
                                GError **error);
gboolean qube_volume_import_file (QubeVolume *self, const char *path,
                                  QubeProgressFunc progress, gpointer user_data,
                                  GError **error);
gboolean qube_volume_export_fd (QubeVolume *self, int fd,
                                QubeProgressFunc progress, gpointer user_data,
                                GError **error);
gboolean qube_volume_export_file (QubeVolume *self, const char *path,
                                  QubeProgressFunc progress, gpointer user_data,
                                  GError **error);

G_END_DECLS
