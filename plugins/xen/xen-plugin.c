/* xen-plugin.c — the xen isolation backend: each qube is a Xen domain built
 * with libxl in dom0, inspected with libxenctrl, given its qube keys through
 * libxenstore (xen-store.c).
 *
 * A domain is found again from any process by its name (the qube's name) and
 * checked against the qube's UUID, so nothing but Xen itself holds the state;
 * the only file kept in the runtime directory is "started", which tells a
 * created-but-never-run domain (paused by libxl) from a paused one.
 *
 * The same plugin provides the vchan transport for these qubes
 * (xen-vchan.c, over libxenvchan).
 *
 * Outside Xen (no /proc/xen/privcmd) the plugin still loads and its probe
 * says why it cannot work; every operation refuses with the same reason.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gio/gio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xentoollog.h>

#include "abi/qube-plugin.h"
#include "abi/qube-backend.h"

#include "xen-loop.h"
#include "xen-store.h"
#include "xen-vchan.h"

#define XEN_PRIVCMD "/proc/xen/privcmd"
#define XEN_STARTED_FILE "started"

typedef struct XenPlugin XenPlugin;

/* libxl reports through a xentoollog logger: forward to the host's log and
 * keep the last error of this thread so a failed call can say why. */
typedef struct
{
  xentoollog_logger vtable;
  XenPlugin *plugin;
} XenLogger;

struct XenPlugin
{
  const QubeHost *host;   /* first: xen-vchan.c reads it (XenVchanPluginHead) */
  GMutex lock;          /* guards ctx, xch and logger while opening */
  libxl_ctx *ctx;
  xc_interface *xch;
  XenLogger logger;
};

static GPrivate last_libxl_error = G_PRIVATE_INIT (g_free);

static void
xen_logger_vmessage (xentoollog_logger *logger, xentoollog_level level,
                     int errnoval, const char *context, const char *format,
                     va_list al)
{
  XenLogger *self = (XenLogger *) logger;
  g_autofree char *text = g_strdup_vprintf (format, al);
  g_autofree char *full = NULL;

  if (errnoval >= 0)
    full = g_strdup_printf ("%s: %s", text, g_strerror (errnoval));
  else
    full = g_steal_pointer (&text);

  if (level >= XTL_ERROR)
    {
      g_private_replace (&last_libxl_error, g_strdup (full));
      self->plugin->host->log (self->plugin->host, QUBE_LOG_WARNING, "%s%s%s",
                               context != NULL ? context : "",
                               context != NULL ? ": " : "", full);
    }
  else if (level >= XTL_INFO)
    self->plugin->host->log (self->plugin->host, QUBE_LOG_DEBUG, "%s", full);
}

static void
xen_logger_progress (xentoollog_logger *logger, const char *context,
                     const char *doing_what, int percent, unsigned long done,
                     unsigned long total)
{
}

static void
xen_logger_destroy (xentoollog_logger *logger)
{
}

/* The reason libxl gave for the failure that just happened on this thread. */
static const char *
libxl_reason (int rc)
{
  const char *last = g_private_get (&last_libxl_error);

  if (last != NULL)
    return last;
  return libxl_error_to_string (rc);
}

static void
clear_libxl_reason (void)
{
  g_private_replace (&last_libxl_error, NULL);
}

/* Fails with QUBE_ABI_E_UNAVAILABLE when this is not a Xen dom0. */
static int
check_privcmd (XenPlugin *self)
{
  if (access (XEN_PRIVCMD, F_OK) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_UNAVAILABLE,
                             "%s is missing: this host is not a Xen dom0 "
                             "(not running on the Xen hypervisor, or xenfs "
                             "is not mounted on /proc/xen)", XEN_PRIVCMD);
      return QUBE_ABI_E_UNAVAILABLE;
    }
  return QUBE_ABI_OK;
}

/* Opens libxl and libxenctrl once, on first use, so that loading the plugin
 * outside Xen costs nothing and cannot fail. */
static int
ensure_open (XenPlugin *self)
{
  g_autoptr(GMutexLocker) locker = NULL;
  int rc;

  rc = check_privcmd (self);
  if (rc != QUBE_ABI_OK)
    return rc;

  locker = g_mutex_locker_new (&self->lock);
  if (self->ctx != NULL)
    return QUBE_ABI_OK;

  self->xch = xc_interface_open ((xentoollog_logger *) &self->logger, NULL, 0);
  if (self->xch == NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_UNAVAILABLE,
                             "cannot open the Xen control interface: %s",
                             g_strerror (errno));
      return QUBE_ABI_E_UNAVAILABLE;
    }
  clear_libxl_reason ();
  if (libxl_ctx_alloc (&self->ctx, LIBXL_VERSION, 0,
                       (xentoollog_logger *) &self->logger) != 0)
    {
      self->ctx = NULL;
      xc_interface_close (self->xch);
      self->xch = NULL;
      self->host->set_error (self->host, QUBE_ABI_E_UNAVAILABLE,
                             "cannot open libxl: %s", libxl_reason (ERROR_FAIL));
      return QUBE_ABI_E_UNAVAILABLE;
    }
  return QUBE_ABI_OK;
}

static int
xen_init (const QubeHost *host, void **plugin_data)
{
  XenPlugin *self = g_new0 (XenPlugin, 1);

  self->host = host;
  g_mutex_init (&self->lock);
  self->logger.vtable.vmessage = xen_logger_vmessage;
  self->logger.vtable.progress = xen_logger_progress;
  self->logger.vtable.destroy = xen_logger_destroy;
  self->logger.plugin = self;
  *plugin_data = self;
  return QUBE_ABI_OK;
}

/* Whether this is a dom0 only: libxl is opened by the first operation on a
 * domain (ensure_open), so that a command using only the vchan transport,
 * `qube run`, does not pay for it. */
static int
xen_probe (void *plugin_data)
{
  return check_privcmd (plugin_data);
}

/* Finds the running domain of the qube `ref`.  Returns TRUE with *domid set,
 * or FALSE: no such domain (*error unset), or a domain of that name that
 * belongs to something else (*error set). */
static gboolean
find_domain (XenPlugin *self, const QubeDomainRef *ref, uint32_t *domid,
             GError **error)
{
  libxl_dominfo info;
  libxl_uuid uuid;
  gboolean ours;

  if (libxl_name_to_domid (self->ctx, ref->name, domid) != 0)
    return FALSE;
  if (ref->uuid == NULL || libxl_uuid_from_string (&uuid, ref->uuid) != 0)
    return TRUE;

  libxl_dominfo_init (&info);
  if (libxl_domain_info (self->ctx, &info, *domid) != 0)
    {
      libxl_dominfo_dispose (&info);
      return FALSE;   /* it went away meanwhile */
    }
  ours = libxl_uuid_compare (&info.uuid, &uuid) == 0;
  libxl_dominfo_dispose (&info);
  if (!ours)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "Xen domain %u is named '%s' but does not have the UUID "
                   "of qube '%s' (%s)", *domid, ref->name, ref->name, ref->uuid);
      return FALSE;
    }
  return TRUE;
}

/* find_domain() for operations that need the domain: fails naming the qube
 * and the operation when it is not running. */
static int
require_domain (XenPlugin *self, const QubeDomainRef *ref, const char *what,
                uint32_t *domid)
{
  g_autoptr(GError) error = NULL;
  int rc = ensure_open (self);

  if (rc != QUBE_ABI_OK)
    return rc;
  if (find_domain (self, ref, domid, &error))
    return QUBE_ABI_OK;
  if (error != NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_EXISTS,
                             "cannot %s qube '%s': %s", what, ref->name,
                             error->message);
      return QUBE_ABI_E_EXISTS;
    }
  self->host->set_error (self->host, QUBE_ABI_E_NOT_FOUND,
                         "cannot %s qube '%s': it has no Xen domain (not running)",
                         what, ref->name);
  return QUBE_ABI_E_NOT_FOUND;
}

static char *
started_file (const QubeDomainRef *ref)
{
  if (ref->runtime_dir == NULL)
    return NULL;
  return g_build_filename (ref->runtime_dir, XEN_STARTED_FILE, NULL);
}

/* PV unless PVH was asked for; HVM needs a device model in dom0, which this
 * backend does not run. */
static int
choose_type (XenPlugin *self, const QubeDomainConfig *config,
             libxl_domain_type *type)
{
  const char *mode = config->virt_mode != NULL ? config->virt_mode : "pv";

  if (g_str_equal (mode, "pv"))
    *type = LIBXL_DOMAIN_TYPE_PV;
  else if (g_str_equal (mode, "pvh"))
    *type = LIBXL_DOMAIN_TYPE_PVH;
  else
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot create qube '%s': virt_mode '%s' is not "
                             "supported by the xen backend (use 'pv' or 'pvh')",
                             config->ref.name, mode);
      return QUBE_ABI_E_INVALID;
    }
  return QUBE_ABI_OK;
}

static int
fill_disk (XenPlugin *self, const char *qube, const QubeDiskSpec *spec,
           uint32_t index, libxl_device_disk *disk)
{
  if (spec->path == NULL || spec->path[0] != '/')
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "volume '%s' of qube '%s' has no absolute path",
                             spec->volume != NULL ? spec->volume : "?", qube);
      return QUBE_ABI_E_INVALID;
    }
  if (spec->format != QUBE_BLOCK_RAW)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "volume '%s' of qube '%s' (%s) is not a raw image: "
                             "the xen backend attaches raw files and block "
                             "devices only; use a pool that makes raw volumes",
                             spec->volume != NULL ? spec->volume : "?", qube,
                             spec->path);
      return QUBE_ABI_E_INVALID;
    }
  if (index >= 26 && spec->devname == NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "qube '%s' has more than 26 volumes", qube);
      return QUBE_ABI_E_INVALID;
    }
  libxl_device_disk_init (disk);
  disk->pdev_path = g_strdup (spec->path);
  disk->vdev = spec->devname != NULL ? g_strdup (spec->devname)
                                     : g_strdup_printf ("xvd%c", 'a' + index);
  disk->backend = LIBXL_DISK_BACKEND_PHY;
  disk->format = LIBXL_DISK_FORMAT_RAW;
  disk->readwrite = spec->readonly ? 0 : 1;
  /* Our own hotplug program: it only names the block device to blkback
   * (attach_loop() already made a file into one). */
  disk->script = g_strdup (QUBE_XEN_BLOCK_SCRIPT);
  return QUBE_ABI_OK;
}

/* Gives blkback a block device for the disk: a regular file becomes a loop
 * device (read-only where the volume is), added to `loops`, which holds it
 * until libxl has handed it to blkback; a block device is used as is.  The
 * path is opened once and what was opened is what gets bound, so a file
 * swapped under the path meanwhile cannot become the disk (a block
 * device goes to libxl by its path). */
static int
attach_loop (XenPlugin *self, const char *qube, const QubeDiskSpec *spec,
             libxl_device_disk *disk, GPtrArray *loops)
{
  g_autoptr(GError) error = NULL;
  const char *volume = spec->volume != NULL ? spec->volume : "?";
  XenLoop *loop;
  struct stat st;
  int fd, flags;

  /* Not blocking: a FIFO put there would hang the open. */
  fd = open (spec->path, (spec->readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) != 0)
    {
      int saved_errno = errno;

      int code = saved_errno == ENOENT || saved_errno == ENOTDIR
                 ? QUBE_ABI_E_NOT_FOUND : QUBE_ABI_E_FAILED;

      if (fd >= 0)
        close (fd);
      self->host->set_error (self->host, code,
                             "cannot attach volume '%s' of qube '%s': %s: %s",
                             volume, qube, spec->path, g_strerror (saved_errno));
      return code;
    }
  if (S_ISBLK (st.st_mode))
    {
      close (fd);
      return QUBE_ABI_OK;
    }
  if (!S_ISREG (st.st_mode))
    {
      close (fd);
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot attach volume '%s' of qube '%s': %s is "
                             "neither a file nor a block device",
                             volume, qube, spec->path);
      return QUBE_ABI_E_INVALID;
    }
  flags = fcntl (fd, F_GETFL);
  if (flags >= 0)
    flags = fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
  if (flags < 0)
    {
      int saved_errno = errno;

      close (fd);
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot attach volume '%s' of qube '%s': cannot use %s: %s",
                             volume, qube, spec->path, g_strerror (saved_errno));
      return QUBE_ABI_E_FAILED;
    }
  loop = xen_loop_attach (fd, spec->path, spec->readonly, &error);
  close (fd);   /* a bound loop device holds the file itself */
  if (loop == NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot attach volume '%s' of qube '%s': %s",
                             volume, qube, error->message);
      return QUBE_ABI_E_FAILED;
    }
  g_ptr_array_add (loops, loop);
  free (disk->pdev_path);
  disk->pdev_path = g_strdup (loop->path);
  return QUBE_ABI_OK;
}

static int
fill_nic (XenPlugin *self, const char *qube, const QubeNicSpec *spec,
          libxl_device_nic *nic)
{
  libxl_device_nic_init (nic);
  if (spec->mac != NULL)
    {
      unsigned int b[6];
      char end;

      if (sscanf (spec->mac, "%2x:%2x:%2x:%2x:%2x:%2x%c",
                  &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
        {
          libxl_device_nic_dispose (nic);
          self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                                 "network interface of qube '%s': '%s' is not "
                                 "a MAC address", qube, spec->mac);
          return QUBE_ABI_E_INVALID;
        }
      for (int i = 0; i < 6; i++)
        nic->mac[i] = (uint8_t) b[i];
    }
  if (spec->host_ifname != NULL)
    nic->ifname = g_strdup (spec->host_ifname);
  if (spec->bridge != NULL)
    nic->bridge = g_strdup (spec->bridge);
  return QUBE_ABI_OK;
}

static int
build_config (XenPlugin *self, const QubeDomainConfig *config,
              libxl_domain_config *d)
{
  libxl_domain_type type;
  const char *name = config->ref.name;
  uint64_t memory = config->memory_mib;
  uint64_t maxmem = MAX (config->maxmem_mib, memory);
  uint32_t vcpus = MAX (config->vcpus, 1);
  int rc;

  rc = choose_type (self, config, &type);
  if (rc != QUBE_ABI_OK)
    return rc;
  if (config->kernel == NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot create qube '%s': it has no kernel", name);
      return QUBE_ABI_E_INVALID;
    }
  if (memory == 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot create qube '%s': memory is 0 MiB", name);
      return QUBE_ABI_E_INVALID;
    }

  d->c_info.type = type;
  d->c_info.name = g_strdup (name);
  if (config->ref.uuid != NULL &&
      libxl_uuid_from_string (&d->c_info.uuid, config->ref.uuid) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot create qube '%s': '%s' is not a UUID",
                             name, config->ref.uuid);
      return QUBE_ABI_E_INVALID;
    }

  libxl_domain_build_info_init_type (&d->b_info, type);
  d->b_info.max_memkb = maxmem * 1024;
  d->b_info.target_memkb = memory * 1024;
  d->b_info.max_vcpus = (int) vcpus;
  if (libxl_cpu_bitmap_alloc (self->ctx, &d->b_info.avail_vcpus, (int) vcpus) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_NO_MEMORY,
                             "cannot create qube '%s': out of memory", name);
      return QUBE_ABI_E_NO_MEMORY;
    }
  libxl_bitmap_set_none (&d->b_info.avail_vcpus);
  for (uint32_t i = 0; i < vcpus; i++)
    libxl_bitmap_set (&d->b_info.avail_vcpus, (int) i);
  d->b_info.kernel = g_strdup (config->kernel);
  if (config->initramfs != NULL)
    d->b_info.ramdisk = g_strdup (config->initramfs);
  /* The qube's name on the command line too: the guest's /init reads it
   * before it could reach xenstore.  "quiet" as under kvm: the console
   * shows /init's lines and the kernel's errors, and the boot does not
   * wait on xenconsoled for every kernel message. */
  d->b_info.cmdline = g_strdup_printf ("console=hvc0 quiet qube.name=%s%s%s", name,
                                       config->kernelopts != NULL ? " " : "",
                                       config->kernelopts != NULL ? config->kernelopts : "");

  /* The core decides what a stopped qube becomes; Xen only lets it go. */
  d->on_poweroff = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
  d->on_reboot = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
  d->on_crash = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;

  if (config->n_disks > 0)
    {
      d->disks = g_new0 (libxl_device_disk, config->n_disks);
      for (uint32_t i = 0; i < config->n_disks; i++)
        {
          rc = fill_disk (self, name, &config->disks[i], i, &d->disks[i]);
          if (rc != QUBE_ABI_OK)
            return rc;
          d->num_disks = (int) i + 1;
        }
    }
  if (config->n_nics > 0)
    {
      d->nics = g_new0 (libxl_device_nic, config->n_nics);
      for (uint32_t i = 0; i < config->n_nics; i++)
        {
          rc = fill_nic (self, name, &config->nics[i], &d->nics[i]);
          if (rc != QUBE_ABI_OK)
            return rc;
          d->num_nics = (int) i + 1;
        }
    }
  return QUBE_ABI_OK;
}

static int
xen_create (void *plugin_data, const QubeDomainConfig *config, char **backend_id)
{
  XenPlugin *self = plugin_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *started = NULL;
  /* Freed last: after a failure, only once the domain (and so blkback's
   * hold) is gone, so no loop device is reused while blkback could open it. */
  g_autoptr(GPtrArray) loops = g_ptr_array_new_with_free_func ((GDestroyNotify) xen_loop_free);
  libxl_domain_config d;
  uint32_t domid = (uint32_t) INVALID_DOMID;
  int rc;

  rc = ensure_open (self);
  if (rc != QUBE_ABI_OK)
    return rc;
  if (!xen_store_check_qube_keys (config, &error))
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot create qube '%s': %s", config->ref.name,
                             error->message);
      return QUBE_ABI_E_INVALID;
    }
  if (find_domain (self, &config->ref, &domid, &error) || error != NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_EXISTS,
                             "cannot create qube '%s': %s", config->ref.name,
                             error != NULL ? error->message
                                           : "a Xen domain of that name exists");
      return QUBE_ABI_E_EXISTS;
    }

  libxl_domain_config_init (&d);
  rc = build_config (self, config, &d);
  for (int i = 0; rc == QUBE_ABI_OK && i < d.num_disks; i++)
    rc = attach_loop (self, config->ref.name, &config->disks[i], &d.disks[i], loops);
  if (rc != QUBE_ABI_OK)
    {
      /* libxl's dispose frees with free(), which g_malloc memory allows. */
      libxl_domain_config_dispose (&d);
      return rc;
    }

  clear_libxl_reason ();
  domid = (uint32_t) INVALID_DOMID;
  /* libxl leaves the new domain paused: start() lets it run. */
  if (libxl_domain_create_new (self->ctx, &d, &domid, NULL, NULL) != 0)
    {
      g_autofree char *reason = g_strdup (libxl_reason (ERROR_FAIL));

      libxl_dominfo gone;

      /* libxl destroys what it half-made, except after ERROR_ABORTED. */
      libxl_dominfo_init (&gone);
      if (domid != (uint32_t) INVALID_DOMID &&
          libxl_domain_info (self->ctx, &gone, domid) == 0)
        libxl_domain_destroy (self->ctx, domid, NULL);
      libxl_dominfo_dispose (&gone);
      libxl_domain_config_dispose (&d);
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot create the Xen domain of qube '%s': %s",
                             config->ref.name, reason);
      return QUBE_ABI_E_FAILED;
    }
  libxl_domain_config_dispose (&d);

  if (!xen_store_write_qube_keys (domid, config, &error))
    {
      libxl_domain_destroy (self->ctx, domid, NULL);
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot create qube '%s': %s", config->ref.name,
                             error->message);
      return QUBE_ABI_E_FAILED;
    }

  started = started_file (&config->ref);
  if (started != NULL)
    g_unlink (started);
  if (backend_id != NULL)
    {
      /* The core frees it with free(). */
      char id[16];

      g_snprintf (id, sizeof id, "%u", domid);
      *backend_id = strdup (id);
    }
  self->host->log (self->host, QUBE_LOG_INFO, "qube '%s' is Xen domain %u",
                   config->ref.name, domid);
  return QUBE_ABI_OK;
}

/* Runs a libxl operation on the qube's domain and turns its failure into an
 * error naming the qube and the operation. */
static int
domain_op (XenPlugin *self, const QubeDomainRef *ref, const char *what,
           int (*op) (libxl_ctx *, uint32_t, const libxl_asyncop_how *))
{
  uint32_t domid;
  int rc = require_domain (self, ref, what, &domid);

  if (rc != QUBE_ABI_OK)
    return rc;
  clear_libxl_reason ();
  if (op (self->ctx, domid, NULL) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot %s qube '%s' (Xen domain %u): %s", what,
                             ref->name, domid, libxl_reason (ERROR_FAIL));
      return QUBE_ABI_E_FAILED;
    }
  return QUBE_ABI_OK;
}

static int
xen_start (void *plugin_data, const QubeDomainRef *ref)
{
  XenPlugin *self = plugin_data;
  g_autofree char *started = started_file (ref);
  int rc = domain_op (self, ref, "start", libxl_domain_unpause);

  if (rc == QUBE_ABI_OK && started != NULL &&
      !g_file_set_contents (started, "", 0, NULL))
    self->host->log (self->host, QUBE_LOG_WARNING,
                     "cannot write %s: qube '%s' may show as created", started,
                     ref->name);
  return rc;
}

static int
xen_pause (void *plugin_data, const QubeDomainRef *ref)
{
  return domain_op (plugin_data, ref, "pause", libxl_domain_pause);
}

static int
xen_unpause (void *plugin_data, const QubeDomainRef *ref)
{
  return domain_op (plugin_data, ref, "unpause", libxl_domain_unpause);
}

static int
xen_shutdown (void *plugin_data, const QubeDomainRef *ref)
{
  return domain_op (plugin_data, ref, "shut down", libxl_domain_shutdown);
}

static int
xen_kill (void *plugin_data, const QubeDomainRef *ref)
{
  XenPlugin *self = plugin_data;
  g_autofree char *started = started_file (ref);
  int rc = domain_op (self, ref, "kill", libxl_domain_destroy);

  /* Killing a halted qube is not an error. */
  if (rc == QUBE_ABI_E_NOT_FOUND)
    rc = QUBE_ABI_OK;
  if (rc == QUBE_ABI_OK && started != NULL)
    g_unlink (started);
  return rc;
}

static int
xen_info (void *plugin_data, const QubeDomainRef *ref, QubeDomainInfo *info)
{
  XenPlugin *self = plugin_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *started = NULL;
  xc_dominfo_t di;
  uint32_t domid;
  QubeDomainInfo out = { .size = sizeof (QubeDomainInfo) };
  int rc = ensure_open (self);

  if (rc != QUBE_ABI_OK)
    return rc;
  if (info->size < offsetof (QubeDomainInfo, accel))
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "domain info table of %u bytes is too small",
                             info->size);
      return QUBE_ABI_E_INVALID;
    }

  out.state = QUBE_DOMAIN_HALTED;
  g_strlcpy (out.accel, "xen", sizeof out.accel);
  if (find_domain (self, ref, &domid, &error) &&
      xc_domain_getinfo (self->xch, domid, 1, &di) == 1 && di.domid == domid)
    {
      started = started_file (ref);
      if (di.shutdown && (di.shutdown_reason == SHUTDOWN_poweroff ||
                          di.shutdown_reason == SHUTDOWN_reboot))
        {
          /* Nobody else reaps a domain that powered off (xl would, from
           * its monitoring process): this is the moment it is seen. */
          clear_libxl_reason ();
          if (libxl_domain_destroy (self->ctx, domid, NULL) != 0)
            self->host->log (self->host, QUBE_LOG_WARNING,
                             "cannot destroy Xen domain %u of qube '%s', "
                             "which powered off: %s", domid, ref->name,
                             libxl_reason (ERROR_FAIL));
          else if (started != NULL)
            g_unlink (started);
          out.state = QUBE_DOMAIN_HALTED;
        }
      else if (di.dying)
        out.state = QUBE_DOMAIN_HALTED;
      else if (di.crashed || (di.shutdown && di.shutdown_reason == SHUTDOWN_crash))
        out.state = QUBE_DOMAIN_CRASHED;
      else if (di.shutdown)
        out.state = QUBE_DOMAIN_SHUTTING_DOWN;
      else if (di.paused)
        out.state = started == NULL || g_file_test (started, G_FILE_TEST_EXISTS)
                      ? QUBE_DOMAIN_PAUSED : QUBE_DOMAIN_CREATED;
      else
        out.state = QUBE_DOMAIN_RUNNING;
      out.memory_kib = (uint64_t) di.nr_pages * (XC_PAGE_SIZE / 1024);
      out.maxmem_kib = di.max_memkb;
      out.vcpus = di.nr_online_vcpus;
      out.cpu_time_ns = di.cpu_time;
    }
  else if (error != NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_EXISTS,
                             "cannot get the state of qube '%s': %s", ref->name,
                             error->message);
      return QUBE_ABI_E_EXISTS;
    }
  /* The caller's table may be older (smaller) than ours: fill what fits. */
  memcpy ((char *) info + sizeof info->size, (char *) &out + sizeof out.size,
          MIN (info->size, sizeof out) - sizeof info->size);
  return QUBE_ABI_OK;
}

static int
xen_attach_disk (void *plugin_data, const QubeDomainRef *ref,
                 const QubeDiskSpec *spec)
{
  XenPlugin *self = plugin_data;
  g_autoptr(GPtrArray) loops = g_ptr_array_new_with_free_func ((GDestroyNotify) xen_loop_free);
  libxl_device_disk disk;
  uint32_t domid;
  int rc = require_domain (self, ref, "attach a volume to", &domid);

  if (rc != QUBE_ABI_OK)
    return rc;
  if (spec->devname == NULL)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot attach volume '%s' to qube '%s': no device "
                             "name given", spec->volume != NULL ? spec->volume : "?",
                             ref->name);
      return QUBE_ABI_E_INVALID;
    }
  rc = fill_disk (self, ref->name, spec, 0, &disk);
  if (rc != QUBE_ABI_OK)
    return rc;
  rc = attach_loop (self, ref->name, spec, &disk, loops);
  if (rc != QUBE_ABI_OK)
    {
      libxl_device_disk_dispose (&disk);
      return rc;
    }
  clear_libxl_reason ();
  if (libxl_device_disk_add (self->ctx, domid, &disk, NULL) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot attach %s as %s to qube '%s': %s",
                             spec->path, disk.vdev, ref->name,
                             libxl_reason (ERROR_FAIL));
      rc = QUBE_ABI_E_FAILED;
      /* Take the half-made backend away before the loop device goes. */
      libxl_device_disk_destroy (self->ctx, domid, &disk, NULL);
    }
  libxl_device_disk_dispose (&disk);
  return rc;
}

static int
xen_detach_disk (void *plugin_data, const QubeDomainRef *ref, const char *devname)
{
  XenPlugin *self = plugin_data;
  libxl_device_disk disk;
  uint32_t domid;
  int rc = require_domain (self, ref, "detach a volume from", &domid);

  if (rc != QUBE_ABI_OK)
    return rc;
  libxl_device_disk_init (&disk);
  if (libxl_vdev_to_device_disk (self->ctx, domid, devname, &disk) != 0)
    {
      libxl_device_disk_dispose (&disk);
      self->host->set_error (self->host, QUBE_ABI_E_NOT_FOUND,
                             "cannot detach %s from qube '%s': no such device",
                             devname, ref->name);
      return QUBE_ABI_E_NOT_FOUND;
    }
  clear_libxl_reason ();
  if (libxl_device_disk_remove (self->ctx, domid, &disk, NULL) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot detach %s from qube '%s': %s", devname,
                             ref->name, libxl_reason (ERROR_FAIL));
      rc = QUBE_ABI_E_FAILED;
    }
  libxl_device_disk_dispose (&disk);
  return rc;
}

static int
xen_set_memory (void *plugin_data, const QubeDomainRef *ref, uint64_t memory_mib)
{
  XenPlugin *self = plugin_data;
  uint32_t domid;
  int rc = require_domain (self, ref, "set the memory of", &domid);

  if (rc != QUBE_ABI_OK)
    return rc;
  if (memory_mib == 0 || memory_mib > G_MAXINT32 / 1024)
    {
      self->host->set_error (self->host, QUBE_ABI_E_INVALID,
                             "cannot set the memory of qube '%s' to %" G_GUINT64_FORMAT
                             " MiB", ref->name, memory_mib);
      return QUBE_ABI_E_INVALID;
    }
  clear_libxl_reason ();
  /* Absolute target, and enforce it as the new ceiling too. */
  if (libxl_set_memory_target (self->ctx, domid, (int64_t) memory_mib * 1024,
                               0, 1) != 0)
    {
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot set the memory of qube '%s' to %" G_GUINT64_FORMAT
                             " MiB: %s", ref->name, memory_mib,
                             libxl_reason (ERROR_FAIL));
      return QUBE_ABI_E_FAILED;
    }
  return QUBE_ABI_OK;
}

static int
xen_host_memory (void *plugin_data, uint64_t *total_mib, uint64_t *free_mib)
{
  XenPlugin *self = plugin_data;
  libxl_physinfo physinfo;
  int rc = ensure_open (self);

  if (rc != QUBE_ABI_OK)
    return rc;
  libxl_physinfo_init (&physinfo);
  clear_libxl_reason ();
  if (libxl_get_physinfo (self->ctx, &physinfo) != 0)
    {
      libxl_physinfo_dispose (&physinfo);
      self->host->set_error (self->host, QUBE_ABI_E_FAILED,
                             "cannot read the Xen host's memory: %s",
                             libxl_reason (ERROR_FAIL));
      return QUBE_ABI_E_FAILED;
    }
  *total_mib = physinfo.total_pages * XC_PAGE_SIZE / (1024 * 1024);
  *free_mib = physinfo.free_pages * XC_PAGE_SIZE / (1024 * 1024);
  libxl_physinfo_dispose (&physinfo);
  return QUBE_ABI_OK;
}

static const QubeBackendOps xen_backend_ops = {
  .size = sizeof (QubeBackendOps),
  .block_formats = QUBE_BLOCK_RAW,
  .create = xen_create,
  .start = xen_start,
  .pause = xen_pause,
  .unpause = xen_unpause,
  .shutdown = xen_shutdown,
  .kill = xen_kill,
  .info = xen_info,
  .attach_disk = xen_attach_disk,
  .detach_disk = xen_detach_disk,
  .set_memory = xen_set_memory,
  .host_memory = xen_host_memory,
  .vchan_transport = "xen",
};

QUBE_PLUGIN_DEFINE (.name = "xen",
                    .description = "Xen domains built with libxl (PV or PVH) in dom0",
                    .version = PACKAGE_VERSION,
                    .license = "LGPL-2.1-or-later",
                    .source = PACKAGE_NAME,
                    .origin = NULL,
                    .init = xen_init,
                    .probe = xen_probe,
                    .backend = &xen_backend_ops,
                    .vchan = &xen_vchan_ops);
