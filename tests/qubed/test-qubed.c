/* test-qubed.c — a real qubed process in a temporary state directory,
 * driven over its sockets as Qubes' clients drive qubesd.
 *
 * Replies are compared byte for byte; faults (idle, vanishing, flooding
 * clients, a kill -9) must leave the daemon serving and the state intact;
 * the delegation scenario runs through the qrexec socket, the way a
 * management qube's calls arrive.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qube.h"
#include "qubed-fixture.h"

typedef struct {
  char *dir;
  char *state_dir;
  char *policy_dir;
  char *socket;
  char *qrexec_socket;
  char *log;
  char *notify_socket;
  GSubprocess *daemon;
} Fixture;

static Fixture fx;

static const char *
builddir (void)
{
  const char *dir = g_getenv ("QUBE_TEST_BUILDDIR");
  return dir != NULL ? dir : ".";
}

static int
connect_to (const char *path)
{
  return qubed_fixture_connect (path);
}

static void
write_all (int fd, const void *data, gsize len)
{
  ck_assert_msg (qubed_fixture_write_all (fd, data, len), "send: %s", g_strerror (errno));
}

static GByteArray *
read_to_eof (int fd)
{
  return qubed_fixture_read_all (fd);
}

/* One request on `path`; the whole reply as a string (NULs kept). */
static GString *
call_on (const char *path, const char *header, const void *payload, gsize payload_len)
{
  int fd = connect_to (path);
  g_autoptr(GByteArray) reply = NULL;
  GString *out;

  ck_assert_msg (fd >= 0, "cannot connect to %s", path);
  write_all (fd, header, strlen (header) + 1);
  if (payload_len > 0)
    write_all (fd, payload, payload_len);
  shutdown (fd, SHUT_WR);
  reply = read_to_eof (fd);
  close (fd);
  out = g_string_new_len ((const char *) reply->data, reply->len);
  return out;
}

static GString *
call (const char *header, const char *payload)
{
  return call_on (fx.socket, header, payload, payload != NULL ? strlen (payload) : 0);
}

static GString *
call_as (const char *source, const char *method, const char *dest, const char *payload)
{
  g_autofree char *header = g_strdup_printf ("%s %s name %s", method, source, dest);
  return call_on (fx.qrexec_socket, header, payload, payload != NULL ? strlen (payload) : 0);
}

static gboolean
mem_equal (GString *got, const char *expected, gsize expected_len)
{
  return got->len == expected_len && memcmp (got->str, expected, expected_len) == 0;
}

static char *
show (GString *s)
{
  GString *out = g_string_new (NULL);

  for (gsize i = 0; i < s->len; i++)
    if (s->str[i] == '\0')
      g_string_append (out, "\\0");
    else
      g_string_append_c (out, s->str[i]);
  return g_string_free (out, FALSE);
}

/* An OK reply with exactly `content`. */
#define assert_ok(reply, content)                                                \
  G_STMT_START {                                                                 \
    g_autoptr(GString) _r = (reply);                                             \
    g_autoptr(GString) _exp = g_string_new_len ("0\0", 2);                       \
    g_autofree char *_shown = NULL;                                              \
    g_string_append (_exp, (content));                                           \
    _shown = show (_r);                                                          \
    ck_assert_msg (mem_equal (_r, _exp->str, _exp->len),                         \
                   "expected OK '%s', got '%s'", (content), _shown);             \
  } G_STMT_END

/* An exception reply of `type`. */
#define assert_exception(reply, type)                                            \
  G_STMT_START {                                                                 \
    g_autoptr(GString) _r = (reply);                                             \
    g_autofree char *_prefix = g_strdup_printf ("2%c%s%c%c", 0, (type), 0, 0);   \
    gsize _plen = strlen (type) + 4;                                             \
    g_autofree char *_shown = show (_r);                                         \
    ck_assert_msg (_r->len > _plen && memcmp (_r->str, _prefix, _plen) == 0      \
                   && _r->str[_r->len - 1] == '\0',                              \
                   "expected exception %s, got '%s'", (type), _shown);           \
  } G_STMT_END

static void
start_daemon (const char *const *extra)
{
  g_autofree char *qubed = g_build_filename (builddir (), "daemon", "qubed", NULL);
  g_autoptr(GError) error = NULL;

  fx.daemon = qubed_fixture_spawn (qubed, fx.state_dir, fx.policy_dir, fx.socket,
                                   fx.qrexec_socket, fx.log, fx.notify_socket, extra, &error);
  ck_assert_msg (fx.daemon != NULL, "cannot start qubed: %s (see %s)",
                 error != NULL ? error->message : "", fx.log);
}

static void
kill_daemon (int sig)
{
  if (fx.daemon == NULL)
    return;
  g_subprocess_send_signal (fx.daemon, sig);
  g_subprocess_wait (fx.daemon, NULL, NULL);
  g_clear_object (&fx.daemon);
}

static void
write_policy (const char *text)
{
  g_autofree char *path = g_build_filename (fx.policy_dir, "30-admin.policy", NULL);

  ck_assert (g_file_set_contents (path, text, -1, NULL));
}

static void
setup_with (const char *const *extra)
{
  g_autoptr(GError) error = NULL;

  fx.dir = g_dir_make_tmp ("test-qubed-XXXXXX", &error);
  ck_assert_msg (fx.dir != NULL, "%s", error != NULL ? error->message : "");
  fx.state_dir = g_build_filename (fx.dir, "state", NULL);
  fx.policy_dir = g_build_filename (fx.dir, "policy", NULL);
  fx.socket = g_build_filename (fx.dir, "qubed.sock", NULL);
  fx.qrexec_socket = g_build_filename (fx.dir, "qubed-qrexec.sock", NULL);
  fx.log = g_build_filename (fx.dir, "qubed.log", NULL);
  ck_assert_int_eq (g_mkdir (fx.policy_dir, 0700), 0);
  write_policy ("");
  start_daemon (extra);
}

static void
setup (void)
{
  setup_with (NULL);
}

static void
teardown (void)
{
  kill_daemon (SIGTERM);
  qubed_fixture_remove_tree (fx.dir);
  g_clear_pointer (&fx.dir, g_free);
  g_clear_pointer (&fx.state_dir, g_free);
  g_clear_pointer (&fx.policy_dir, g_free);
  g_clear_pointer (&fx.socket, g_free);
  g_clear_pointer (&fx.qrexec_socket, g_free);
  g_clear_pointer (&fx.log, g_free);
  g_clear_pointer (&fx.notify_socket, g_free);
}

static void
make_template_and_work (void)
{
  assert_ok (call ("admin.vm.Create.TemplateVM dom0 keyword adminvm", "name=fedora label=black"), "");
  assert_ok (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=work label=red"), "");
}

/* The UUID the store gave a qube, read through the library. */
static char *
uuid_of (const char *name)
{
  g_autoptr(QubeManager) manager = qube_manager_new (fx.state_dir, NULL);
  g_autoptr(QubeVm) vm = qube_manager_lookup (manager, name, NULL);

  ck_assert_ptr_nonnull (vm);
  return g_strdup (qube_vm_get_uuid (vm));
}

/* ---- reply formats ---- */

START_TEST (test_vm_list_format)
{
  g_autofree char *fedora = NULL, *work = NULL, *dom0 = uuid_of ("dom0");
  g_autofree char *all = NULL, *one = NULL;

  make_template_and_work ();
  fedora = uuid_of ("fedora");
  work = uuid_of ("work");
  all = g_strdup_printf ("dom0 class=AdminVM state=Running uuid=%s\n"
                         "fedora class=TemplateVM state=Halted uuid=%s\n"
                         "work class=AppVM state=Halted uuid=%s\n", dom0, fedora, work);
  assert_ok (call ("admin.vm.List dom0 name dom0", NULL), all);
  assert_ok (call ("admin.vm.List dom0 keyword adminvm", NULL), all);
  one = g_strdup_printf ("work class=AppVM state=Halted uuid=%s\n", work);
  assert_ok (call ("admin.vm.List dom0 name work", NULL), one);
  assert_ok (call ("admin.vmclass.List dom0 name dom0", NULL),
             "AdminVM\nAppVM\nDispVM\nStandaloneVM\nTemplateVM\n");
}
END_TEST

START_TEST (test_property_formats)
{
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeVm) vm = NULL;
  g_auto(GStrv) names = NULL;
  g_autoptr(GString) expected = g_string_new (NULL);
  g_autoptr(GString) all = NULL;

  make_template_and_work ();
  assert_ok (call ("admin.vm.property.Get+label dom0 name work", NULL),
             "default=False type=label red");
  assert_ok (call ("admin.vm.property.Get+netvm dom0 name work", NULL), "default=True type=vm ");
  assert_ok (call ("admin.vm.property.Get+template dom0 name work", NULL),
             "default=False type=vm fedora");
  assert_ok (call ("admin.vm.property.Get+memory dom0 name work", NULL), "default=True type=int 400");
  assert_ok (call ("admin.vm.property.Set+memory dom0 name work", "512"), "");
  assert_ok (call ("admin.vm.property.Get+memory dom0 name work", NULL),
             "default=False type=int 512");
  assert_ok (call ("admin.vm.property.Get+autostart dom0 name work", NULL),
             "default=True type=bool False");
  assert_ok (call ("admin.vm.property.Reset+memory dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.property.Get+memory dom0 name work", NULL), "default=True type=int 400");
  assert_exception (call ("admin.vm.property.Get+nosuch dom0 name work", NULL),
                    "QubesNoSuchPropertyError");
  assert_exception (call ("admin.vm.property.Set+memory dom0 name work", "lots"), "QubesValueError");
  assert_exception (call ("admin.vm.property.Set+netvm dom0 name work", "nosuch"),
                    "QubesVMNotFoundError");

  /* List: one name per line, the library's list. */
  manager = qube_manager_new (fx.state_dir, NULL);
  vm = qube_manager_lookup (manager, "work", NULL);
  names = qube_vm_list_properties (vm);
  for (guint i = 0; names[i] != NULL; i++)
    g_string_append_printf (expected, "%s\n", names[i]);
  assert_ok (call ("admin.vm.property.List dom0 name work", NULL), expected->str);

  /* GetAll: "NAME default=… type=… VALUE" per property, sorted. */
  all = call ("admin.vm.property.GetAll dom0 name work", NULL);
  ck_assert (all->len > 2 && all->str[0] == '0');
  ck_assert_ptr_nonnull (strstr (all->str + 2, "label default=False type=label red\n"));
  ck_assert_ptr_nonnull (strstr (all->str + 2, "memory default=True type=int 400\n"));
  ck_assert_ptr_nonnull (strstr (all->str + 2, "netvm default=True type=vm \n"));
  {
    g_auto(GStrv) lines = g_strsplit (all->str + 2, "\n", -1);
    ck_assert_uint_eq (g_strv_length (names) + 1, g_strv_length (lines));
  }

  /* Global properties. */
  assert_ok (call ("admin.property.Set+default_template dom0 name dom0", "fedora"), "");
  assert_ok (call ("admin.property.Get+default_template dom0 name dom0", NULL),
             "default=False type=vm fedora");
  assert_exception (call ("admin.property.Get+default_template dom0 name work", NULL),
                    "ProtocolError");
}
END_TEST

START_TEST (test_feature_and_tag_formats)
{
  make_template_and_work ();
  assert_ok (call ("admin.vm.feature.List dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.feature.Set+gui dom0 name work", "1"), "");
  assert_ok (call ("admin.vm.feature.Set+os dom0 name work", "Linux"), "");
  assert_ok (call ("admin.vm.feature.Get+os dom0 name work", NULL), "Linux");
  assert_ok (call ("admin.vm.feature.List dom0 name work", NULL), "gui\nos\n");
  assert_ok (call ("admin.vm.feature.Remove+gui dom0 name work", NULL), "");
  assert_exception (call ("admin.vm.feature.Get+gui dom0 name work", NULL),
                    "QubesFeatureNotFoundError");
  assert_exception (call ("admin.vm.feature.Remove+gui dom0 name work", NULL),
                    "QubesFeatureNotFoundError");

  assert_ok (call ("admin.vm.tag.Get+blue dom0 name work", NULL), "0");
  assert_ok (call ("admin.vm.tag.Set+blue dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.tag.Set+apps dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.tag.Get+blue dom0 name work", NULL), "1");
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "apps\nblue\n");
  assert_ok (call ("admin.vm.tag.Remove+blue dom0 name work", NULL), "");
  assert_exception (call ("admin.vm.tag.Remove+blue dom0 name work", NULL),
                    "QubesTagNotFoundError");
  assert_exception (call ("admin.vm.tag.Set+bad/tag dom0 name work", NULL), "ProtocolError");
}
END_TEST

START_TEST (test_lifecycle_formats)
{
  make_template_and_work ();
  assert_ok (call ("admin.vm.CurrentState dom0 name work", NULL),
             "mem=0 mem_static_max=0 cputime=0 power_state=Halted");
  /* No kernel to boot here (tests/kvm boots real ones): the start fails
   * with the reason, and nothing is left running. */
  assert_exception (call ("admin.vm.Start dom0 name work", NULL), "QubesException");
  assert_ok (call ("admin.vm.CurrentState dom0 name work", NULL),
             "mem=0 mem_static_max=0 cputime=0 power_state=Halted");
  assert_exception (call ("admin.vm.Pause dom0 name work", NULL), "QubesVMNotRunningError");
  assert_exception (call ("admin.vm.Unpause dom0 name work", NULL), "QubesVMNotRunningError");
  assert_exception (call ("admin.vm.Kill dom0 name work", NULL), "QubesVMNotRunningError");
  assert_exception (call ("admin.vm.Shutdown dom0 name work", NULL), "QubesVMNotRunningError");
  assert_exception (call ("admin.vm.Shutdown+force+wait dom0 name work", NULL),
                    "QubesVMNotRunningError");
  assert_exception (call ("admin.vm.Shutdown+now dom0 name work", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.Start dom0 name dom0", NULL), "QubesValueError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=work label=red"),
                    "QubesValueError");
  assert_exception (call ("admin.vm.Create.AppVM+nosuch dom0 name dom0", "name=x label=red"),
                    "QubesVMNotFoundError");
  assert_exception (call ("admin.vm.Remove dom0 name fedora", NULL), "QubesVMInUseError");
  assert_exception (call ("admin.vm.Remove dom0 name dom0", NULL), "QubesVMInUseError");
  assert_ok (call ("admin.vm.Clone dom0 name work", "name=work2"), "");
  assert_ok (call ("admin.vm.property.Get+template dom0 name work2", NULL),
             "default=False type=vm fedora");
  assert_exception (call ("admin.vm.Clone dom0 name work", "name=work2"), "QubesValueError");
  assert_exception (call ("admin.vm.Clone dom0 name work", "label=red"), "ProtocolError");
  assert_ok (call ("admin.vm.Remove dom0 name work2", NULL), "");
  assert_ok (call ("admin.vm.Remove dom0 name work", NULL), "");
  assert_exception (call ("admin.vm.List dom0 name work", NULL), "QubesVMNotFoundError");
}
END_TEST

static void
string_free (GString *s)
{
  g_string_free (s, TRUE);
}

START_TEST (test_storage_formats)
{
  g_autofree char *fast = g_build_filename (fx.dir, "fast", NULL);
  g_autofree char *add = g_strdup_printf ("name=fast\ndir_path=%s\n", fast);
  g_autofree char *info_prefix = g_strdup_printf ("0%cdir_path=%s\ndriver=file\nname=fast\nsize=",
                                                  0, fast);
  g_autoptr(GString) info = NULL;
  g_autoptr(GString) snapshots = NULL;
  g_autoptr(GString) drivers = NULL;
  g_autofree char *revision = NULL;

  make_template_and_work ();
  assert_ok (call ("admin.vm.volume.List dom0 name work", NULL),
             "kernel\nprivate\nroot\nvolatile\n");
  info = call ("admin.vm.volume.Info+root dom0 name work", NULL);
  ck_assert_msg (g_str_has_prefix (info->str + 2, "pool=default\nvid=work/root\nsize=21474836480\n"
                                                  "usage="), "%s", info->str + 2);
  ck_assert_ptr_nonnull (strstr (info->str + 2, "\nrw=True\nsource=fedora/root\nsave_on_stop=False\n"
                                                "snap_on_start=True\nrevisions_to_keep=1\n"
                                                "ephemeral=False\nis_outdated=False\n"
                                                "storage=True\nstarted=False\ncreated="));
  g_clear_pointer (&info, string_free);
  /* Kernel files: no storage, no revisions. */
  info = call ("admin.vm.volume.Info+kernel dom0 name work", NULL);
  ck_assert_msg (strstr (info->str + 2, "\nstorage=False\nstarted=False\ncreated=0\n") != NULL
                 && strstr (info->str + 2, "revision.") == NULL, "%s", info->str + 2);
  assert_exception (call ("admin.vm.volume.Info+nosuch dom0 name work", NULL), "QubesValueError");
  assert_exception (call ("admin.vm.volume.Info dom0 name work", NULL), "ProtocolError");

  /* Resize, then import: the old data becomes a revision to revert to. */
  assert_ok (call ("admin.vm.volume.Resize+private dom0 name work", "3221225472"), "");
  g_clear_pointer (&info, string_free);
  info = call ("admin.vm.volume.Info+private dom0 name work", NULL);
  ck_assert_ptr_nonnull (strstr (info->str + 2, "\nsize=3221225472\n"));
  assert_exception (call ("admin.vm.volume.Resize+private dom0 name work", "big"),
                    "QubesValueError");
  assert_ok (call ("admin.vm.volume.ListSnapshots+private dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.volume.Import+private dom0 name work", "new data"), "");
  snapshots = call ("admin.vm.volume.ListSnapshots+private dom0 name work", NULL);
  ck_assert_msg (snapshots->len > 3 && snapshots->str[0] == '0'
                 && snapshots->str[snapshots->len - 1] == '\n'
                 && memchr (snapshots->str + 2, '\n', snapshots->len - 3) == NULL,
                 "expected one revision, got '%s'", snapshots->str + 2);
  revision = g_strndup (snapshots->str + 2, snapshots->len - 3);
  /* Info gives the kept revision's time. */
  {
    g_autofree char *key = g_strdup_printf ("\nrevision.%s=", revision);
    const char *at = NULL;

    g_clear_pointer (&info, string_free);
    info = call ("admin.vm.volume.Info+private dom0 name work", NULL);
    at = strstr (info->str + 2, key);
    ck_assert_msg (at != NULL && g_ascii_isdigit (at[strlen (key)]) && at[strlen (key)] != '0',
                   "%s", info->str + 2);
  }
  assert_ok (call ("admin.vm.volume.Revert+private dom0 name work", revision), "");
  assert_exception (call ("admin.vm.volume.Revert+private dom0 name work", "nosuch"),
                    "QubesValueError");
  assert_exception (call ("admin.vm.volume.Import+kernel dom0 name work", "x"),
                    "QubesException");

  /* Pools. */
  assert_ok (call ("admin.pool.List dom0 name dom0", NULL), "default\n");
  drivers = call ("admin.pool.ListDrivers dom0 name dom0", NULL);
  ck_assert (drivers->str[0] == '0' && strstr (drivers->str + 2, "file\n") != NULL);
  ck_assert_int_eq (g_mkdir (fast, 0700), 0);
  assert_ok (call ("admin.pool.Add+file dom0 name dom0", add), "");
  assert_exception (call ("admin.pool.Add+file dom0 name dom0", add), "QubesValueError");
  assert_exception (call ("admin.pool.Add+nosuch dom0 name dom0", "name=x\n"), "QubesException");
  assert_exception (call ("admin.pool.Add+file dom0 name dom0", "dir_path=/tmp\n"),
                    "ProtocolError");
  assert_ok (call ("admin.pool.List dom0 name dom0", NULL), "default\nfast\n");
  g_clear_pointer (&info, string_free);
  info = call ("admin.pool.Info+fast dom0 name dom0", NULL);
  ck_assert_msg (info->len > strlen (info_prefix + 2) + 2
                 && memcmp (info->str, info_prefix, strlen (info_prefix + 2) + 2) == 0
                 && strstr (info->str + 2, "\nusage=") != NULL, "%s", info->str + 2);
  ck_assert_msg (strstr (info->str + 2, "\nmode=") != NULL
                 && strstr (info->str + 2, "\nlocation=/") != NULL
                 && strstr (info->str + 2, "\nformats=") != NULL
                 && g_str_has_suffix (info->str + 2, "\nvolumes=\n"), "%s", info->str + 2);
  assert_exception (call ("admin.pool.Info+nosuch dom0 name dom0", NULL), "QubesValueError");

  /* A qube made in the new pool, which then cannot go while it is used. */
  assert_ok (call ("admin.vm.CreateInPool.AppVM+fedora dom0 name dom0",
                   "name=inpool label=red pool=fast"), "");
  g_clear_pointer (&info, string_free);
  info = call ("admin.vm.volume.Info+private dom0 name inpool", NULL);
  ck_assert (g_str_has_prefix (info->str + 2, "pool=fast\nvid=inpool/private\n"));
  g_clear_pointer (&info, string_free);
  /* The root snapshot stays beside the template's root. */
  info = call ("admin.vm.volume.Info+root dom0 name inpool", NULL);
  ck_assert (g_str_has_prefix (info->str + 2, "pool=default\n"));
  assert_ok (call ("admin.vm.CreateInPool.StandaloneVM dom0 name dom0",
                   "name=split pool:private=fast"), "");
  g_clear_pointer (&info, string_free);
  info = call ("admin.vm.volume.Info+private dom0 name split", NULL);
  ck_assert (g_str_has_prefix (info->str + 2, "pool=fast\n"));
  g_clear_pointer (&info, string_free);
  info = call ("admin.vm.volume.Info+root dom0 name split", NULL);
  ck_assert (g_str_has_prefix (info->str + 2, "pool=default\n"));
  assert_exception (call ("admin.vm.CreateInPool.AppVM+fedora dom0 name dom0",
                          "name=x pool=fast pool:root=default"), "ProtocolError");
  assert_exception (call ("admin.vm.CreateInPool.AppVM+fedora dom0 name dom0",
                          "name=x pool=nosuch"), "QubesValueError");
  assert_exception (call ("admin.vm.List dom0 name x", NULL), "QubesVMNotFoundError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=x pool=fast"),
                    "ProtocolError");
  assert_exception (call ("admin.pool.Remove+fast dom0 name dom0", NULL), "QubesPoolInUseError");
  assert_ok (call ("admin.vm.Remove dom0 name inpool", NULL), "");
  assert_ok (call ("admin.vm.Remove dom0 name split", NULL), "");
  assert_ok (call ("admin.pool.Remove+fast dom0 name dom0", NULL), "");
  assert_ok (call ("admin.pool.List dom0 name dom0", NULL), "default\n");
  assert_exception (call ("admin.pool.Remove+fast dom0 name dom0", NULL), "QubesValueError");
}
END_TEST

/* ---- hostile and broken requests ---- */

START_TEST (test_bad_requests)
{
  g_autofree char *big = NULL;
  gsize big_len = QUBE_ADMIN_REQUEST_MAX + 4096;

  make_template_and_work ();
  assert_exception (call ("admin.vm.NoSuchMethod dom0 name work", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.List+x dom0 name work", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.property.Get dom0 name work", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.property.Get+label dom0 name work", "payload"),
                    "ProtocolError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name work", "name=x label=red"),
                    "ProtocolError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "label=red"),
                    "ProtocolError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name dom0",
                          "name=x label=red name=y"), "ProtocolError");
  assert_exception (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=-x label=red"),
                    "QubesValueError");
  assert_exception (call ("admin.vm.Create.NoSuchVM dom0 name dom0", "name=x label=red"),
                    "QubesValueError");
  assert_exception (call ("admin.vm.List dom0 name ../etc", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.List dom0 name a b", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.List dom0 word dom0", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.List dom0 keyword other", NULL), "ProtocolError");
  assert_exception (call ("admin.vm.List dom0 name nosuch", NULL), "QubesVMNotFoundError");
  assert_exception (call ("admin.vm.Li$t dom0 name dom0", NULL), "ProtocolError");
  assert_exception (call ("", NULL), "ProtocolError");
  /* A local client is the admin qube; it cannot speak for a qube. */
  assert_exception (call ("admin.vm.List work name dom0", NULL), "PermissionDenied");
  {
    /* A header with no NUL at all. */
    int fd = connect_to (fx.socket);
    g_autoptr(GByteArray) reply = NULL;

    write_all (fd, "admin.vm.List dom0 name dom0", 28);
    shutdown (fd, SHUT_WR);
    reply = read_to_eof (fd);
    close (fd);
    ck_assert (reply->len > 2 && reply->data[0] == '2');
  }
  /* A payload over the limit: an exception, and nothing stored. */
  big = g_malloc (big_len);
  memset (big, 'x', big_len);
  {
    int fd = connect_to (fx.socket);
    g_autoptr(GByteArray) reply = NULL;
    const char *header = "admin.vm.feature.Set+big dom0 name work";
    gsize off = 0;

    write_all (fd, header, strlen (header) + 1);
    /* The daemon may stop reading once the limit is passed. */
    while (off < big_len)
      {
        ssize_t n = send (fd, big + off, big_len - off, MSG_NOSIGNAL);
        if (n <= 0)
          break;
        off += n;
      }
    shutdown (fd, SHUT_WR);
    reply = read_to_eof (fd);
    close (fd);
    ck_assert_msg (reply->len > 2 && memcmp (reply->data, "2\0ProtocolError\0", 16) == 0,
                   "oversized request not refused with ProtocolError");
  }
  assert_exception (call ("admin.vm.feature.Get+big dom0 name work", NULL),
                    "QubesFeatureNotFoundError");
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "");
}
END_TEST

/* ---- load and faults ---- */

static gpointer
one_client (gpointer data)
{
  guint i = GPOINTER_TO_UINT (data);
  g_autofree char *header = g_strdup_printf ("admin.vm.feature.Set+f%u dom0 name work", i);
  g_autofree char *value = g_strdup_printf ("v%u", i);
  g_autoptr(GString) set = call (header, value);
  g_autofree char *get_header = g_strdup_printf ("admin.vm.feature.Get+f%u dom0 name work", i);
  g_autoptr(GString) got = call (get_header, NULL);
  g_autofree char *expected = g_strdup_printf ("v%u", i);

  return GINT_TO_POINTER (set->len == 2 && memcmp (set->str, "0\0", 2) == 0
                          && got->len == 2 + strlen (expected)
                          && memcmp (got->str + 2, expected, strlen (expected)) == 0);
}

START_TEST (test_hundred_clients)
{
  GThread *threads[100];
  g_autoptr(GString) list = NULL;
  guint lines = 0;

  make_template_and_work ();
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("client", one_client, GUINT_TO_POINTER (i));
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    ck_assert_msg (GPOINTER_TO_INT (g_thread_join (threads[i])), "client %u got a wrong reply", i);
  list = call ("admin.vm.feature.List dom0 name work", NULL);
  for (gsize i = 0; i < list->len; i++)
    lines += list->str[i] == '\n';
  ck_assert_uint_eq (lines, 100);
}
END_TEST

START_TEST (test_idle_client_is_dropped)
{
  int idle;
  g_autoptr(GByteArray) rest = NULL;
  g_autofree char *log = NULL;

  make_template_and_work ();
  idle = connect_to (fx.socket);
  ck_assert_int_ge (idle, 0);
  /* Others are served while it sits there. */
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "");
  assert_ok (call ("admin.vm.feature.List dom0 name work", NULL), "");
  /* Then the daemon hangs up on it, without a reply. */
  rest = read_to_eof (idle);
  close (idle);
  ck_assert_uint_eq (rest->len, 0);
  ck_assert (g_file_get_contents (fx.log, &log, NULL, NULL));
  ck_assert_ptr_nonnull (strstr (log, "sent no complete request"));
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "");
}
END_TEST

START_TEST (test_client_gone_mid_reply)
{
  g_autoptr(QubeManager) manager = qube_manager_new (fx.state_dir, NULL);

  make_template_and_work ();
  /* A reply larger than the socket buffers. */
  for (guint i = 0; i < 300; i++)
    {
      g_autofree char *name = g_strdup_printf ("q%03u", i);
      g_autoptr(QubeVm) vm = qube_manager_create_vm (manager, "AppVM", name, "fedora", NULL, NULL);
      ck_assert_ptr_nonnull (vm);
    }
  for (guint round = 0; round < 20; round++)
    {
      int fd = connect_to (fx.socket);
      const char *header = "admin.vm.property.GetAll dom0 name work";
      const char *list = "admin.vm.List dom0 name dom0";

      write_all (fd, round % 2 ? header : list, strlen (round % 2 ? header : list) + 1);
      shutdown (fd, SHUT_WR);
      close (fd);
    }
  ck_assert (g_subprocess_get_identifier (fx.daemon) != NULL);
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "");
}
END_TEST

START_TEST (test_kill_and_restart)
{
  g_autoptr(GString) before = NULL;
  g_autoptr(GString) after = NULL;

  make_template_and_work ();
  assert_ok (call ("admin.vm.feature.Set+os dom0 name work", "Linux"), "");
  assert_ok (call ("admin.vm.property.Set+memory dom0 name work", "800"), "");
  before = call ("admin.vm.List dom0 name dom0", NULL);
  kill_daemon (SIGKILL);
  /* The socket file it left is stale; a new daemon takes it over. */
  ck_assert (g_file_test (fx.socket, G_FILE_TEST_EXISTS));
  start_daemon (NULL);
  after = call ("admin.vm.List dom0 name dom0", NULL);
  ck_assert (g_string_equal (before, after));
  assert_ok (call ("admin.vm.feature.Get+os dom0 name work", NULL), "Linux");
  assert_ok (call ("admin.vm.property.Get+memory dom0 name work", NULL),
             "default=False type=int 800");
}
END_TEST

/* systemd's Type=notify: READY=1 on $NOTIFY_SOCKET once it serves. */
START_TEST (test_sd_notify)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  char buf[256];
  gssize n;

  kill_daemon (SIGTERM);
  fx.notify_socket = g_build_filename (fx.dir, "notify", NULL);
  listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM,
                           G_SOCKET_PROTOCOL_DEFAULT, NULL);
  address = g_unix_socket_address_new (fx.notify_socket);
  ck_assert (g_socket_bind (listener, address, TRUE, NULL));
  start_daemon (NULL);
  n = g_socket_receive (listener, buf, sizeof buf - 1, NULL, NULL);
  ck_assert_int_gt (n, 0);
  buf[n] = '\0';
  ck_assert_str_eq (buf, "READY=1");
  assert_ok (call ("admin.vm.tag.List dom0 name dom0", NULL), "");
}
END_TEST

/* ---- delegation to a management qube ---- */

static const char mgmt_policy[] =
  "admin.vm.Create.AppVM * mgmt dom0 allow\n"
  "admin.vm.List * mgmt dom0 allow target=dom0\n"
  "admin.vm.List * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.property.Get * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.property.Set * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.property.List * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.feature.Set * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.tag.Set * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.vm.Start * mgmt @tag:created-by-mgmt allow target=@adminvm\n"
  "admin.vm.Remove * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.Events * mgmt @tag:created-by-mgmt allow target=dom0\n"
  "admin.Events * mgmt dom0 allow target=dom0\n";

START_TEST (test_mgmt_delegation)
{
  g_autofree char *listing = NULL;
  g_autofree char *uuid_dom0 = uuid_of ("dom0");
  g_autofree char *uuid_app = NULL;
  g_autoptr(GString) refused = NULL;
  g_autoptr(GString) missing = NULL;

  write_policy (mgmt_policy);
  make_template_and_work ();
  assert_ok (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=mgmt label=purple"), "");

  /* mgmt creates a qube: it carries created-by-mgmt. */
  assert_ok (call_as ("mgmt", "admin.vm.Create.AppVM+fedora", "dom0", "name=app label=green"), "");
  assert_ok (call ("admin.vm.tag.List dom0 name app", NULL), "created-by-mgmt\n");
  /* ... and manages it. */
  assert_ok (call_as ("mgmt", "admin.vm.property.Set+memory", "app", "600"), "");
  assert_ok (call_as ("mgmt", "admin.vm.property.Get+memory", "app", NULL),
             "default=False type=int 600");
  assert_ok (call_as ("mgmt", "admin.vm.feature.Set+service.x", "app", "1"), "");
  assert_exception (call_as ("mgmt", "admin.vm.Start", "app", NULL), "QubesException");
  /* The list shows only what the policy lets mgmt list. */
  uuid_app = uuid_of ("app");
  listing = g_strdup_printf ("app class=AppVM state=Halted uuid=%s\n"
                             "dom0 class=AdminVM state=Running uuid=%s\n", uuid_app, uuid_dom0);
  assert_ok (call_as ("mgmt", "admin.vm.List", "dom0", NULL), listing);

  /* Every other qube: refused, the same way as a qube that does not exist. */
  refused = call_as ("mgmt", "admin.vm.property.Get+memory", "work", NULL);
  missing = call_as ("mgmt", "admin.vm.property.Get+memory", "nosuch", NULL);
  ck_assert (g_string_equal (refused, missing));
  assert_exception (g_string_new_len (refused->str, refused->len), "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.property.Set+memory", "work", "600"),
                    "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.Remove", "work", NULL), "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.Remove", "fedora", NULL), "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.List", "work", NULL), "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.Create.TemplateVM", "dom0", "name=t label=red"),
                    "PermissionDenied");
  assert_exception (call_as ("other", "admin.vm.property.Get+memory", "app", NULL),
                    "PermissionDenied");
  /* It cannot tag another qube into its reach, nor its own out of it. */
  assert_exception (call_as ("mgmt", "admin.vm.tag.Set+created-by-mgmt", "work", NULL),
                    "PermissionDenied");
  assert_exception (call_as ("mgmt", "admin.vm.tag.Set+created-by-other", "app", NULL),
                    "PermissionDenied");
  assert_ok (call ("admin.vm.property.Get+memory dom0 name work", NULL), "default=True type=int 400");

  /* The entry point the qrexec daemon calls answers as the socket does. */
  {
    g_autoptr(QubeManager) manager = qube_manager_new (fx.state_dir, NULL);
    g_autoptr(QubeAdmin) admin = qube_admin_new (manager, fx.policy_dir);
    g_autoptr(GBytes) direct = qube_admin_handle_qrexec_call (admin, "mgmt", "admin.vm.List",
                                                              "@adminvm", NULL);
    g_autoptr(GBytes) get = qube_admin_handle_qrexec_call (admin, "mgmt",
                                                           "admin.vm.property.Get+memory",
                                                           "app", NULL);
    g_autoptr(GBytes) denied = qube_admin_handle_qrexec_call (admin, "mgmt",
                                                              "admin.vm.property.Get+memory",
                                                              "work", NULL);
    g_autoptr(GString) via_socket = call_as ("mgmt", "admin.vm.List", "dom0", NULL);
    g_autoptr(GBytes) content = NULL;
    g_autofree char *type = NULL;
    g_autofree char *message = NULL;

    ck_assert (g_bytes_get_size (direct) == via_socket->len
               && memcmp (g_bytes_get_data (direct, NULL), via_socket->str, via_socket->len) == 0);
    content = qube_admin_reply_get_content (get, NULL, NULL);
    ck_assert_ptr_nonnull (content);
    ck_assert_mem_eq (g_bytes_get_data (content, NULL), "default=False type=int 600", 26);
    ck_assert_ptr_null (qube_admin_reply_get_content (denied, &type, &message));
    ck_assert_str_eq (type, "PermissionDenied");
  }

  /* The qubes it made, it removes. */
  assert_ok (call_as ("mgmt", "admin.vm.Remove", "app", NULL), "");
  assert_exception (call ("admin.vm.List dom0 name app", NULL), "QubesVMNotFoundError");
  {
    g_autofree char *uuid_work = uuid_of ("work");
    g_autofree char *line = g_strdup_printf ("work class=AppVM state=Halted uuid=%s\n", uuid_work);
    assert_ok (call ("admin.vm.List dom0 name work", NULL), line);
  }
}
END_TEST

/* ---- admin.Events ---- */

static int
subscribe (const char *path, const char *header)
{
  int fd = connect_to (path);

  ck_assert_int_ge (fd, 0);
  write_all (fd, header, strlen (header) + 1);
  shutdown (fd, SHUT_WR);
  return fd;
}

/* Reads one event message: "1\0subject\0event\0(key\0value\0)*\0". */
static char *
read_event (int fd)
{
  GString *msg = g_string_new (NULL);
  int empty_run = 0;
  char ch;

  /* header */
  for (int i = 0; i < 2; i++)
    {
      ck_assert_int_eq (recv (fd, &ch, 1, 0), 1);
      g_string_append_c (msg, ch == '\0' ? '|' : ch);
    }
  /* subject, event, then pairs until an empty key */
  for (int field = 0;; field++)
    {
      GString *f = g_string_new (NULL);

      for (;;)
        {
          ck_assert_int_eq (recv (fd, &ch, 1, 0), 1);
          if (ch == '\0')
            break;
          g_string_append_c (f, ch);
        }
      empty_run = f->len == 0 && field >= 2 && field % 2 == 0;
      g_string_append (msg, f->str);
      g_string_append_c (msg, '|');
      g_string_free (f, TRUE);
      if (empty_run)
        break;
    }
  return g_string_free (msg, FALSE);
}

START_TEST (test_events)
{
  int all, scoped;
  g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL, *s1 = NULL,
                  *s2 = NULL;

  write_policy (mgmt_policy);
  make_template_and_work ();
  assert_ok (call ("admin.vm.Create.AppVM+fedora dom0 name dom0", "name=mgmt label=purple"), "");
  all = subscribe (fx.socket, "admin.Events dom0 name dom0");
  e1 = read_event (all);
  ck_assert_str_eq (e1, "1||connection-established||");
  scoped = subscribe (fx.qrexec_socket, "admin.Events mgmt name dom0");
  s1 = read_event (scoped);
  ck_assert_str_eq (s1, "1||connection-established||");

  assert_ok (call ("admin.vm.property.Set+memory dom0 name work", "512"), "");
  e2 = read_event (all);
  ck_assert_str_eq (e2, "1|work|property-set:memory|name|memory|newvalue|512|oldvalue|400||");
  assert_ok (call_as ("mgmt", "admin.vm.Create.AppVM+fedora", "dom0", "name=app label=green"), "");
  e3 = read_event (all);
  ck_assert_str_eq (e3, "1||domain-add|vm|app||");
  assert_ok (call ("admin.vm.feature.Set+os dom0 name app", "Linux"), "");
  e4 = read_event (all);
  ck_assert_str_eq (e4, "1|app|domain-feature-set:os|feature|os|value|Linux||");
  assert_ok (call ("admin.vm.property.Reset+memory dom0 name work", NULL), "");
  e5 = read_event (all);
  ck_assert_str_eq (e5, "1|work|property-reset:memory|name|memory||");

  /* mgmt saw the host's domain-add, not the change to 'work'. */
  s2 = read_event (scoped);
  ck_assert_str_eq (s2, "1||domain-add|vm|app||");
  g_free (s2);
  s2 = read_event (scoped);
  ck_assert_str_eq (s2, "1|app|domain-feature-set:os|feature|os|value|Linux||");
  close (all);
  close (scoped);
  /* An unknown dest and a refused subscription. */
  assert_exception (call ("admin.Events dom0 name nosuch", NULL), "QubesVMNotFoundError");
  assert_exception (call_on (fx.qrexec_socket, "admin.Events mgmt name work", NULL, 0),
                    "PermissionDenied");
}
END_TEST

/* The preload queues' changes, appended to their events file by
 * whichever process made them, reach admin.Events; lines that are not
 * such events are passed over. */
START_TEST (test_preload_events)
{
  g_autoptr(QubeManager) manager = qube_manager_new (fx.state_dir, NULL);
  g_autofree char *path = qube_dispvm_events_path (manager);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;
  const char *lines = "dvm domain-preload-dispvm-start disp12\n"
                      "dvm something-else disp12\n"
                      "../x domain-preload-dispvm-used disp12\n"
                      "dvm domain-preload-dispvm-removed disp12 outdated: its root changed\n";
  int all, fd;

  all = subscribe (fx.socket, "admin.Events dom0 name dom0");
  e1 = read_event (all);
  ck_assert_str_eq (e1, "1||connection-established||");
  ck_assert_int_eq (g_mkdir_with_parents (dir, 0700), 0);
  fd = open (path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, lines, strlen (lines)), (gssize) strlen (lines));
  close (fd);
  e2 = read_event (all);
  ck_assert_str_eq (e2, "1|dvm|domain-preload-dispvm-start|dispvm|disp12||");
  e3 = read_event (all);
  ck_assert_str_eq (e3, "1|dvm|domain-preload-dispvm-removed|dispvm|disp12|reason|"
                        "outdated: its root changed||");
  close (all);
}
END_TEST

START_TEST (test_slow_subscriber_is_dropped)
{
  int slow;
  g_autoptr(GByteArray) got = NULL;
  g_autofree char *log = NULL;
  struct timeval tv = { .tv_sec = 120 };

  make_template_and_work ();
  slow = subscribe (fx.socket, "admin.Events dom0 name dom0");
  /* It never reads; the changes go on, answered at once. */
  for (guint i = 0; i < 6000; i++)
    {
      g_autofree char *value = g_strdup_printf ("%u", 400 + i % 100);
      assert_ok (call ("admin.vm.property.Set+memory dom0 name work", value), "");
    }
  /* Its stream ends: what the kernel buffered, then the hang-up. */
  setsockopt (slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  got = read_to_eof (slow);
  close (slow);
  ck_assert_uint_gt (got->len, 0);
  ck_assert (g_file_get_contents (fx.log, &log, NULL, NULL));
  ck_assert_ptr_nonnull (strstr (log, "dropping admin.Events subscriber 'dom0'"));
  assert_ok (call ("admin.vm.tag.List dom0 name work", NULL), "");
}
END_TEST

static void
setup_short_timeouts (void)
{
  static const char *const extra[] = { "--client-timeout", "1", NULL };
  setup_with (extra);
}

/* A small event queue alone: the thousands of calls that fill it must not
 * meet a short client timeout on a busy machine. */
static void
setup_small_event_queue (void)
{
  static const char *const extra[] = { "--event-queue-max", "4096", NULL };
  setup_with (extra);
}

static Suite *
qubed_suite (void)
{
  Suite *s = suite_create ("qubed");
  TCase *tc = tcase_create ("formats");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_vm_list_format);
  tcase_add_test (tc, test_property_formats);
  tcase_add_test (tc, test_feature_and_tag_formats);
  tcase_add_test (tc, test_lifecycle_formats);
  tcase_add_test (tc, test_storage_formats);
  tcase_add_test (tc, test_bad_requests);
  suite_add_tcase (s, tc);

  tc = tcase_create ("faults");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_hundred_clients);
  tcase_add_test (tc, test_client_gone_mid_reply);
  tcase_add_test (tc, test_kill_and_restart);
  tcase_add_test (tc, test_sd_notify);
  suite_add_tcase (s, tc);

  tc = tcase_create ("timeouts");
  tcase_add_checked_fixture (tc, setup_short_timeouts, teardown);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_idle_client_is_dropped);
  suite_add_tcase (s, tc);

  tc = tcase_create ("event-queue");
  tcase_add_checked_fixture (tc, setup_small_event_queue, teardown);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_slow_subscriber_is_dropped);
  suite_add_tcase (s, tc);

  tc = tcase_create ("delegation");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_mgmt_delegation);
  tcase_add_test (tc, test_events);
  tcase_add_test (tc, test_preload_events);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *runner = srunner_create (qubed_suite ());
  int failed;

  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
