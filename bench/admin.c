/* admin.c — Admin API latency and throughput with 1000 qubes defined.
 *
 * Runs a real qubed from the build tree on a temporary state directory
 * and measures admin.vm.List and admin.vm.property.Get over its socket,
 * and calls per second from 8 concurrent clients; beside it, the same
 * calls answered in-process (QubeAdmin) and the bare library calls, so
 * that the socket's share and the library's share can be told apart.
 * Prints one summary line:
 *   bench admin: qubes=1000 list_ms=<n> get_us=<n> calls_per_s=<n>
 */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qube.h"
#include "qubed-fixture.h"

#define N_QUBES 1000
#define N_LIST 30
#define N_GET 2000
#define N_THREADS 8
#define THROUGHPUT_SECONDS 2

#define N_MGMT_GET 200

static const char *socket_path;
static const char *qrexec_socket_path;

static int
connect_to (const char *path)
{
  int fd = qubed_fixture_connect (path);

  if (fd < 0)
    g_error ("cannot connect to %s: %s", path, g_strerror (errno));
  return fd;
}

/* One call over the socket; returns the reply's length, aborts on an
 * exception (a benchmark of failures measures nothing). */
static gsize
socket_call_on (const char *path, const char *header)
{
  int fd = connect_to (path);
  g_autoptr(GByteArray) reply = NULL;

  if (send (fd, header, strlen (header) + 1, MSG_NOSIGNAL) < 0)
    g_error ("send: %s", g_strerror (errno));
  shutdown (fd, SHUT_WR);
  reply = qubed_fixture_read_all (fd);
  close (fd);
  if (reply->len < 2 || reply->data[0] != '0')
    g_error ("%s: not an OK reply", header);
  return reply->len;
}

static gsize
socket_call (const char *header)
{
  return socket_call_on (socket_path, header);
}

static gsize
inprocess_call (QubeAdmin *admin, const char *method, const char *arg, const char *dest)
{
  g_autoptr(GBytes) reply = qube_admin_call (admin, "dom0", method, arg, dest, NULL);
  gsize len;
  const char *data = g_bytes_get_data (reply, &len);

  if (data[0] != '0')
    g_error ("%s: not an OK reply", method);
  return len;
}

static gsize
library_list (QubeManager *manager)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (manager);
  g_autoptr(GString) out = g_string_new (NULL);

  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (out, "%s class=%s state=%s uuid=%s\n",
                            qube_vm_get_name (vms->pdata[i]), qube_vm_get_klass (vms->pdata[i]),
                            qube_vm_get_state (vms->pdata[i]), qube_vm_get_uuid (vms->pdata[i]));
  return out->len;
}

static gsize
library_get (QubeManager *manager, const char *name)
{
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);
  g_autofree char *value = qube_vm_get_property (vm, "netvm", NULL, NULL, NULL);

  return value != NULL ? strlen (value) : 0;
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (GArray *samples)
{
  g_array_sort (samples, compare_doubles);
  return g_array_index (samples, double, samples->len / 2);
}

typedef enum { VIA_SOCKET, VIA_ADMIN, VIA_LIBRARY } Via;

typedef struct {
  Via via;
  QubeManager *manager;
  QubeAdmin *admin;
} Bench;

static double
time_list_ms (Bench *b)
{
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < N_LIST; i++)
    {
      gint64 t0 = g_get_monotonic_time ();
      double ms;

      if (b->via == VIA_SOCKET)
        socket_call ("admin.vm.List dom0 name dom0");
      else if (b->via == VIA_ADMIN)
        inprocess_call (b->admin, "admin.vm.List", NULL, "dom0");
      else
        library_list (b->manager);
      ms = (g_get_monotonic_time () - t0) / 1000.0;
      g_array_append_val (samples, ms);
    }
  return median (samples);
}

static double
time_get_us (Bench *b)
{
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < N_GET; i++)
    {
      g_autofree char *name = g_strdup_printf ("app%04d", (i * 7919) % (N_QUBES - 1));
      g_autofree char *header = g_strdup_printf ("admin.vm.property.Get+netvm dom0 name %s", name);
      gint64 t0 = g_get_monotonic_time ();
      double us;

      if (b->via == VIA_SOCKET)
        socket_call (header);
      else if (b->via == VIA_ADMIN)
        inprocess_call (b->admin, "admin.vm.property.Get", "netvm", name);
      else
        library_get (b->manager, name);
      us = (double) (g_get_monotonic_time () - t0);
      g_array_append_val (samples, us);
    }
  return median (samples);
}

/* A management qube's call: the policy decides it, over the qubes as
 * they are at the call. */
static double
time_mgmt_get_us (void)
{
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < N_MGMT_GET; i++)
    {
      g_autofree char *header =
        g_strdup_printf ("admin.vm.property.Get+netvm mgmt name app%04d",
                         ((i * 7919) % (N_QUBES - 1)) & ~1);
      gint64 t0 = g_get_monotonic_time ();
      double us;

      socket_call_on (qrexec_socket_path, header);
      us = (double) (g_get_monotonic_time () - t0);
      g_array_append_val (samples, us);
    }
  return median (samples);
}

static gint64 throughput_deadline;

static gpointer
throughput_client (gpointer data)
{
  guint n = 0;

  while (g_get_monotonic_time () < throughput_deadline)
    {
      g_autofree char *header =
        g_strdup_printf ("admin.vm.property.Get+memory dom0 name app%04u",
                         (n * 31 + GPOINTER_TO_UINT (data)) % (N_QUBES - 1));
      socket_call (header);
      n++;
    }
  return GUINT_TO_POINTER (n);
}

static double
calls_per_second (void)
{
  GThread *threads[N_THREADS];
  guint64 total = 0;
  gint64 t0 = g_get_monotonic_time ();

  throughput_deadline = t0 + THROUGHPUT_SECONDS * G_USEC_PER_SEC;
  for (guint i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("client", throughput_client, GUINT_TO_POINTER (i));
  for (guint i = 0; i < N_THREADS; i++)
    total += GPOINTER_TO_UINT (g_thread_join (threads[i]));
  return total / ((g_get_monotonic_time () - t0) / (double) G_USEC_PER_SEC);
}

static void
define_qubes (QubeManager *manager)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) template = qube_manager_create_vm (manager, "TemplateVM", "fedora",
                                                       NULL, NULL, &error);

  if (template == NULL)
    g_error ("%s", error->message);
  for (int i = 0; i < N_QUBES - 1; i++)
    {
      g_autofree char *name = g_strdup_printf ("app%04d", i);
      g_autoptr(QubeVm) vm = qube_manager_create_vm (manager, "AppVM", name, "fedora", "red",
                                                     &error);
      if (vm == NULL || (i % 2 == 0 && !qube_vm_add_tag (vm, "created-by-mgmt", &error)))
        g_error ("%s", error->message);
    }
}

static char *
find_qubed (const char *argv0)
{
  const char *env = g_getenv ("QUBE_BENCH_QUBED");
  g_autofree char *dir = NULL;
  g_autofree char *parent = NULL;

  if (env != NULL)
    return g_strdup (env);
  /* bench/admin (or bench/.libs/admin) in the build tree. */
  dir = g_path_get_dirname (argv0);
  if (g_str_has_suffix (dir, ".libs"))
    {
      char *up = g_path_get_dirname (dir);
      g_free (dir);
      dir = up;
    }
  parent = g_path_get_dirname (dir);
  return g_build_filename (parent, "daemon", "qubed", NULL);
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("bench-admin-XXXXXX", &error);
  g_autofree char *state_dir = NULL, *sock = NULL, *qrexec_sock = NULL, *policy_dir = NULL;
  g_autofree char *qubed = find_qubed (argv[0]);
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeAdmin) admin = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  Bench socket_bench, admin_bench, library_bench;
  double list_ms, get_us, cps;

  if (dir == NULL)
    g_error ("%s", error->message);
  state_dir = g_build_filename (dir, "state", NULL);
  policy_dir = g_build_filename (dir, "policy", NULL);
  sock = g_build_filename (dir, "qubed.sock", NULL);
  qrexec_sock = g_build_filename (dir, "qubed-qrexec.sock", NULL);
  g_mkdir (policy_dir, 0700);
  socket_path = sock;
  qrexec_socket_path = qrexec_sock;
  {
    g_autofree char *policy = g_build_filename (policy_dir, "30-admin.policy", NULL);
    if (!g_file_set_contents (policy, "admin.vm.property.Get * mgmt @tag:created-by-mgmt "
                              "allow target=dom0\n", -1, &error))
      g_error ("%s", error->message);
  }

  manager = qube_manager_new (state_dir, &error);
  if (manager == NULL)
    g_error ("%s", error->message);
  define_qubes (manager);
  admin = qube_admin_new (manager, policy_dir);

  daemon = qubed_fixture_spawn (qubed, state_dir, policy_dir, sock, qrexec_sock, NULL, NULL,
                                NULL, &error);
  if (daemon == NULL)
    g_error ("cannot run %s: %s", qubed, error->message);

  socket_bench = (Bench) { VIA_SOCKET, manager, admin };
  admin_bench = (Bench) { VIA_ADMIN, manager, admin };
  library_bench = (Bench) { VIA_LIBRARY, manager, admin };

  g_print ("bench admin-library: qubes=%d list_ms=%.2f get_us=%.0f\n", N_QUBES,
           time_list_ms (&library_bench), time_get_us (&library_bench));
  g_print ("bench admin-inprocess: qubes=%d list_ms=%.2f get_us=%.0f\n", N_QUBES,
           time_list_ms (&admin_bench), time_get_us (&admin_bench));
  list_ms = time_list_ms (&socket_bench);
  get_us = time_get_us (&socket_bench);
  cps = calls_per_second ();
  g_print ("bench admin-mgmt: qubes=%d get_us=%.0f (decided by the policy)\n", N_QUBES,
           time_mgmt_get_us ());
  g_print ("bench admin: qubes=%d list_ms=%.2f get_us=%.0f calls_per_s=%.0f\n", N_QUBES,
           list_ms, get_us, cps);

  g_subprocess_send_signal (daemon, SIGTERM);
  g_subprocess_wait (daemon, NULL, NULL);
  qubed_fixture_remove_tree (dir);
  return list_ms <= 50 && get_us <= 500 ? 0 : 1;
}
