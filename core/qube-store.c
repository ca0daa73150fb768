/* qube-store.c — the SQLite state store of libqube.
 *
 * One file, WAL journal, synchronous=FULL (a committed change survives a
 * crash or power loss), foreign keys on (removing a qube removes its rows),
 * a busy timeout because the CLI and the daemon share the file.  The schema
 * is versioned with PRAGMA user_version and upgraded by the migration steps
 * below, in order, inside one transaction.  Statements are prepared once
 * and kept for the life of the connection.
 *
 * This file does no rule checking: callers decide what is written.
 */
#include "config.h"

#include <sqlite3.h>

#include "qube-error.h"
#include "qube-store.h"
#include "qube-vm-private.h"

/* Long enough to wait out another process's transaction (they are short),
 * short enough that a stuck peer is reported instead of hanging forever. */
#define STORE_BUSY_TIMEOUT_MS 10000

/* Migration steps: migrations[i] brings a store from version i to i + 1.
 * Append only; never edit a step that has been released. */
static const char *const migrations[] = {
  /* 0 -> 1: the tables, and the admin qube. */
  "CREATE TABLE qubes ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL UNIQUE,"
  "  uuid TEXT NOT NULL UNIQUE,"
  "  class TEXT NOT NULL);"
  "CREATE TABLE properties ("
  "  qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  name TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (qube_id, name)) WITHOUT ROWID;"
  "CREATE TABLE features ("
  "  qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  key TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (qube_id, key)) WITHOUT ROWID;"
  "CREATE TABLE tags ("
  "  qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  tag TEXT NOT NULL,"
  "  PRIMARY KEY (qube_id, tag)) WITHOUT ROWID;"
  "CREATE TABLE globals ("
  "  name TEXT PRIMARY KEY,"
  "  value TEXT NOT NULL) WITHOUT ROWID;"
  "INSERT INTO qubes (name, uuid, class) VALUES ('" QUBE_STORE_ADMIN_NAME
  "', '" QUBE_STORE_ADMIN_UUID "', 'AdminVM');"
  "INSERT INTO properties (qube_id, name, value)"
  "  SELECT id, 'label', 'black' FROM qubes WHERE name = '" QUBE_STORE_ADMIN_NAME "';",

  /* 1 -> 2: reverse lookups ("which qubes use X as template/netvm",
   * "which qubes carry tag T") without scanning every row. */
  "CREATE INDEX properties_by_value ON properties (name, value);"
  "CREATE INDEX tags_by_tag ON tags (tag);",

  /* 2 -> 3: storage pools (driver and options) and the volumes of each
   * qube.  A pool cannot go while a volume names it (the foreign key). */
  "CREATE TABLE pools ("
  "  name TEXT PRIMARY KEY,"
  "  driver TEXT NOT NULL) WITHOUT ROWID;"
  "CREATE TABLE pool_options ("
  "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,"
  "  key TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (pool, key)) WITHOUT ROWID;"
  "CREATE TABLE volumes ("
  "  qube_id INTEGER NOT NULL REFERENCES qubes (id) ON DELETE CASCADE,"
  "  name TEXT NOT NULL,"
  "  pool TEXT NOT NULL REFERENCES pools (name),"
  "  flags INTEGER NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  source TEXT,"
  "  revisions_to_keep INTEGER NOT NULL,"
  "  PRIMARY KEY (qube_id, name)) WITHOUT ROWID;"
  "CREATE INDEX volumes_by_pool ON volumes (pool);",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == QUBE_STORE_SCHEMA_VERSION);

typedef enum {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_QUBE_BY_NAME,
  STMT_QUBE_BY_ID,
  STMT_QUBE_LIST,
  STMT_QUBE_ADD,
  STMT_QUBE_REMOVE,
  STMT_COPY_PROPERTIES,
  STMT_COPY_FEATURES,
  STMT_COPY_TAGS,
  STMT_PROPERTY_GET,
  STMT_PROPERTY_SET,
  STMT_PROPERTY_UNSET,
  STMT_PROPERTY_USERS,
  STMT_GLOBAL_GET,
  STMT_GLOBAL_SET,
  STMT_GLOBAL_UNSET,
  STMT_FEATURE_GET,
  STMT_FEATURE_SET,
  STMT_FEATURE_REMOVE,
  STMT_FEATURE_LIST,
  STMT_TAG_HAS,
  STMT_TAG_ADD,
  STMT_TAG_REMOVE,
  STMT_TAG_LIST,
  STMT_POOL_GET,
  STMT_POOL_LIST,
  STMT_POOL_ADD,
  STMT_POOL_REMOVE,
  STMT_POOL_OPTION_ADD,
  STMT_POOL_OPTIONS,
  STMT_POOL_VOLUMES,
  STMT_VOLUME_ADD,
  STMT_VOLUME_UPDATE,
  STMT_VOLUME_LIST,
  N_STMTS
} StoreStmt;

static const struct {
  const char *sql;
  const char *what;  /* the operation, for error messages */
  gboolean lists;    /* reads a whole table on purpose */
} stmt_defs[N_STMTS] = {
  [STMT_BEGIN] = { "BEGIN IMMEDIATE", "begin a transaction" },
  [STMT_COMMIT] = { "COMMIT", "commit a transaction" },
  [STMT_ROLLBACK] = { "ROLLBACK", "roll back a transaction" },
  [STMT_QUBE_BY_NAME] = { "SELECT id, name, uuid, class FROM qubes WHERE name = ?1",
                          "look up a qube" },
  [STMT_QUBE_BY_ID] = { "SELECT id, name, uuid, class FROM qubes WHERE id = ?1",
                        "look up a qube" },
  [STMT_QUBE_LIST] = { "SELECT id, name, uuid, class FROM qubes ORDER BY name",
                       "list qubes", TRUE },
  [STMT_QUBE_ADD] = { "INSERT INTO qubes (name, uuid, class) VALUES (?1, ?2, ?3)",
                      "add a qube" },
  [STMT_QUBE_REMOVE] = { "DELETE FROM qubes WHERE id = ?1", "remove a qube" },
  [STMT_COPY_PROPERTIES] = { "INSERT INTO properties (qube_id, name, value) "
                             "SELECT ?2, name, value FROM properties WHERE qube_id = ?1",
                             "copy properties" },
  [STMT_COPY_FEATURES] = { "INSERT INTO features (qube_id, key, value) "
                           "SELECT ?2, key, value FROM features WHERE qube_id = ?1",
                           "copy features" },
  [STMT_COPY_TAGS] = { "INSERT INTO tags (qube_id, tag) "
                       "SELECT ?2, tag FROM tags WHERE qube_id = ?1",
                       "copy tags" },
  [STMT_PROPERTY_GET] = { "SELECT value FROM properties WHERE qube_id = ?1 AND name = ?2",
                          "read a property" },
  [STMT_PROPERTY_SET] = { "INSERT INTO properties (qube_id, name, value) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT (qube_id, name) DO UPDATE SET value = excluded.value",
                          "write a property" },
  [STMT_PROPERTY_UNSET] = { "DELETE FROM properties WHERE qube_id = ?1 AND name = ?2",
                            "reset a property" },
  [STMT_PROPERTY_USERS] = { "SELECT q.name FROM properties p JOIN qubes q ON q.id = p.qube_id "
                            "WHERE p.name = ?1 AND p.value = ?2 ORDER BY q.name",
                            "find the users of a qube" },
  [STMT_GLOBAL_GET] = { "SELECT value FROM globals WHERE name = ?1",
                        "read a global property" },
  [STMT_GLOBAL_SET] = { "INSERT INTO globals (name, value) VALUES (?1, ?2) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        "write a global property" },
  [STMT_GLOBAL_UNSET] = { "DELETE FROM globals WHERE name = ?1",
                          "reset a global property" },
  [STMT_FEATURE_GET] = { "SELECT value FROM features WHERE qube_id = ?1 AND key = ?2",
                         "read a feature" },
  [STMT_FEATURE_SET] = { "INSERT INTO features (qube_id, key, value) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (qube_id, key) DO UPDATE SET value = excluded.value",
                         "write a feature" },
  [STMT_FEATURE_REMOVE] = { "DELETE FROM features WHERE qube_id = ?1 AND key = ?2",
                            "remove a feature" },
  [STMT_FEATURE_LIST] = { "SELECT key FROM features WHERE qube_id = ?1 ORDER BY key",
                          "list features" },
  [STMT_TAG_HAS] = { "SELECT 1 FROM tags WHERE qube_id = ?1 AND tag = ?2",
                     "read a tag" },
  [STMT_TAG_ADD] = { "INSERT OR IGNORE INTO tags (qube_id, tag) VALUES (?1, ?2)",
                     "add a tag" },
  [STMT_TAG_REMOVE] = { "DELETE FROM tags WHERE qube_id = ?1 AND tag = ?2",
                        "remove a tag" },
  [STMT_TAG_LIST] = { "SELECT tag FROM tags WHERE qube_id = ?1 ORDER BY tag",
                      "list tags" },
  [STMT_POOL_GET] = { "SELECT driver FROM pools WHERE name = ?1", "look up a pool" },
  [STMT_POOL_LIST] = { "SELECT name FROM pools ORDER BY name", "list pools", TRUE },
  [STMT_POOL_ADD] = { "INSERT INTO pools (name, driver) VALUES (?1, ?2)", "add a pool" },
  [STMT_POOL_REMOVE] = { "DELETE FROM pools WHERE name = ?1", "remove a pool" },
  [STMT_POOL_OPTION_ADD] = { "INSERT INTO pool_options (pool, key, value) VALUES (?1, ?2, ?3)",
                             "record a pool option" },
  [STMT_POOL_OPTIONS] = { "SELECT key, value FROM pool_options WHERE pool = ?1 ORDER BY key",
                          "read the options of a pool" },
  [STMT_POOL_VOLUMES] = { "SELECT q.name || ':' || v.name FROM volumes v "
                          "JOIN qubes q ON q.id = v.qube_id WHERE v.pool = ?1 "
                          "ORDER BY q.name, v.name",
                          "find the volumes of a pool" },
  [STMT_VOLUME_ADD] = { "INSERT INTO volumes (qube_id, name, pool, flags, size, source, "
                        "revisions_to_keep) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        "add a volume" },
  [STMT_VOLUME_UPDATE] = { "UPDATE volumes SET pool = ?3, flags = ?4, size = ?5, source = ?6, "
                           "revisions_to_keep = ?7 WHERE qube_id = ?1 AND name = ?2",
                           "change a volume" },
  [STMT_VOLUME_LIST] = { "SELECT qube_id, name, pool, flags, size, source, revisions_to_keep "
                         "FROM volumes WHERE qube_id = ?1 ORDER BY name",
                         "list the volumes of a qube" },
};

struct _QubeStore {
  sqlite3 *db;
  char *path;
  sqlite3_stmt *stmts[N_STMTS];
  GArray *outcomes;           /* Outcome: what follows the transaction */
};

typedef struct {
  gboolean on_commit;
  QubeStoreOutcomeFunc func;
  gpointer data;
  GDestroyNotify destroy;
} Outcome;

static gboolean
store_fail (QubeStore *store, const char *what, GError **error)
{
  g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
               "state store %s: cannot %s: %s",
               store->path, what, sqlite3_errmsg (store->db));
  return FALSE;
}

/* The prepared statement, reset and with its bindings cleared. */
static sqlite3_stmt *
store_stmt (QubeStore *store, StoreStmt which, GError **error)
{
  sqlite3_stmt *stmt = store->stmts[which];

  if (stmt == NULL)
    {
      if (sqlite3_prepare_v3 (store->db, stmt_defs[which].sql, -1,
                              SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK)
        {
          store_fail (store, stmt_defs[which].what, error);
          return NULL;
        }
      store->stmts[which] = stmt;
      return stmt;
    }

  /* reset() repeats the error of the last step, which was already
   * reported; only the bindings matter here. */
  sqlite3_reset (stmt);
  if (sqlite3_clear_bindings (stmt) != SQLITE_OK)
    {
      store_fail (store, stmt_defs[which].what, error);
      return NULL;
    }
  return stmt;
}

/* Binds ?1 = an id and, when given, ?2 / ?3 = texts. */
static sqlite3_stmt *
store_stmt_bind (QubeStore *store, StoreStmt which, gint64 id,
                 const char *text2, const char *text3, GError **error)
{
  sqlite3_stmt *stmt = store_stmt (store, which, error);

  if (stmt == NULL)
    return NULL;
  if (sqlite3_bind_int64 (stmt, 1, id) != SQLITE_OK
      || (text2 != NULL && sqlite3_bind_text (stmt, 2, text2, -1, SQLITE_STATIC) != SQLITE_OK)
      || (text3 != NULL && sqlite3_bind_text (stmt, 3, text3, -1, SQLITE_STATIC) != SQLITE_OK))
    {
      store_fail (store, stmt_defs[which].what, error);
      return NULL;
    }
  return stmt;
}

/* Binds ?1, ?2, ?3 to texts (NULL ones are left unbound). */
static sqlite3_stmt *
store_stmt_bind_text (QubeStore *store, StoreStmt which, const char *text1,
                      const char *text2, const char *text3, GError **error)
{
  sqlite3_stmt *stmt = store_stmt (store, which, error);
  const char *texts[] = { text1, text2, text3 };

  if (stmt == NULL)
    return NULL;
  for (int i = 0; i < 3; i++)
    if (texts[i] != NULL
        && sqlite3_bind_text (stmt, i + 1, texts[i], -1, SQLITE_STATIC) != SQLITE_OK)
      {
        store_fail (store, stmt_defs[which].what, error);
        return NULL;
      }
  return stmt;
}

/* Runs a statement that returns no rows. */
static gboolean
store_exec_stmt (QubeStore *store, StoreStmt which, sqlite3_stmt *stmt,
                 GError **error)
{
  int rc;

  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      store_fail (store, stmt_defs[which].what, error);
      sqlite3_reset (stmt);
      return FALSE;
    }
  sqlite3_reset (stmt);
  return TRUE;
}

/* Runs a statement returning at most one text column in one row;
 * *value is NULL when there is no row. */
static gboolean
store_query_text (QubeStore *store, StoreStmt which, sqlite3_stmt *stmt,
                  char **value, GError **error)
{
  int rc;

  *value = NULL;
  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      const unsigned char *text = sqlite3_column_text (stmt, 0);
      if (text == NULL && sqlite3_errcode (store->db) == SQLITE_NOMEM)
        {
          store_fail (store, stmt_defs[which].what, error);
          sqlite3_reset (stmt);
          return FALSE;
        }
      *value = g_strdup (text != NULL ? (const char *) text : "");
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        rc = SQLITE_DONE; /* keys are unique: a second row cannot be */
    }
  if (rc != SQLITE_DONE)
    {
      g_clear_pointer (value, g_free);
      store_fail (store, stmt_defs[which].what, error);
      sqlite3_reset (stmt);
      return FALSE;
    }
  sqlite3_reset (stmt);
  return TRUE;
}

/* Runs a statement returning one text column; all rows, in order. */
static GPtrArray *
store_query_column (QubeStore *store, StoreStmt which, sqlite3_stmt *stmt,
                    GError **error)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (g_free);
  int rc;

  if (stmt == NULL)
    return NULL;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const unsigned char *text = sqlite3_column_text (stmt, 0);
      g_ptr_array_add (rows, g_strdup (text != NULL ? (const char *) text : ""));
    }
  if (rc != SQLITE_DONE)
    {
      store_fail (store, stmt_defs[which].what, error);
      sqlite3_reset (stmt);
      return NULL;
    }
  sqlite3_reset (stmt);
  return g_steal_pointer (&rows);
}

static char **
strv_from_rows (GPtrArray *rows)
{
  if (rows == NULL)
    return NULL;
  g_ptr_array_add (rows, NULL);
  return (char **) g_ptr_array_free (rows, FALSE);
}

/* Runs SQL text that is not a kept statement (pragmas, migrations). */
static gboolean
store_exec_sql (QubeStore *store, const char *sql, const char *what,
                GError **error)
{
  char *msg = NULL;

  if (sqlite3_exec (store->db, sql, NULL, NULL, &msg) != SQLITE_OK)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                   "state store %s: cannot %s: %s", store->path, what,
                   msg != NULL ? msg : sqlite3_errmsg (store->db));
      sqlite3_free (msg);
      return FALSE;
    }
  return TRUE;
}

/* The value of an integer pragma such as user_version. */
static gboolean
store_pragma_int (QubeStore *store, const char *pragma, int *value,
                  GError **error)
{
  g_autofree char *sql = g_strdup_printf ("PRAGMA %s", pragma);
  g_autofree char *what = g_strdup_printf ("read PRAGMA %s", pragma);
  sqlite3_stmt *stmt = NULL;
  int rc;

  if (sqlite3_prepare_v2 (store->db, sql, -1, &stmt, NULL) != SQLITE_OK)
    return store_fail (store, what, error);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      store_fail (store, what, error);
      sqlite3_finalize (stmt);
      return FALSE;
    }
  *value = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  return TRUE;
}

int
_qube_store_get_schema_version (QubeStore *store, GError **error)
{
  int version = -1;

  if (!store_pragma_int (store, "user_version", &version, error))
    return -1;
  return version;
}

static gboolean
store_check_version (QubeStore *store, int version, GError **error)
{
  if (version > QUBE_STORE_SCHEMA_VERSION)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                   "state store %s has schema version %d, newer than this "
                   "libqube understands (%d): use a newer libqube",
                   store->path, version, QUBE_STORE_SCHEMA_VERSION);
      return FALSE;
    }
  if (version < 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                   "state store %s has an invalid schema version %d",
                   store->path, version);
      return FALSE;
    }
  return TRUE;
}

/* Brings the schema up to QUBE_STORE_SCHEMA_VERSION, in one transaction
 * taken before reading the version, so two processes opening a new store
 * at once do not both migrate it. */
static gboolean
store_migrate (QubeStore *store, GError **error)
{
  int version;

  if (!store_pragma_int (store, "user_version", &version, error))
    return FALSE;
  if (!store_check_version (store, version, error))
    return FALSE;
  if (version == QUBE_STORE_SCHEMA_VERSION)
    return TRUE;

  if (!_qube_store_begin (store, error))
    return FALSE;
  if (!store_pragma_int (store, "user_version", &version, error)
      || !store_check_version (store, version, error))
    goto fail;

  for (; version < QUBE_STORE_SCHEMA_VERSION; version++)
    {
      g_autofree char *what = g_strdup_printf ("migrate the schema from version %d to %d",
                                               version, version + 1);
      g_autofree char *set_version = g_strdup_printf ("PRAGMA user_version = %d",
                                                      version + 1);
      g_debug ("state store %s: %s", store->path, what);
      if (!store_exec_sql (store, migrations[version], what, error)
          || !store_exec_sql (store, set_version, what, error))
        goto fail;
    }
  return _qube_store_commit (store, error);

fail:
  _qube_store_rollback (store);
  return FALSE;
}

QubeStore *
_qube_store_open (const char *path, GError **error)
{
  g_autoptr(QubeStore) store = g_new0 (QubeStore, 1);
  int rc;

  store->path = g_strdup (path);
  rc = sqlite3_open_v2 (path, &store->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
                        NULL);
  if (rc != SQLITE_OK)
    {
      if (store->db == NULL)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                       "state store %s: cannot open: %s", path, sqlite3_errstr (rc));
          return NULL;
        }
      store_fail (store, "open", error);
      return NULL;
    }
  sqlite3_extended_result_codes (store->db, 1);

  if (sqlite3_busy_timeout (store->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK)
    {
      store_fail (store, "set the busy timeout", error);
      return NULL;
    }
  /* journal_mode answers with a row (the mode now in force): check it. */
  {
    sqlite3_stmt *stmt = NULL;
    const unsigned char *mode;
    gboolean wal;

    if (sqlite3_prepare_v2 (store->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_step (stmt) != SQLITE_ROW)
      {
        store_fail (store, "switch to the WAL journal", error);
        sqlite3_finalize (stmt);
        return NULL;
      }
    mode = sqlite3_column_text (stmt, 0);
    wal = mode != NULL && g_ascii_strcasecmp ((const char *) mode, "wal") == 0;
    sqlite3_finalize (stmt);
    if (!wal)
      {
        g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                     "state store %s: cannot switch to the WAL journal "
                     "(the file system may not support it)", path);
        return NULL;
      }
  }
  if (!store_exec_sql (store, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                       "set synchronous=FULL and foreign_keys=ON", error))
    return NULL;

  if (!store_migrate (store, error))
    return NULL;

  return g_steal_pointer (&store);
}

void
_qube_store_close (QubeStore *store)
{
  if (store == NULL)
    return;
  for (int i = 0; i < N_STMTS; i++)
    sqlite3_finalize (store->stmts[i]);
  if (store->outcomes != NULL)
    {
      for (guint i = 0; i < store->outcomes->len; i++)
        {
          Outcome *o = &g_array_index (store->outcomes, Outcome, i);

          if (o->destroy != NULL)
            o->destroy (o->data);
        }
      g_array_unref (store->outcomes);
    }
  /* close_v2 cannot fail once every statement is finalized. */
  if (store->db != NULL)
    sqlite3_close_v2 (store->db);
  g_free (store->path);
  g_free (store);
}

const char *
_qube_store_get_path (QubeStore *store)
{
  return store->path;
}

gboolean
_qube_store_begin (QubeStore *store, GError **error)
{
  return store_exec_stmt (store, STMT_BEGIN, store_stmt (store, STMT_BEGIN, error), error);
}

void
_qube_store_on_outcome (QubeStore *store, gboolean on_commit, QubeStoreOutcomeFunc func,
                        gpointer data, GDestroyNotify destroy)
{
  Outcome o = { on_commit, func, data, destroy };

  if (store->outcomes == NULL)
    store->outcomes = g_array_new (FALSE, FALSE, sizeof (Outcome));
  g_array_append_val (store->outcomes, o);
}

/* The transaction ended: runs what was to follow that end, the latest
 * first (undoing goes backwards), and forgets the rest. */
static void
store_run_outcomes (QubeStore *store, gboolean committed)
{
  g_autoptr(GArray) outcomes = g_steal_pointer (&store->outcomes);

  for (guint i = outcomes != NULL ? outcomes->len : 0; i > 0; i--)
    {
      Outcome *o = &g_array_index (outcomes, Outcome, i - 1);

      if (o->on_commit == committed)
        o->func (o->data);
      if (o->destroy != NULL)
        o->destroy (o->data);
    }
}

static int
fail_commit_hook (void *data)
{
  (void) data;
  return 1;   /* the commit becomes a rollback */
}

void
_qube_store_fail_commits (QubeStore *store, gboolean fail)
{
  sqlite3_commit_hook (store->db, fail ? fail_commit_hook : NULL, NULL);
}

gboolean
_qube_store_commit (QubeStore *store, GError **error)
{
  if (!store_exec_stmt (store, STMT_COMMIT, store_stmt (store, STMT_COMMIT, error), error))
    {
      _qube_store_rollback (store);
      return FALSE;
    }
  store_run_outcomes (store, TRUE);
  return TRUE;
}

void
_qube_store_rollback (QubeStore *store)
{
  g_autoptr(GError) local_error = NULL;

  /* SQLite may already have rolled back on its own (e.g. after SQLITE_FULL);
   * then there is nothing left to undo in the store. */
  if (!sqlite3_get_autocommit (store->db)
      && !store_exec_stmt (store, STMT_ROLLBACK,
                           store_stmt (store, STMT_ROLLBACK, &local_error), &local_error))
    g_warning ("%s", local_error->message);
  store_run_outcomes (store, FALSE);
}

gboolean
_qube_store_transact (QubeStore *store, QubeStoreTxnFunc func, gpointer data,
                      GError **error)
{
  if (!_qube_store_begin (store, error))
    return FALSE;
  if (!func (store, data, error))
    {
      _qube_store_rollback (store);
      return FALSE;
    }
  return _qube_store_commit (store, error);
}

void
_qube_store_qube_clear (QubeStoreQube *qube)
{
  g_clear_pointer (&qube->name, g_free);
  g_clear_pointer (&qube->uuid, g_free);
  g_clear_pointer (&qube->klass, g_free);
  qube->id = 0;
}

void
_qube_store_qube_free (QubeStoreQube *qube)
{
  if (qube == NULL)
    return;
  _qube_store_qube_clear (qube);
  g_free (qube);
}

static void
qube_from_row (sqlite3_stmt *stmt, QubeStoreQube *out)
{
  out->id = sqlite3_column_int64 (stmt, 0);
  out->name = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
  out->uuid = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
  out->klass = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
}

static gboolean
store_query_qube (QubeStore *store, StoreStmt which, sqlite3_stmt *stmt,
                  const char *missing, QubeStoreQube *out, GError **error)
{
  int rc;

  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      _qube_store_qube_clear (out);
      qube_from_row (stmt, out);
      sqlite3_reset (stmt);
      return TRUE;
    }
  if (rc != SQLITE_DONE)
    store_fail (store, stmt_defs[which].what, error);
  else
    g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND, "no such qube %s", missing);
  sqlite3_reset (stmt);
  return FALSE;
}

gboolean
_qube_store_get_qube (QubeStore *store, const char *name, QubeStoreQube *out,
                      GError **error)
{
  g_autofree char *shown = _qube_printable (name);
  g_autofree char *missing = g_strdup_printf ("'%s'", shown);
  return store_query_qube (store, STMT_QUBE_BY_NAME,
                           store_stmt_bind_text (store, STMT_QUBE_BY_NAME, name,
                                                 NULL, NULL, error),
                           missing, out, error);
}

gboolean
_qube_store_get_qube_by_id (QubeStore *store, gint64 id, QubeStoreQube *out,
                            GError **error)
{
  g_autofree char *missing = g_strdup_printf ("with id %" G_GINT64_FORMAT, id);
  return store_query_qube (store, STMT_QUBE_BY_ID,
                           store_stmt_bind (store, STMT_QUBE_BY_ID, id, NULL, NULL, error),
                           missing, out, error);
}

GPtrArray *
_qube_store_list_qubes (QubeStore *store, GError **error)
{
  g_autoptr(GPtrArray) qubes = g_ptr_array_new_with_free_func ((GDestroyNotify) _qube_store_qube_free);
  sqlite3_stmt *stmt = store_stmt (store, STMT_QUBE_LIST, error);
  int rc;

  if (stmt == NULL)
    return NULL;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      QubeStoreQube *qube = g_new0 (QubeStoreQube, 1);
      qube_from_row (stmt, qube);
      g_ptr_array_add (qubes, qube);
    }
  if (rc != SQLITE_DONE)
    {
      store_fail (store, stmt_defs[STMT_QUBE_LIST].what, error);
      sqlite3_reset (stmt);
      return NULL;
    }
  sqlite3_reset (stmt);
  return g_steal_pointer (&qubes);
}

gboolean
_qube_store_add_qube (QubeStore *store, const char *name, const char *uuid,
                      const char *klass, gint64 *id_out, GError **error)
{
  if (!store_exec_stmt (store, STMT_QUBE_ADD,
                        store_stmt_bind_text (store, STMT_QUBE_ADD, name, uuid, klass, error),
                        error))
    return FALSE;
  if (id_out != NULL)
    *id_out = sqlite3_last_insert_rowid (store->db);
  return TRUE;
}

gboolean
_qube_store_remove_qube (QubeStore *store, gint64 id, GError **error)
{
  return store_exec_stmt (store, STMT_QUBE_REMOVE,
                          store_stmt_bind (store, STMT_QUBE_REMOVE, id, NULL, NULL, error),
                          error);
}

static sqlite3_stmt *
store_stmt_bind_ids (QubeStore *store, StoreStmt which, gint64 id1, gint64 id2,
                     GError **error)
{
  sqlite3_stmt *stmt = store_stmt_bind (store, which, id1, NULL, NULL, error);

  if (stmt != NULL && sqlite3_bind_int64 (stmt, 2, id2) != SQLITE_OK)
    {
      store_fail (store, stmt_defs[which].what, error);
      return NULL;
    }
  return stmt;
}

gboolean
_qube_store_copy_qube_data (QubeStore *store, gint64 from_id, gint64 to_id,
                            GError **error)
{
  static const StoreStmt copies[] = { STMT_COPY_PROPERTIES, STMT_COPY_FEATURES, STMT_COPY_TAGS };

  for (gsize i = 0; i < G_N_ELEMENTS (copies); i++)
    if (!store_exec_stmt (store, copies[i],
                          store_stmt_bind_ids (store, copies[i], from_id, to_id, error),
                          error))
      return FALSE;
  return TRUE;
}

gboolean
_qube_store_get_property (QubeStore *store, gint64 qube_id, const char *name,
                          char **value, GError **error)
{
  return store_query_text (store, STMT_PROPERTY_GET,
                           store_stmt_bind (store, STMT_PROPERTY_GET, qube_id, name, NULL, error),
                           value, error);
}

gboolean
_qube_store_set_property (QubeStore *store, gint64 qube_id, const char *name,
                          const char *value, GError **error)
{
  return store_exec_stmt (store, STMT_PROPERTY_SET,
                          store_stmt_bind (store, STMT_PROPERTY_SET, qube_id, name, value, error),
                          error);
}

gboolean
_qube_store_unset_property (QubeStore *store, gint64 qube_id, const char *name,
                            GError **error)
{
  return store_exec_stmt (store, STMT_PROPERTY_UNSET,
                          store_stmt_bind (store, STMT_PROPERTY_UNSET, qube_id, name, NULL, error),
                          error);
}

GPtrArray *
_qube_store_find_property_users (QubeStore *store, const char *name,
                                 const char *value, GError **error)
{
  return store_query_column (store, STMT_PROPERTY_USERS,
                             store_stmt_bind_text (store, STMT_PROPERTY_USERS, name, value,
                                                   NULL, error),
                             error);
}

gboolean
_qube_store_get_global (QubeStore *store, const char *name, char **value,
                        GError **error)
{
  return store_query_text (store, STMT_GLOBAL_GET,
                           store_stmt_bind_text (store, STMT_GLOBAL_GET, name, NULL, NULL, error),
                           value, error);
}

gboolean
_qube_store_set_global (QubeStore *store, const char *name, const char *value,
                        GError **error)
{
  return store_exec_stmt (store, STMT_GLOBAL_SET,
                          store_stmt_bind_text (store, STMT_GLOBAL_SET, name, value, NULL, error),
                          error);
}

gboolean
_qube_store_unset_global (QubeStore *store, const char *name, GError **error)
{
  return store_exec_stmt (store, STMT_GLOBAL_UNSET,
                          store_stmt_bind_text (store, STMT_GLOBAL_UNSET, name, NULL, NULL, error),
                          error);
}

gboolean
_qube_store_get_feature (QubeStore *store, gint64 qube_id, const char *key,
                         char **value, GError **error)
{
  return store_query_text (store, STMT_FEATURE_GET,
                           store_stmt_bind (store, STMT_FEATURE_GET, qube_id, key, NULL, error),
                           value, error);
}

gboolean
_qube_store_set_feature (QubeStore *store, gint64 qube_id, const char *key,
                         const char *value, GError **error)
{
  return store_exec_stmt (store, STMT_FEATURE_SET,
                          store_stmt_bind (store, STMT_FEATURE_SET, qube_id, key, value, error),
                          error);
}

/* Runs a DELETE and says whether it removed a row. */
static gboolean
store_delete (QubeStore *store, StoreStmt which, sqlite3_stmt *stmt,
              gboolean *removed, GError **error)
{
  if (!store_exec_stmt (store, which, stmt, error))
    return FALSE;
  if (removed != NULL)
    *removed = sqlite3_changes (store->db) > 0;
  return TRUE;
}

gboolean
_qube_store_remove_feature (QubeStore *store, gint64 qube_id, const char *key,
                            gboolean *removed, GError **error)
{
  return store_delete (store, STMT_FEATURE_REMOVE,
                       store_stmt_bind (store, STMT_FEATURE_REMOVE, qube_id, key, NULL, error),
                       removed, error);
}

char **
_qube_store_list_features (QubeStore *store, gint64 qube_id, GError **error)
{
  return strv_from_rows (store_query_column (store, STMT_FEATURE_LIST,
                                             store_stmt_bind (store, STMT_FEATURE_LIST, qube_id,
                                                              NULL, NULL, error),
                                             error));
}

gboolean
_qube_store_has_tag (QubeStore *store, gint64 qube_id, const char *tag,
                     gboolean *has, GError **error)
{
  g_autofree char *value = NULL;

  if (!store_query_text (store, STMT_TAG_HAS,
                         store_stmt_bind (store, STMT_TAG_HAS, qube_id, tag, NULL, error),
                         &value, error))
    return FALSE;
  *has = value != NULL;
  return TRUE;
}

gboolean
_qube_store_add_tag (QubeStore *store, gint64 qube_id, const char *tag,
                     GError **error)
{
  return store_exec_stmt (store, STMT_TAG_ADD,
                          store_stmt_bind (store, STMT_TAG_ADD, qube_id, tag, NULL, error),
                          error);
}

gboolean
_qube_store_remove_tag (QubeStore *store, gint64 qube_id, const char *tag,
                        gboolean *removed, GError **error)
{
  return store_delete (store, STMT_TAG_REMOVE,
                       store_stmt_bind (store, STMT_TAG_REMOVE, qube_id, tag, NULL, error),
                       removed, error);
}

char **
_qube_store_list_tags (QubeStore *store, gint64 qube_id, GError **error)
{
  return strv_from_rows (store_query_column (store, STMT_TAG_LIST,
                                             store_stmt_bind (store, STMT_TAG_LIST, qube_id,
                                                              NULL, NULL, error),
                                             error));
}

gboolean
_qube_store_check_integrity (QubeStore *store, GError **error)
{
  sqlite3_stmt *stmt = NULL;
  g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
  int rc;

  if (sqlite3_prepare_v2 (store->db, "PRAGMA integrity_check", -1, &stmt, NULL) != SQLITE_OK)
    return store_fail (store, "check integrity", error);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *line = (const char *) sqlite3_column_text (stmt, 0);
      if (line != NULL && g_strcmp0 (line, "ok") != 0)
        g_ptr_array_add (problems, g_strdup (line));
    }
  if (rc != SQLITE_DONE)
    {
      store_fail (store, "check integrity", error);
      sqlite3_finalize (stmt);
      return FALSE;
    }
  sqlite3_finalize (stmt);
  if (problems->len > 0)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                   "state store %s is damaged: %s", store->path,
                   (const char *) problems->pdata[0]);
      return FALSE;
    }
  return TRUE;
}

gboolean
_qube_store_check_query_plans (QubeStore *store, GError **error)
{
  for (int i = 0; i < N_STMTS; i++)
    {
      g_autofree char *sql = g_strconcat ("EXPLAIN QUERY PLAN ", stmt_defs[i].sql, NULL);
      sqlite3_stmt *stmt = NULL;
      int rc;

      if (stmt_defs[i].lists)
        continue;
      if (sqlite3_prepare_v2 (store->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return store_fail (store, stmt_defs[i].what, error);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          /* columns: id, parent, notused, detail */
          const char *detail = (const char *) sqlite3_column_text (stmt, 3);
          if (detail != NULL && g_str_has_prefix (detail, "SCAN "))
            {
              g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                           "state store %s: the query to %s reads a whole table: %s",
                           store->path, stmt_defs[i].what, detail);
              sqlite3_finalize (stmt);
              return FALSE;
            }
        }
      sqlite3_finalize (stmt);
      if (rc != SQLITE_DONE)
        return store_fail (store, stmt_defs[i].what, error);
    }
  return TRUE;
}

/* ---- storage pools and volumes ---- */

void
_qube_store_pool_clear (QubeStorePool *pool)
{
  g_clear_pointer (&pool->name, g_free);
  g_clear_pointer (&pool->driver, g_free);
  g_clear_pointer (&pool->keys, g_strfreev);
  g_clear_pointer (&pool->values, g_strfreev);
}

void
_qube_store_pool_free (QubeStorePool *pool)
{
  if (pool == NULL)
    return;
  _qube_store_pool_clear (pool);
  g_free (pool);
}

gboolean
_qube_store_get_pool (QubeStore *store, const char *name, QubeStorePool *out,
                      GError **error)
{
  g_autofree char *driver = NULL;
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  sqlite3_stmt *stmt;
  int rc;

  if (!store_query_text (store, STMT_POOL_GET,
                         store_stmt_bind_text (store, STMT_POOL_GET, name, NULL, NULL, error),
                         &driver, error))
    return FALSE;
  if (driver == NULL)
    {
      g_autofree char *shown = _qube_printable (name);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND, "no such pool '%s'", shown);
      return FALSE;
    }
  stmt = store_stmt_bind_text (store, STMT_POOL_OPTIONS, name, NULL, NULL, error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      g_ptr_array_add (keys, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
      g_ptr_array_add (values, g_strdup ((const char *) sqlite3_column_text (stmt, 1)));
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return store_fail (store, stmt_defs[STMT_POOL_OPTIONS].what, error);
  _qube_store_pool_clear (out);
  out->name = g_strdup (name);
  out->driver = g_steal_pointer (&driver);
  out->keys = strv_from_rows (g_steal_pointer (&keys));
  out->values = strv_from_rows (g_steal_pointer (&values));
  return TRUE;
}

char **
_qube_store_list_pools (QubeStore *store, GError **error)
{
  return strv_from_rows (store_query_column (store, STMT_POOL_LIST,
                                             store_stmt (store, STMT_POOL_LIST, error),
                                             error));
}

gboolean
_qube_store_add_pool (QubeStore *store, const QubeStorePool *pool, GError **error)
{
  if (!store_exec_stmt (store, STMT_POOL_ADD,
                        store_stmt_bind_text (store, STMT_POOL_ADD, pool->name, pool->driver,
                                              NULL, error),
                        error))
    return FALSE;
  for (guint i = 0; pool->keys != NULL && pool->keys[i] != NULL; i++)
    if (!store_exec_stmt (store, STMT_POOL_OPTION_ADD,
                          store_stmt_bind_text (store, STMT_POOL_OPTION_ADD, pool->name,
                                                pool->keys[i], pool->values[i], error),
                          error))
      return FALSE;
  return TRUE;
}

gboolean
_qube_store_remove_pool (QubeStore *store, const char *name, GError **error)
{
  return store_exec_stmt (store, STMT_POOL_REMOVE,
                          store_stmt_bind_text (store, STMT_POOL_REMOVE, name, NULL, NULL,
                                                error),
                          error);
}

char **
_qube_store_list_pool_volumes (QubeStore *store, const char *pool, GError **error)
{
  return strv_from_rows (store_query_column (store, STMT_POOL_VOLUMES,
                                             store_stmt_bind_text (store, STMT_POOL_VOLUMES,
                                                                   pool, NULL, NULL, error),
                                             error));
}

void
_qube_store_volume_clear (QubeStoreVolume *volume)
{
  g_clear_pointer (&volume->name, g_free);
  g_clear_pointer (&volume->pool, g_free);
  g_clear_pointer (&volume->source, g_free);
  volume->qube_id = 0;
  volume->flags = 0;
  volume->size = 0;
  volume->revisions_to_keep = 0;
}

void
_qube_store_volume_free (QubeStoreVolume *volume)
{
  if (volume == NULL)
    return;
  _qube_store_volume_clear (volume);
  g_free (volume);
}

static gboolean
store_write_volume (QubeStore *store, StoreStmt which, const QubeStoreVolume *volume,
                    GError **error)
{
  sqlite3_stmt *stmt = store_stmt_bind (store, which, volume->qube_id, volume->name,
                                        volume->pool, error);

  if (stmt == NULL)
    return FALSE;
  if (sqlite3_bind_int64 (stmt, 4, volume->flags) != SQLITE_OK
      || sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) volume->size) != SQLITE_OK
      || (volume->source != NULL
          && sqlite3_bind_text (stmt, 6, volume->source, -1, SQLITE_STATIC) != SQLITE_OK)
      || sqlite3_bind_int64 (stmt, 7, volume->revisions_to_keep) != SQLITE_OK)
    return store_fail (store, stmt_defs[which].what, error);
  return store_exec_stmt (store, which, stmt, error);
}

gboolean
_qube_store_add_volume (QubeStore *store, const QubeStoreVolume *volume, GError **error)
{
  return store_write_volume (store, STMT_VOLUME_ADD, volume, error);
}

gboolean
_qube_store_update_volume (QubeStore *store, const QubeStoreVolume *volume,
                           GError **error)
{
  return store_write_volume (store, STMT_VOLUME_UPDATE, volume, error);
}

GPtrArray *
_qube_store_list_volumes (QubeStore *store, gint64 qube_id, GError **error)
{
  g_autoptr(GPtrArray) volumes =
    g_ptr_array_new_with_free_func ((GDestroyNotify) _qube_store_volume_free);
  sqlite3_stmt *stmt = store_stmt_bind (store, STMT_VOLUME_LIST, qube_id, NULL, NULL, error);
  int rc;

  if (stmt == NULL)
    return NULL;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      QubeStoreVolume *volume = g_new0 (QubeStoreVolume, 1);
      const unsigned char *source = sqlite3_column_text (stmt, 5);

      volume->qube_id = sqlite3_column_int64 (stmt, 0);
      volume->name = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
      volume->pool = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
      volume->flags = (guint32) sqlite3_column_int64 (stmt, 3);
      volume->size = (guint64) sqlite3_column_int64 (stmt, 4);
      volume->source = source != NULL ? g_strdup ((const char *) source) : NULL;
      volume->revisions_to_keep = (guint32) sqlite3_column_int64 (stmt, 6);
      g_ptr_array_add (volumes, volume);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    {
      store_fail (store, stmt_defs[STMT_VOLUME_LIST].what, error);
      return NULL;
    }
  return g_steal_pointer (&volumes);
}
