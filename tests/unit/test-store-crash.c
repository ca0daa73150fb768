/* test-store-crash.c — the state store survives kill -9 at any point
 * (core/qube-store.c).
 *
 * A child process makes changes through the public API (creates qubes,
 * sets properties, features and tags, removes qubes) and acknowledges each
 * change on a pipe once the call has returned, i.e. once it is committed.
 * The parent SIGKILLs it at a random point, then opens the store: it must
 * open, pass PRAGMA integrity_check, and hold every acknowledged change —
 * and nothing that was never attempted.  Rounds are seeded; the seed is
 * printed and QUBE_TEST_SEED repeats a run.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-manager.h"
#include "qube-store.h"
#include "qube-vm-private.h"
#include "state-fixture.h"

#define ROUNDS 40
#define MAX_ACKS_BEFORE_KILL 30
#define MAX_KILL_DELAY_US 3000
#define TEMPLATE "tpl"

/* The changes a child makes, in this order, for i = 0, 1, 2 ...:
 * create qube i, set its memory, set a feature, add a tag, and after
 * every fifth qube remove the one before it. */
typedef enum {
  OP_NONE,
  OP_CREATE,
  OP_MEMORY,
  OP_FEATURE,
  OP_TAG,
  OP_REMOVE,
} OpType;

typedef struct {
  OpType type;
  int i;
} Op;

static const char op_letters[] = { '-', 'C', 'M', 'F', 'T', 'D' };

static Op
next_op (Op op)
{
  switch (op.type)
    {
    case OP_NONE: return (Op) { OP_CREATE, 0 };
    case OP_CREATE: return (Op) { OP_MEMORY, op.i };
    case OP_MEMORY: return (Op) { OP_FEATURE, op.i };
    case OP_FEATURE: return (Op) { OP_TAG, op.i };
    case OP_TAG: return op.i % 5 == 4 ? (Op) { OP_REMOVE, op.i - 1 } : (Op) { OP_CREATE, op.i + 1 };
    case OP_REMOVE: return (Op) { OP_CREATE, op.i + 2 };
    default: g_assert_not_reached ();
    }
}

static char *
qube_name (int round, int i)
{
  return g_strdup_printf ("r%dq%d", round, i);
}

static char *
memory_value (int i)
{
  return g_strdup_printf ("%d", 100 + i);
}

static char *
feature_value (int round, int i)
{
  return g_strdup_printf ("value-%d-%d", round, i);
}

static char *
tag_name (int i)
{
  return g_strdup_printf ("tag%d", i);
}

static void
write_all (int fd, const char *text)
{
  size_t len = strlen (text);

  while (len > 0)
    {
      ssize_t n = write (fd, text, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        _exit (4);
      text += n;
      len -= (size_t) n;
    }
}

static gboolean
apply_op (QubeManager *manager, int round, Op op, GError **error)
{
  g_autofree char *name = qube_name (round, op.i);
  g_autoptr(QubeVm) vm = NULL;

  if (op.type == OP_CREATE)
    {
      vm = qube_manager_create_vm (manager, "AppVM", name, TEMPLATE, NULL, error);
      return vm != NULL;
    }
  if (op.type == OP_REMOVE)
    return qube_manager_remove_vm (manager, name, error);

  vm = qube_manager_lookup (manager, name, error);
  if (vm == NULL)
    return FALSE;
  switch (op.type)
    {
    case OP_MEMORY:
      {
        g_autofree char *value = memory_value (op.i);
        return qube_vm_set_property (vm, "memory", value, error);
      }
    case OP_FEATURE:
      {
        g_autofree char *value = feature_value (round, op.i);
        return qube_vm_set_feature (vm, "seq", value, error);
      }
    case OP_TAG:
      {
        g_autofree char *tag = tag_name (op.i);
        return qube_vm_add_tag (vm, tag, error);
      }
    default:
      g_assert_not_reached ();
    }
}

/* The child: change, acknowledge, repeat until killed. */
static void G_GNUC_NORETURN
run_child (const char *state_dir, int round, int ack_fd)
{
  g_autoptr(GError) error = NULL;
  QubeManager *manager = qube_manager_new (state_dir, &error);
  Op op = { OP_NONE, 0 };

  if (manager == NULL)
    {
      g_autofree char *line = g_strdup_printf ("E %s\n", error->message);
      write_all (ack_fd, line);
      _exit (3);
    }
  for (;;)
    {
      g_autofree char *line = NULL;

      op = next_op (op);
      if (!apply_op (manager, round, op, &error))
        {
          line = g_strdup_printf ("E %s\n", error->message);
          write_all (ack_fd, line);
          _exit (3);
        }
      line = g_strdup_printf ("%c %d\n", op_letters[op.type], op.i);
      write_all (ack_fd, line);
    }
}

/* What the parent knows was committed, per qube. */
typedef struct {
  int round;
  int i;
  gboolean created;
  gboolean memory;
  gboolean feature;
  gboolean tag;
  gboolean removed;
  gboolean maybe_removed; /* its removal was under way when killed */
} Expected;

typedef struct {
  GHashTable *qubes;       /* name -> Expected */
  GHashTable *maybe_made;  /* names whose creation was under way when killed */
} Ledger;

static Expected *
ledger_qube (Ledger *ledger, int round, int i)
{
  g_autofree char *name = qube_name (round, i);
  Expected *e = g_hash_table_lookup (ledger->qubes, name);

  if (e == NULL)
    {
      e = g_new0 (Expected, 1);
      e->round = round;
      e->i = i;
      g_hash_table_insert (ledger->qubes, g_steal_pointer (&name), e);
    }
  return e;
}

static void
ledger_ack (Ledger *ledger, int round, Op op)
{
  Expected *e = ledger_qube (ledger, round, op.i);

  switch (op.type)
    {
    case OP_CREATE: e->created = TRUE; break;
    case OP_MEMORY: e->memory = TRUE; break;
    case OP_FEATURE: e->feature = TRUE; break;
    case OP_TAG: e->tag = TRUE; break;
    case OP_REMOVE: e->removed = TRUE; break;
    default: g_assert_not_reached ();
    }
}

/* The change after the last acknowledged one may or may not be committed. */
static void
ledger_in_flight (Ledger *ledger, int round, Op op)
{
  if (op.type == OP_REMOVE)
    ledger_qube (ledger, round, op.i)->maybe_removed = TRUE;
  else if (op.type == OP_CREATE)
    g_hash_table_add (ledger->maybe_made, qube_name (round, op.i));
}

static void
verify_store (const char *state_dir, Ledger *ledger, int round, guint32 seed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) manager = qube_manager_new (state_dir, &error);
  g_autoptr(GPtrArray) vms = NULL;
  GHashTableIter iter;
  gpointer key, value;

  ck_assert_msg (manager != NULL, "seed %u round %d: the store does not open: %s", seed,
                 round, error != NULL ? error->message : "?");
  ck_assert_msg (_qube_store_check_integrity (_qube_manager_get_store (manager), &error),
                 "seed %u round %d: %s", seed, round, error != NULL ? error->message : "?");

  g_hash_table_iter_init (&iter, ledger->qubes);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      const char *name = key;
      Expected *e = value;
      g_autoptr(QubeVm) vm = NULL;

      if (!e->created || e->maybe_removed)
        continue;
      vm = qube_manager_lookup (manager, name, &error);
      if (e->removed)
        {
          ck_assert_msg (vm == NULL, "seed %u round %d: removed qube %s is back", seed, round,
                         name);
          g_clear_error (&error);
          continue;
        }
      ck_assert_msg (vm != NULL, "seed %u round %d: acknowledged qube %s is lost: %s", seed,
                     round, name, error != NULL ? error->message : "?");
      if (e->memory)
        {
          g_autofree char *expected = memory_value (e->i);
          g_autofree char *got = fixture_get (vm, "memory", NULL);
          ck_assert_msg (g_str_equal (got, expected), "seed %u round %d: %s memory is %s, not %s",
                         seed, round, name, got, expected);
        }
      if (e->feature)
        {
          g_autofree char *expected = feature_value (e->round, e->i);
          g_autofree char *got = qube_vm_get_feature (vm, "seq");
          ck_assert_msg (g_strcmp0 (got, expected) == 0,
                         "seed %u round %d: %s feature is %s, not %s", seed, round, name,
                         got != NULL ? got : "(none)", expected);
        }
      if (e->tag)
        {
          g_autofree char *tag = tag_name (e->i);
          ck_assert_msg (qube_vm_has_tag (vm, tag), "seed %u round %d: %s lost tag %s", seed,
                         round, name, tag);
        }
    }

  /* nothing that was never attempted */
  vms = qube_manager_list_vms (manager);
  for (guint i = 0; i < vms->len; i++)
    {
      const char *name = qube_vm_get_name (vms->pdata[i]);
      Expected *e;

      if (g_str_equal (name, "dom0") || g_str_equal (name, TEMPLATE))
        continue;
      e = g_hash_table_lookup (ledger->qubes, name);
      ck_assert_msg ((e != NULL && e->created) || g_hash_table_contains (ledger->maybe_made, name),
                     "seed %u round %d: qube %s was never acknowledged", seed, round, name);
    }
}

/* Reads acknowledgements until `stop_after` of them, or EOF when
 * stop_after < 0.  Returns FALSE at EOF. */
static gboolean
read_acks (int fd, GString *buffer, int round, Ledger *ledger, Op *last, int *count,
           int stop_after, guint32 seed)
{
  if (stop_after == 0)
    return TRUE;
  for (;;)
    {
      char *newline;
      char chunk[256];
      ssize_t n;

      while ((newline = memchr (buffer->str, '\n', buffer->len)) != NULL)
        {
          g_autofree char *line = g_strndup (buffer->str, newline - buffer->str);
          const char *letter;
          Op op;

          g_string_erase (buffer, 0, newline - buffer->str + 1);
          ck_assert_msg (line[0] != 'E', "seed %u round %d: the child failed: %s", seed,
                         round, line + 2);
          letter = memchr (op_letters, line[0], sizeof op_letters);
          ck_assert_msg (letter != NULL && line[1] == ' ', "bad acknowledgement '%s'", line);
          op.type = (OpType) (letter - op_letters);
          op.i = atoi (line + 2);
          /* acknowledgements come in the order of the changes */
          {
            Op want = next_op (*last);
            ck_assert_msg (want.type == op.type && want.i == op.i,
                           "seed %u round %d: acknowledgement '%s' out of order", seed,
                           round, line);
          }
          ledger_ack (ledger, round, op);
          *last = op;
          (*count)++;
          if (stop_after >= 0 && *count >= stop_after)
            return TRUE;
        }
      n = read (fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      ck_assert_msg (n >= 0, "reading acknowledgements: %s", g_strerror (errno));
      if (n == 0)
        return FALSE;
      g_string_append_len (buffer, chunk, n);
    }
}

START_TEST (test_kill_at_random_points)
{
  g_autofree char *state_dir = fixture_make_state_dir ();
  const char *seed_env = g_getenv ("QUBE_TEST_SEED");
  guint32 seed = seed_env != NULL ? (guint32) g_ascii_strtoull (seed_env, NULL, 10)
                                  : (guint32) g_get_real_time ();
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  Ledger ledger = {
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free),
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
  };
  int total_acks = 0;

  printf ("test-store-crash: seed %u (QUBE_TEST_SEED=%u repeats this run)\n", seed, seed);
  fflush (stdout);

  {
    /* Made in a child of its own: creating a qube makes its volumes with
     * helper processes (GSubprocess starts GLib's worker thread), and a
     * process forked from one that has threads cannot run helpers. */
    pid_t maker = fork ();
    int status = 0;

    ck_assert_int_ge (maker, 0);
    if (maker == 0)
      {
        QubeManager *manager = qube_manager_new (state_dir, NULL);
        _exit (manager != NULL
               && qube_manager_create_vm (manager, "TemplateVM", TEMPLATE, NULL, NULL, NULL)
                  != NULL ? 0 : 1);
      }
    ck_assert_int_eq (waitpid (maker, &status, 0), maker);
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "cannot create the template %s", TEMPLATE);
  }

  for (int round = 0; round < ROUNDS; round++)
    {
      int fds[2];
      pid_t pid;
      int status = 0;
      int stop_after = g_rand_int_range (rand, 0, MAX_ACKS_BEFORE_KILL + 1);
      int delay_us = g_rand_int_range (rand, 0, MAX_KILL_DELAY_US + 1);
      g_autoptr(GString) buffer = g_string_new (NULL);
      Op last = { OP_NONE, 0 };
      int count = 0;
      gboolean alive;

      ck_assert_int_eq (pipe (fds), 0);
      fflush (stdout);
      pid = fork ();
      ck_assert_int_ge (pid, 0);
      if (pid == 0)
        {
          close (fds[0]);
          run_child (state_dir, round, fds[1]);
        }
      close (fds[1]);

      alive = read_acks (fds[0], buffer, round, &ledger, &last, &count, stop_after, seed);
      ck_assert_msg (alive, "seed %u round %d: the child stopped by itself", seed, round);
      if (delay_us > 0)
        g_usleep (delay_us);
      ck_assert_int_eq (kill (pid, SIGKILL), 0);
      /* acknowledgements written before the kill count too */
      read_acks (fds[0], buffer, round, &ledger, &last, &count, -1, seed);
      close (fds[0]);
      ck_assert_int_eq (waitpid (pid, &status, 0), pid);
      ck_assert_msg (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
                     "seed %u round %d: the child ended with status %d", seed, round, status);

      ledger_in_flight (&ledger, round, next_op (last));
      total_acks += count;
      verify_store (state_dir, &ledger, round, seed);
    }

  printf ("test-store-crash: %d rounds, %d acknowledged changes verified\n", ROUNDS, total_acks);
  g_hash_table_unref (ledger.qubes);
  g_hash_table_unref (ledger.maybe_made);
  fixture_remove_state_dir (state_dir);
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("store-crash");
  TCase *tc = tcase_create ("store-crash");

  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_kill_at_random_points);
  suite_add_tcase (suite, tc);
  return fixture_run_suite (suite);
}
