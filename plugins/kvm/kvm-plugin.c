/* kvm-plugin.c — the kvm isolation backend: each qube is one QEMU process
 * (machine microvm, kernel booted as PVH), detached from the process that
 * started it, driven over QMP.
 *
 * Everything about a running qube lives in its runtime directory:
 *   qemu.pid      QEMU's pid (written by QEMU)
 *   qmp.sock      QMP monitor
 *   console.log   the guest's serial console
 *   qemu.log      QEMU's own messages
 *   kvm.conf      what the qube was built with (memory, vCPUs, accel)
 *   vport-NAME.sock  one per virtio-serial port NAME
 *   shutdown      present once a shutdown was asked for
 *   create.lock   held while the qube is being created
 * so any process can find the qube again from QubeDomainRef.runtime_dir.
 * See README.md for the design choices.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gio/gio.h>
#include <pwd.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "abi/qube-plugin.h"
#include "abi/qube-backend.h"

#include "kvm-accel.h"
#include "kvm-process.h"
#include "kvm-qmp.h"
#include "kvm-vchan.h"

#define QMP_TIMEOUT_MS 5000
/* Spawning QEMU up to its monitor being ready; generous for a loaded host. */
#define QMP_READY_TIMEOUT_MS 20000
/* How long `quit` gets before SIGKILL. */
#define QUIT_GRACE_MS 2000
#define CONSOLE_TAIL_LINES 10
#define KVM_DEVICE "/dev/kvm"
#define KVM_SUN_PATH_MAX sizeof (((struct sockaddr_un *) 0)->sun_path)

typedef struct
{
  const QubeHost *host;
  char *qemu;          /* absolute path, or NULL when not installed */
  char *qemu_id;       /* path, inode, size and time of the QEMU binary */
  char *work_dir;      /* <state_dir>/kvm */
  GMutex lock;         /* guards accel */
  KvmAccelChoice *accel;
} KvmPlugin;

typedef struct
{
  char *dir;
  char *pidfile;
  char *qmp;
  char *console;
  char *log;
  char *conf;
  char *shutdown_flag;
  char *lock;
} KvmPaths;

static void
kvm_paths_free (KvmPaths *paths)
{
  g_free (paths->dir);
  g_free (paths->pidfile);
  g_free (paths->qmp);
  g_free (paths->console);
  g_free (paths->log);
  g_free (paths->conf);
  g_free (paths->shutdown_flag);
  g_free (paths->lock);
  g_free (paths);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KvmPaths, kvm_paths_free)

/* Records the error of the current operation and returns its code. */
static int G_GNUC_PRINTF (3, 4)
FAIL (KvmPlugin *self, int code, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  self->host->set_error (self->host, (QubeAbiError) code, "%s", message);
  return code;
}

/* ---- names, paths and validation ---- */

static gboolean
name_is_valid (const char *name)
{
  if (name == NULL || !g_ascii_isalpha (name[0]) || strlen (name) > 31)
    return FALSE;
  for (const char *c = name; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

/* Port and volume names become QEMU ids, socket names and guest-visible
 * names: keep them to a small safe alphabet. */
static gboolean
token_is_valid (const char *token, gsize max_len)
{
  gsize len = token != NULL ? strlen (token) : 0;

  if (len == 0 || len > max_len || token[0] == '.' || token[0] == '-')
    return FALSE;
  for (const char *c = token; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

static const char *
ref_name (const QubeDomainRef *ref)
{
  return ref != NULL && ref->name != NULL ? ref->name : "(unnamed)";
}

static KvmPaths *
kvm_paths_new (KvmPlugin *self, const QubeDomainRef *ref, const char *operation)
{
  KvmPaths *paths;

  if (ref == NULL || ref->runtime_dir == NULL || !g_path_is_absolute (ref->runtime_dir))
    {
      FAIL (self, QUBE_ABI_E_INVALID, "cannot %s qube '%s': no absolute runtime directory",
            operation, ref_name (ref));
      return NULL;
    }
  /* Every socket must fit in sockaddr_un. */
  if (strlen (ref->runtime_dir) + strlen ("/qmp.sock") >= KVM_SUN_PATH_MAX)
    {
      FAIL (self, QUBE_ABI_E_INVALID,
            "cannot %s qube '%s': runtime directory %s is too long for unix sockets",
            operation, ref_name (ref), ref->runtime_dir);
      return NULL;
    }
  paths = g_new0 (KvmPaths, 1);
  paths->dir = g_strdup (ref->runtime_dir);
  paths->pidfile = g_build_filename (ref->runtime_dir, "qemu.pid", NULL);
  paths->qmp = g_build_filename (ref->runtime_dir, "qmp.sock", NULL);
  paths->console = g_build_filename (ref->runtime_dir, "console.log", NULL);
  paths->log = g_build_filename (ref->runtime_dir, "qemu.log", NULL);
  paths->conf = g_build_filename (ref->runtime_dir, "kvm.conf", NULL);
  paths->shutdown_flag = g_build_filename (ref->runtime_dir, "shutdown", NULL);
  paths->lock = g_build_filename (ref->runtime_dir, "create.lock", NULL);
  return paths;
}

/* Removes what a running QEMU leaves in the runtime directory; the logs stay
 * for a post-mortem (the core removes the directory itself). */
static void
kvm_paths_cleanup (KvmPaths *paths)
{
  g_autoptr(GDir) dir = g_dir_open (paths->dir, 0, NULL);
  const char *entry;

  g_unlink (paths->pidfile);
  g_unlink (paths->qmp);
  g_unlink (paths->conf);
  g_unlink (paths->shutdown_flag);
  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (entry, "vport-") && g_str_has_suffix (entry, ".sock"))
      {
        g_autofree char *path = g_build_filename (paths->dir, entry, NULL);
        g_unlink (path);
      }
}

/* QEMU's option syntax: a comma inside a value is written twice. */
static char *
qemu_escape (const char *value)
{
  g_auto(GStrv) parts = g_strsplit (value, ",", -1);
  return g_strjoinv (",,", parts);
}

/* ---- QEMU ---- */

static const char *
forced_accel (KvmPlugin *self)
{
  const char *value = g_getenv ("QUBE_KVM_ACCEL");

  if (value == NULL || *value == '\0')
    value = self->host->config_get (self->host, "accel");
  if (value != NULL && (g_str_equal (value, "kvm") || g_str_equal (value, "tcg")))
    return value;
  if (value != NULL && *value != '\0' && !g_str_equal (value, "auto"))
    self->host->log (self->host, QUBE_LOG_WARNING,
                     "ignoring accel '%s': it must be kvm, tcg or auto", value);
  return NULL;
}

/* The acceleration for a qube booting `kernel` (measured once, then kept). */
static char *
choose_accel (KvmPlugin *self, const char *kernel)
{
  const char *forced = forced_accel (self);
  char *accel;

  if (forced != NULL)
    return g_strdup (forced);
  g_mutex_lock (&self->lock);
  if (self->accel == NULL)
    {
      KvmAccelChoice *choice = kvm_accel_choose (NULL, self->work_dir, self->qemu,
                                                 self->qemu_id, kernel, KVM_DEVICE);
      if (!choice->settled)
        {
          accel = g_strdup (choice->accel);
          kvm_accel_choice_free (choice);
          g_mutex_unlock (&self->lock);
          return accel;
        }
      self->host->log (self->host, QUBE_LOG_INFO, "acceleration: %s (%s)",
                       choice->accel, choice->reason);
      self->accel = choice;
    }
  accel = g_strdup (self->accel->accel);
  g_mutex_unlock (&self->lock);
  return accel;
}

static const char *
extra_get (const QubeDomainConfig *config, const char *key)
{
  for (uint32_t i = 0; i < config->n_extra; i++)
    if (config->extra[i].key != NULL && g_str_equal (config->extra[i].key, key))
      return config->extra[i].value;
  return NULL;
}

/* Validates `config` and returns QEMU's argv (transfer full) or NULL with
 * the error set. */
static GPtrArray *
build_argv (KvmPlugin *self, const QubeDomainConfig *config, const KvmPaths *paths,
            const char *accel, int *code)
{
  const char *name = config->ref.name;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GString) append = g_string_new (NULL);
  g_autofree char *sandbox = NULL;
  const char *ports;

#define ARG(s) g_ptr_array_add (argv, g_strdup (s))
#define ARGF(...) g_ptr_array_add (argv, g_strdup_printf (__VA_ARGS__))
#define REFUSE(...) do { *code = FAIL (self, QUBE_ABI_E_INVALID, __VA_ARGS__); return NULL; } while (0)

  if (config->ref.uuid == NULL || !g_uuid_string_is_valid (config->ref.uuid))
    REFUSE ("cannot create qube '%s': '%s' is not a UUID", name,
            config->ref.uuid ? config->ref.uuid : "(none)");
  if (config->memory_mib < 32 || config->memory_mib > 1024 * 1024)
    REFUSE ("cannot create qube '%s': memory %" G_GUINT64_FORMAT " MiB is outside 32 MiB..1 TiB",
            name, config->memory_mib);
  if (config->vcpus < 1 || config->vcpus > 64)
    REFUSE ("cannot create qube '%s': %u vCPUs is outside 1..64", name, config->vcpus);
  if (config->virt_mode != NULL && !g_str_equal (config->virt_mode, "pvh"))
    REFUSE ("cannot create qube '%s': virt_mode '%s' is not supported by the kvm backend "
            "(it boots every qube as PVH)", name, config->virt_mode);
  if (config->n_nics > 0)
    {
      *code = FAIL (self, QUBE_ABI_E_NOT_SUPPORTED,
                    "cannot create qube '%s': network interfaces are not supported "
                    "by the kvm backend yet", name);
      return NULL;
    }
  if (config->kernel == NULL || !g_file_test (config->kernel, G_FILE_TEST_IS_REGULAR))
    {
      *code = FAIL (self, QUBE_ABI_E_NOT_FOUND, "cannot create qube '%s': kernel %s not found",
                    name, config->kernel ? config->kernel : "(none given)");
      return NULL;
    }
  if (config->initramfs != NULL && !g_file_test (config->initramfs, G_FILE_TEST_IS_REGULAR))
    {
      *code = FAIL (self, QUBE_ABI_E_NOT_FOUND, "cannot create qube '%s': initramfs %s not found",
                    name, config->initramfs);
      return NULL;
    }
  if (config->kernelopts != NULL && strpbrk (config->kernelopts, "\n\r") != NULL)
    REFUSE ("cannot create qube '%s': kernel options hold a line break", name);

  ARG (self->qemu);
  ARG ("-name");
  ARGF ("guest=%s,process=qube-%s", name, name);
  ARG ("-uuid");
  ARG (config->ref.uuid);
  ARG ("-machine");
  ARG ("microvm,acpi=on,pcie=off");
  ARG ("-accel");
  if (g_str_equal (accel, "tcg"))
    {
      /* TCG's translation cache is most of QEMU's own memory; its size is
       * a setting (MiB) because a small one costs boot time. */
      const char *tb = self->host->config_get (self->host, "tcg-cache-mib");
      guint64 mib = 0;

      if (tb != NULL && *tb != '\0' &&
          (!g_ascii_string_to_unsigned (tb, 10, 4, 4096, &mib, NULL)))
        self->host->log (self->host, QUBE_LOG_WARNING,
                         "ignoring tcg-cache-mib '%s': it must be a number of MiB from 4 to 4096",
                         tb);
      if (mib != 0)
        ARGF ("tcg,tb-size=%" G_GUINT64_FORMAT, mib);
      else
        ARG ("tcg");
    }
  else
    ARG (accel);
  ARG ("-cpu");
  /* Under TCG the default CPU has no RDRAND, so the guest kernel's random
   * generator stays unseeded for seconds and the first reader of
   * /dev/urandom (mkswap's UUID) waits for jitter entropy; TCG's RDRAND
   * draws from the host's getrandom(). */
  ARG (g_str_equal (accel, "kvm") ? "host" : "qemu64,+rdrand");
  ARG ("-m");
  ARGF ("%" G_GUINT64_FORMAT "M", config->memory_mib);
  ARG ("-smp");
  ARGF ("%u", config->vcpus);
  ARG ("-nodefaults");
  ARG ("-no-user-config");
  ARG ("-display");
  ARG ("none");
  ARG ("-no-reboot");
  ARG ("-S");

  /* QEMU 7.2 installs its seccomp filter before -runas changes the user, so
   * set*id must stay allowed when it drops root; once dropped (all of
   * real, effective and saved ids) it cannot regain root, and exec is
   * denied, so nothing can elevate anyway. */
  sandbox = g_strdup_printf ("on,obsolete=deny,elevateprivileges=%s,spawn=deny,resourcecontrol=deny",
                             geteuid () == 0 ? "allow" : "deny");
  ARG ("-sandbox");
  ARG (sandbox);
  if (geteuid () == 0)
    {
      const char *user = self->host->config_get (self->host, "user");

      if (user == NULL || *user == '\0')
        user = "nobody";
      if (getpwnam (user) == NULL)
        {
          *code = FAIL (self, QUBE_ABI_E_UNAVAILABLE,
                        "cannot create qube '%s': user '%s' to run QEMU as does not exist",
                        name, user);
          return NULL;
        }
      ARG ("-runas");
      ARG (user);
    }

  ARG ("-pidfile");
  ARG (paths->pidfile);
  /* The monitor's socket is made and listened on by create() at
   * paths->qmp and handed over as a descriptor, so that create() can
   * connect at once. */
  ARG ("-chardev");
  ARGF ("socket,id=monitor,fd=%d,server=on,wait=off", KVM_PROCESS_PASSED_FD);
  ARG ("-mon");
  ARG ("chardev=monitor,mode=control");
  ARG ("-chardev");
  {
    g_autofree char *p = qemu_escape (paths->console);
    ARGF ("file,id=console,path=%s", p);
  }
  ARG ("-serial");
  ARG ("chardev:console");

  ARG ("-kernel");
  ARG (config->kernel);
  if (config->initramfs != NULL)
    {
      ARG ("-initrd");
      ARG (config->initramfs);
    }
  g_string_append_printf (append, "console=ttyS0 panic=-1 quiet pci=off qube.name=%s", name);
  /* TCG's emulated TSC cannot be calibrated reliably early in boot; give
   * the kernel the frequency instead of letting it hang. */
  if (g_str_equal (accel, "tcg"))
    g_string_append (append, " tsc_early_khz=2600000");
  if (config->kernelopts != NULL && *config->kernelopts != '\0')
    g_string_append_printf (append, " %s", config->kernelopts);
  ARG ("-append");
  ARG (append->str);

  for (uint32_t i = 0; i < config->n_disks; i++)
    {
      const QubeDiskSpec *disk = &config->disks[i];
      g_autofree char *path = NULL;
      const char *format;

      if (!token_is_valid (disk->volume, 20))
        REFUSE ("cannot create qube '%s': volume name '%s' is not usable as a disk serial",
                name, disk->volume ? disk->volume : "(none)");
      if (disk->format == QUBE_BLOCK_RAW)
        format = "raw";
      else if (disk->format == QUBE_BLOCK_QCOW2)
        format = "qcow2";
      else
        REFUSE ("cannot create qube '%s': volume '%s' has a block format the kvm backend "
                "does not know (%u)", name, disk->volume, disk->format);
      if (disk->path == NULL || !g_file_test (disk->path, G_FILE_TEST_EXISTS))
        {
          *code = FAIL (self, QUBE_ABI_E_NOT_FOUND,
                        "cannot create qube '%s': volume '%s' has no file at %s",
                        name, disk->volume, disk->path ? disk->path : "(none)");
          return NULL;
        }
      for (uint32_t j = 0; j < i; j++)
        if (g_str_equal (config->disks[j].volume, disk->volume))
          REFUSE ("cannot create qube '%s': volume '%s' is given twice", name, disk->volume);
      path = qemu_escape (disk->path);
      ARG ("-drive");
      ARGF ("file=%s,format=%s,if=none,id=disk-%s,readonly=%s,discard=unmap",
            path, format, disk->volume, disk->readonly ? "on" : "off");
      ARG ("-device");
      /* The guest finds each volume by this serial, never by probe order. */
      ARGF ("virtio-blk-device,drive=disk-%s,serial=%s", disk->volume, disk->volume);
    }

  /* Every qube gets the vchan port (kvm-vchan.c) first, then the ports the
   * configuration asks for. */
  ports = extra_get (config, "serial-ports");
  {
    g_autofree char *all_ports = ports != NULL && *ports != '\0'
      ? g_strconcat (KVM_VCHAN_PORT_NAME ",", ports, NULL) : g_strdup (KVM_VCHAN_PORT_NAME);
    g_auto(GStrv) names = g_strsplit (all_ports, ",", -1);
    guint n = g_strv_length (names);

      if (n > 30)
        REFUSE ("cannot create qube '%s': %u serial ports asked for, at most 29", name, n - 1);
      ARG ("-device");
      ARG ("virtio-serial-device,max_ports=31");
      for (guint i = 0; i < n; i++)
        {
          if (!token_is_valid (names[i], 64))
            REFUSE ("cannot create qube '%s': serial port name '%s' is not valid", name, names[i]);
          for (guint j = 0; j < i; j++)
            if (g_str_equal (names[i], names[j]))
              REFUSE ("cannot create qube '%s': serial port '%s' is given twice", name, names[i]);
          g_autofree char *socket_path = g_strdup_printf ("%s/vport-%s.sock", paths->dir, names[i]);
          g_autofree char *escaped = qemu_escape (socket_path);

          if (strlen (socket_path) >= KVM_SUN_PATH_MAX)
            REFUSE ("cannot create qube '%s': socket %s for serial port '%s' is too long",
                    name, socket_path, names[i]);
          ARG ("-chardev");
          ARGF ("socket,id=port%u,path=%s,server=on,wait=off", i, escaped);
          ARG ("-device");
          ARGF ("virtserialport,chardev=port%u,name=%s", i, names[i]);
        }
    }
  g_ptr_array_add (argv, NULL);
  return g_steal_pointer (&argv);
#undef ARG
#undef ARGF
#undef REFUSE
}

/* The monitor's socket, bound at paths->qmp (where later processes find
 * it) and listening, for QEMU to take over. */
static GSocket *
listen_monitor (const KvmPaths *paths, GError **error)
{
  g_autoptr(GSocket) sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                          G_SOCKET_PROTOCOL_DEFAULT, error);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (paths->qmp);

  if (sock == NULL || !g_socket_bind (sock, address, FALSE, error)
      || !g_socket_listen (sock, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", paths->qmp);
      return NULL;
    }
  return g_steal_pointer (&sock);
}

/* Why the monitor did not greet: QEMU died (it held the only listening
 * descriptor, so our connection ended with it), or it is too slow. */
static int
monitor_failed (KvmPlugin *self, const KvmPaths *paths, pid_t pid, const char *name,
                const GError *error)
{
  gboolean timed_out = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);

  /* The connection ends while QEMU exits: give it a moment to be gone.
   * Just spawned, so the pid cannot have been recycled. */
  for (int i = 0; i < 100 && !timed_out && kvm_process_alive (pid); i++)
    g_usleep (10 * 1000);
  if (!kvm_process_alive (pid))
    {
      g_autofree char *tail = kvm_tail_lines (paths->log, CONSOLE_TAIL_LINES);

      return FAIL (self, QUBE_ABI_E_FAILED, "cannot create qube '%s': QEMU exited: %s",
                   name, tail ? tail : "no message");
    }
  if (timed_out)
    return FAIL (self, QUBE_ABI_E_TIMEOUT,
                 "cannot create qube '%s': QEMU's monitor was not ready after %d s",
                 name, QMP_READY_TIMEOUT_MS / 1000);
  return FAIL (self, QUBE_ABI_E_FAILED, "cannot create qube '%s': %s", name, error->message);
}

/* The pid of the qube's QEMU when it is running, else 0. */
static pid_t
running_pid (const KvmPaths *paths)
{
  pid_t pid = kvm_process_read_pidfile (paths->pidfile);

  return pid != 0 && kvm_process_is_ours (pid, paths->pidfile) ? pid : 0;
}

/* Stops QEMU: `quit` over QMP, SIGKILL after a grace period. */
static gboolean
stop_qemu (const KvmPaths *paths, pid_t pid)
{
  g_autoptr(KvmQmp) qmp = kvm_qmp_connect (paths->qmp, 1000, NULL);

  if (qmp != NULL)
    {
      g_autoptr(JsonNode) reply = kvm_qmp_execute (qmp, "quit", NULL, NULL);

      /* QEMU announces SHUTDOWN just before it exits. */
      if (reply != NULL)
        kvm_qmp_wait_event (qmp, "SHUTDOWN", QUIT_GRACE_MS);
    }
  if (kvm_process_wait_gone (pid, paths->pidfile, QUIT_GRACE_MS))
    return TRUE;
  kill (pid, SIGKILL);
  return kvm_process_wait_gone (pid, paths->pidfile, 5000);
}

/* ---- the backend operations ---- */

/* create(), with the qube's create lock held. */
static int
create_locked (KvmPlugin *self, const QubeDomainConfig *config, KvmPaths *paths,
               char **backend_id)
{
  const char *name = config->ref.name;
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(KvmQmp) qmp = NULL;
  g_autoptr(GSocket) monitor = NULL;
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GKeyFile) conf = g_key_file_new ();
  g_autofree char *accel = NULL;
  g_autofree char *cmdline = NULL;
  const char *state;
  pid_t pid;
  int code = QUBE_ABI_OK;

  pid = running_pid (paths);
  if (pid != 0)
    return FAIL (self, QUBE_ABI_E_EXISTS, "cannot create qube '%s': it is already running (QEMU pid %d)",
                 name, (int) pid);
  kvm_paths_cleanup (paths);
  g_unlink (paths->console);
  g_unlink (paths->log);

  accel = choose_accel (self, config->kernel);
  argv = build_argv (self, config, paths, accel, &code);
  if (argv == NULL)
    return code;

  g_key_file_set_string (conf, "qube", "name", name);
  g_key_file_set_uint64 (conf, "qube", "memory-mib", config->memory_mib);
  g_key_file_set_uint64 (conf, "qube", "maxmem-mib",
                         MAX (config->maxmem_mib, config->memory_mib));
  g_key_file_set_integer (conf, "qube", "vcpus", (int) config->vcpus);
  g_key_file_set_string (conf, "qube", "accel", accel);
  if (!g_key_file_save_to_file (conf, paths->conf, &error))
    return FAIL (self, QUBE_ABI_E_IO, "cannot create qube '%s': %s", name, error->message);

  cmdline = g_strjoinv (" ", (char **) argv->pdata);
  self->host->log (self->host, QUBE_LOG_DEBUG, "qube '%s': %s", name, cmdline);
  monitor = listen_monitor (paths, &error);
  pid = monitor != NULL
    ? kvm_process_spawn_detached ((const char *const *) argv->pdata, paths->log,
                                  g_socket_get_fd (monitor), &error)
    : 0;
  /* From here QEMU alone holds the listening socket: when it dies, our
   * connection ends instead of waiting to be accepted. */
  g_clear_object (&monitor);
  if (pid == 0)
    {
      kvm_paths_cleanup (paths);
      return FAIL (self, QUBE_ABI_E_FAILED, "cannot create qube '%s': %s", name, error->message);
    }

  /* Connecting succeeds at once (the socket listens already); the
   * greeting comes once QEMU has started. */
  qmp = kvm_qmp_connect (paths->qmp, QMP_READY_TIMEOUT_MS, &error);
  if (qmp == NULL)
    code = monitor_failed (self, paths, pid, name, error);
  else
    {
      kvm_qmp_set_timeout (qmp, QMP_TIMEOUT_MS);
      status = kvm_qmp_execute (qmp, "query-status", NULL, &error);
      state = status != NULL && JSON_NODE_HOLDS_OBJECT (status)
        ? json_object_get_string_member_with_default (json_node_get_object (status), "status", NULL)
        : NULL;
      if (g_strcmp0 (state, "prelaunch") != 0)
        code = FAIL (self, QUBE_ABI_E_PROTOCOL,
                     "cannot create qube '%s': QEMU is in state '%s' instead of prelaunch%s%s",
                     name, state ? state : "unknown", error ? ": " : "",
                     error ? error->message : "");
    }
  if (code != QUBE_ABI_OK)
    {
      g_clear_pointer (&qmp, kvm_qmp_free);
      if (kvm_process_alive (pid))
        {
          kill (pid, SIGKILL);
          for (int i = 0; i < 500 && kvm_process_alive (pid); i++)
            g_usleep (10 * 1000);
        }
      kvm_paths_cleanup (paths);
      return code;
    }

  self->host->log (self->host, QUBE_LOG_INFO, "qube '%s': QEMU pid %d, accel %s",
                   name, (int) pid, accel);
  if (backend_id != NULL)
    {
      char buf[32];

      /* The core frees it with free(): not a GLib allocation. */
      g_snprintf (buf, sizeof buf, "%d", (int) pid);
      *backend_id = strdup (buf);
    }
  return QUBE_ABI_OK;
}

static int
kvm_create (void *plugin, const QubeDomainConfig *config, char **backend_id)
{
  KvmPlugin *self = plugin;
  const char *name = config != NULL ? config->ref.name : NULL;
  g_autoptr(KvmPaths) paths = NULL;
  int lock_fd, rc;

  if (config == NULL || config->size < sizeof (QubeDomainConfig))
    return FAIL (self, QUBE_ABI_E_INVALID, "cannot create a qube: configuration too old or missing");
  if (!name_is_valid (name))
    return FAIL (self, QUBE_ABI_E_INVALID, "cannot create qube '%s': not a valid qube name",
                 name ? name : "(none)");
  if (self->qemu == NULL)
    return FAIL (self, QUBE_ABI_E_UNAVAILABLE,
                 "cannot create qube '%s': qemu-system-x86_64 not found "
                 "(install the Debian package qemu-system-x86)", name);
  paths = kvm_paths_new (self, &config->ref, "create");
  if (paths == NULL)
    return QUBE_ABI_E_INVALID;
  if (!g_file_test (paths->dir, G_FILE_TEST_IS_DIR))
    return FAIL (self, QUBE_ABI_E_NOT_FOUND, "cannot create qube '%s': runtime directory %s missing",
                 name, paths->dir);

  /* Two creates of one qube at once would start two QEMUs fighting over
   * one monitor socket: the second is refused while the first runs.  The
   * lock file stays (removing it would race with a waiting opener). */
  lock_fd = open (paths->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0)
    return FAIL (self, QUBE_ABI_E_IO, "cannot create qube '%s': cannot open %s: %s",
                 name, paths->lock, g_strerror (errno));
  if (flock (lock_fd, LOCK_EX | LOCK_NB) < 0)
    rc = FAIL (self, QUBE_ABI_E_BUSY, "cannot create qube '%s': it is being created already",
               name);
  else
    rc = create_locked (self, config, paths, backend_id);
  close (lock_fd);
  return rc;
}

/* Runs one QMP command on a running qube. */
static int
qmp_command (KvmPlugin *self, const QubeDomainRef *ref, const char *operation,
             const char *command)
{
  g_autoptr(KvmPaths) paths = kvm_paths_new (self, ref, operation);
  g_autoptr(KvmQmp) qmp = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  if (paths == NULL)
    return QUBE_ABI_E_INVALID;
  if (running_pid (paths) == 0)
    return FAIL (self, QUBE_ABI_E_NOT_FOUND, "cannot %s qube '%s': it is not running",
                 operation, ref_name (ref));
  qmp = kvm_qmp_connect (paths->qmp, QMP_TIMEOUT_MS, &error);
  if (qmp != NULL)
    reply = kvm_qmp_execute (qmp, command, NULL, &error);
  if (reply == NULL)
    return FAIL (self, QUBE_ABI_E_FAILED, "cannot %s qube '%s': %s", operation,
                 ref_name (ref), error->message);
  return QUBE_ABI_OK;
}

static int
kvm_start (void *plugin, const QubeDomainRef *ref)
{
  return qmp_command (plugin, ref, "start", "cont");
}

static int
kvm_pause (void *plugin, const QubeDomainRef *ref)
{
  return qmp_command (plugin, ref, "pause", "stop");
}

static int
kvm_unpause (void *plugin, const QubeDomainRef *ref)
{
  return qmp_command (plugin, ref, "unpause", "cont");
}

static int
kvm_shutdown (void *plugin, const QubeDomainRef *ref)
{
  KvmPlugin *self = plugin;
  g_autoptr(KvmPaths) paths = kvm_paths_new (self, ref, "shut down");

  if (paths == NULL)
    return QUBE_ABI_E_INVALID;
  /* Remembered so that QEMU exiting afterwards counts as halted, not as a
   * crash. */
  if (running_pid (paths) != 0)
    g_file_set_contents (paths->shutdown_flag, "", 0, NULL);
  return qmp_command (self, ref, "shut down", "system_powerdown");
}

static int
kvm_kill (void *plugin, const QubeDomainRef *ref)
{
  KvmPlugin *self = plugin;
  g_autoptr(KvmPaths) paths = kvm_paths_new (self, ref, "kill");
  pid_t pid;

  if (paths == NULL)
    return QUBE_ABI_E_INVALID;
  pid = running_pid (paths);
  if (pid != 0 && !stop_qemu (paths, pid))
    return FAIL (self, QUBE_ABI_E_BUSY, "cannot kill qube '%s': QEMU pid %d survived SIGKILL",
                 ref_name (ref), (int) pid);
  kvm_paths_cleanup (paths);
  return QUBE_ABI_OK;
}

static QubeDomainState
state_from_status (const char *status)
{
  static const struct { const char *qemu; QubeDomainState state; } map[] = {
    { "prelaunch", QUBE_DOMAIN_CREATED },
    { "running", QUBE_DOMAIN_RUNNING },
    { "paused", QUBE_DOMAIN_PAUSED },
    { "suspended", QUBE_DOMAIN_PAUSED },
    { "shutdown", QUBE_DOMAIN_SHUTTING_DOWN },
    { "guest-panicked", QUBE_DOMAIN_CRASHED },
    { "internal-error", QUBE_DOMAIN_CRASHED },
    { "io-error", QUBE_DOMAIN_CRASHED },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (g_strcmp0 (status, map[i].qemu) == 0)
      return map[i].state;
  /* debug, inmigrate, postmigrate, ...: the guest is not running. */
  return QUBE_DOMAIN_PAUSED;
}

/* After QEMU went away: did the guest power off because it was asked to
 * (or by itself), or did it die? */
static gboolean
ended_cleanly (const KvmPaths *paths)
{
  g_autofree char *tail = NULL;

  if (g_file_test (paths->shutdown_flag, G_FILE_TEST_EXISTS))
    return TRUE;
  tail = kvm_tail_lines (paths->console, 3);
  return tail != NULL && strstr (tail, "reboot: Power down") != NULL;
}

static int
kvm_info (void *plugin, const QubeDomainRef *ref, QubeDomainInfo *info)
{
  KvmPlugin *self = plugin;
  g_autoptr(KvmPaths) paths = kvm_paths_new (self, ref, "query");
  g_autoptr(KvmQmp) qmp = NULL;
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GKeyFile) conf = g_key_file_new ();
  g_autofree char *accel = NULL;
  QubeDomainInfo out = { 0 };
  pid_t pid;

  if (paths == NULL)
    return QUBE_ABI_E_INVALID;
  if (info == NULL || info->size < offsetof (QubeDomainInfo, accel) + sizeof info->accel)
    return FAIL (self, QUBE_ABI_E_INVALID, "cannot query qube '%s': info table too small",
                 ref_name (ref));
  out.size = info->size;

  g_key_file_load_from_file (conf, paths->conf, G_KEY_FILE_NONE, NULL);
  pid = kvm_process_read_pidfile (paths->pidfile);
  if (pid == 0 || !kvm_process_is_ours (pid, paths->pidfile))
    {
      if (pid == 0 && !g_file_test (paths->conf, G_FILE_TEST_EXISTS))
        out.state = QUBE_DOMAIN_HALTED;
      else if (ended_cleanly (paths))
        {
          out.state = QUBE_DOMAIN_HALTED;
          kvm_paths_cleanup (paths);
        }
      else
        out.state = QUBE_DOMAIN_CRASHED;
    }
  else
    {
      qmp = kvm_qmp_connect (paths->qmp, QMP_TIMEOUT_MS, &error);
      if (qmp != NULL)
        status = kvm_qmp_execute (qmp, "query-status", NULL, &error);
      if (status == NULL || !JSON_NODE_HOLDS_OBJECT (status))
        {
          /* QEMU may have exited between the two checks. */
          if (!kvm_process_is_ours (pid, paths->pidfile))
            return kvm_info (plugin, ref, info);
          return FAIL (self, QUBE_ABI_E_FAILED, "cannot query qube '%s': %s", ref_name (ref),
                       error ? error->message : "QEMU sent no status");
        }
      out.state = state_from_status (json_object_get_string_member_with_default (
          json_node_get_object (status), "status", NULL));
      out.cpu_time_ns = kvm_process_cpu_time_ns (pid);
    }

  if (out.state != QUBE_DOMAIN_HALTED)
    {
      guint64 memory = g_key_file_get_uint64 (conf, "qube", "memory-mib", NULL);
      out.memory_kib = memory * 1024;
      out.maxmem_kib = g_key_file_get_uint64 (conf, "qube", "maxmem-mib", NULL) * 1024;
      out.vcpus = (uint32_t) g_key_file_get_integer (conf, "qube", "vcpus", NULL);
      if (pid != 0 && out.state != QUBE_DOMAIN_CRASHED)
        out.host_overhead_kib = kvm_process_overhead_kib (pid, memory * 1024);
      accel = g_key_file_get_string (conf, "qube", "accel", NULL);
    }
  if (accel == NULL)
    accel = choose_accel (self, NULL);
  g_strlcpy (out.accel, accel, sizeof out.accel);

  /* Fill only what the caller's table has room for. */
  memcpy (info, &out, MIN ((size_t) info->size, sizeof out));
  info->size = out.size;
  return QUBE_ABI_OK;
}

static int
kvm_host_memory (void *plugin, uint64_t *total_mib, uint64_t *free_mib)
{
  KvmPlugin *self = plugin;
  g_autofree char *text = NULL;
  guint64 total = 0, available = 0;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL))
    return FAIL (self, QUBE_ABI_E_IO, "cannot read the host's memory: /proc/meminfo unreadable");
  for (char *line = text; line != NULL && *line != '\0';)
    {
      char *next = strchr (line, '\n');
      if (next != NULL)
        *next++ = '\0';
      sscanf (line, "MemTotal: %" G_GUINT64_FORMAT " kB", &total);
      sscanf (line, "MemAvailable: %" G_GUINT64_FORMAT " kB", &available);
      line = next;
    }
  *total_mib = total / 1024;
  *free_mib = available / 1024;
  return QUBE_ABI_OK;
}

/* ---- plugin life ---- */

static int
kvm_init (const QubeHost *host, void **plugin_data)
{
  KvmPlugin *self = g_new0 (KvmPlugin, 1);
  const char *qemu = host->config_get (host, "qemu");
  struct stat st;

  self->host = host;
  kvm_vchan_set_host (host);
  g_mutex_init (&self->lock);
  self->qemu = g_find_program_in_path (qemu != NULL ? qemu : "qemu-system-x86_64");
  self->work_dir = g_build_filename (host->state_dir, "kvm", NULL);
  /* Telling an upgraded QEMU from the one KVM was measured with must not
   * cost a process per command: stat() identifies the binary. */
  if (self->qemu != NULL && stat (self->qemu, &st) == 0)
    self->qemu_id = g_strdup_printf ("%s ino=%llu size=%lld mtime=%lld", self->qemu,
                                     (unsigned long long) st.st_ino, (long long) st.st_size,
                                     (long long) st.st_mtime);
  else
    self->qemu_id = g_strdup ("none");
  *plugin_data = self;
  return QUBE_ABI_OK;
}

static int
kvm_probe (void *plugin)
{
  KvmPlugin *self = plugin;

  if (self->qemu == NULL)
    return FAIL (self, QUBE_ABI_E_UNAVAILABLE,
                 "qemu-system-x86_64 not found (install the Debian package qemu-system-x86)");
  self->host->log (self->host, QUBE_LOG_DEBUG, "using %s", self->qemu);
  return QUBE_ABI_OK;
}

static const QubeBackendOps kvm_backend = {
  .size = sizeof (QubeBackendOps),
  .block_formats = QUBE_BLOCK_RAW | QUBE_BLOCK_QCOW2,
  .create = kvm_create,
  .start = kvm_start,
  .pause = kvm_pause,
  .unpause = kvm_unpause,
  .shutdown = kvm_shutdown,
  .kill = kvm_kill,
  .info = kvm_info,
  .host_memory = kvm_host_memory,
  .vchan_transport = "kvm",
};

/* For `qube plugins`: the acceleration qubes get, from what is known
 * without booting anything (the setting, the measurement cached by an
 * earlier start, or /dev/kvm missing).  A settled answer is kept, as a
 * start keeps it: the cache is read once, and never written here. */
static int
kvm_describe (void *plugin, char *buf, size_t buflen)
{
  KvmPlugin *self = plugin;
  const char *forced = forced_accel (self);

  if (forced != NULL)
    {
      g_snprintf (buf, buflen, "acceleration: %s (chosen by configuration)", forced);
      return 0;
    }
  g_mutex_lock (&self->lock);
  if (self->accel == NULL)
    {
      KvmAccelChoice *choice = kvm_accel_choose (NULL, self->work_dir, self->qemu,
                                                 self->qemu_id, NULL, KVM_DEVICE);

      if (choice->settled)
        self->accel = choice;
      else
        kvm_accel_choice_free (choice);
    }
  if (self->accel != NULL)
    g_snprintf (buf, buflen, "acceleration: %s (%s)", self->accel->accel, self->accel->reason);
  else
    g_snprintf (buf, buflen, "acceleration: tcg until KVM is measured at the first start "
                "(" KVM_DEVICE " is there)");
  g_mutex_unlock (&self->lock);
  return 0;
}

QUBE_PLUGIN_DEFINE (.name = "kvm",
                    .description = "qubes as QEMU microvm virtual machines (KVM or TCG)",
                    .version = PACKAGE_VERSION,
                    .license = "LGPL-2.1-or-later",
                    .source = PACKAGE_NAME,
                    .origin = NULL,
                    .init = kvm_init,
                    .probe = kvm_probe,
                    .backend = &kvm_backend,
                    .vchan = &kvm_vchan_ops,
                    .describe = kvm_describe);
