/* qube-store.h — the state store: qubes, properties, features, tags and
 * global properties in one SQLite file (<state_dir>/qubes.db).
 *
 * Internal to libqube.  The store knows tables and rows, not rules: the
 * property table (qube-property.c) and the manager decide what may be
 * written.  Several processes (the CLI, the daemon) may open the same file;
 * every change is one BEGIN IMMEDIATE … COMMIT transaction made by the
 * caller with _qube_store_begin() / _qube_store_commit().
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The schema this code writes; older files are migrated on open, newer
 * ones are refused. */
#define QUBE_STORE_SCHEMA_VERSION 3

/* The name and UUID of the admin qube, present in every store. */
#define QUBE_STORE_ADMIN_NAME "dom0"
#define QUBE_STORE_ADMIN_UUID "00000000-0000-0000-0000-000000000000"

typedef struct _QubeStore QubeStore;

/* One row of the qubes table. */
typedef struct {
  gint64 id;
  char *name;
  char *uuid;
  char *klass;
} QubeStoreQube;

void _qube_store_qube_clear (QubeStoreQube *qube);
void _qube_store_qube_free (QubeStoreQube *qube);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QubeStoreQube, _qube_store_qube_clear)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeStoreQube, _qube_store_qube_free)

QubeStore *_qube_store_open (const char *path, GError **error);
void _qube_store_close (QubeStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeStore, _qube_store_close)
const char *_qube_store_get_path (QubeStore *store);

/* Transactions: begin takes the write lock at once (BEGIN IMMEDIATE), so
 * checks made inside see what the commit will change. */
gboolean _qube_store_begin (QubeStore *store, GError **error);
gboolean _qube_store_commit (QubeStore *store, GError **error);
void _qube_store_rollback (QubeStore *store);

/* Runs `func` in one transaction: committed when it returns TRUE, rolled
 * back when it returns FALSE (with *error set). */
typedef gboolean (*QubeStoreTxnFunc) (QubeStore *store, gpointer data,
                                      GError **error);
gboolean _qube_store_transact (QubeStore *store, QubeStoreTxnFunc func,
                               gpointer data, GError **error);

/* What must follow the transaction in progress, outside the store (files
 * in pools): `func` runs once it is committed (`on_commit`) or once it is
 * rolled back (a failed commit included), then `destroy` frees `data`. */
typedef void (*QubeStoreOutcomeFunc) (gpointer data);
void _qube_store_on_outcome (QubeStore *store, gboolean on_commit, QubeStoreOutcomeFunc func,
                             gpointer data, GDestroyNotify destroy);

/* For tests: while `fail`, every commit fails and rolls back, as when the
 * disk is full or the file cannot be written. */
void _qube_store_fail_commits (QubeStore *store, gboolean fail);

/* Qubes.  Lookups fail with QUBE_ERROR_NOT_FOUND when there is no such row. */
gboolean _qube_store_get_qube (QubeStore *store, const char *name,
                               QubeStoreQube *out, GError **error);
gboolean _qube_store_get_qube_by_id (QubeStore *store, gint64 id,
                                     QubeStoreQube *out, GError **error);
/* (element-type QubeStoreQube) sorted by name */
GPtrArray *_qube_store_list_qubes (QubeStore *store, GError **error);
gboolean _qube_store_add_qube (QubeStore *store, const char *name,
                               const char *uuid, const char *klass,
                               gint64 *id_out, GError **error);
gboolean _qube_store_remove_qube (QubeStore *store, gint64 id, GError **error);
/* Copies properties, features and tags of one qube onto another. */
gboolean _qube_store_copy_qube_data (QubeStore *store, gint64 from_id,
                                     gint64 to_id, GError **error);

/* Properties of a qube; *value is NULL when the property is not set. */
gboolean _qube_store_get_property (QubeStore *store, gint64 qube_id,
                                   const char *name, char **value,
                                   GError **error);
gboolean _qube_store_set_property (QubeStore *store, gint64 qube_id,
                                   const char *name, const char *value,
                                   GError **error);
gboolean _qube_store_unset_property (QubeStore *store, gint64 qube_id,
                                     const char *name, GError **error);
/* Names (sorted) of the qubes whose property `name` is set to `value`. */
GPtrArray *_qube_store_find_property_users (QubeStore *store,
                                            const char *name,
                                            const char *value,
                                            GError **error);

/* Global properties; *value is NULL when not set. */
gboolean _qube_store_get_global (QubeStore *store, const char *name,
                                 char **value, GError **error);
gboolean _qube_store_set_global (QubeStore *store, const char *name,
                                 const char *value, GError **error);
gboolean _qube_store_unset_global (QubeStore *store, const char *name,
                                   GError **error);

/* Features; *value is NULL when not set.  Remove sets *removed to whether
 * there was such a feature. */
gboolean _qube_store_get_feature (QubeStore *store, gint64 qube_id,
                                  const char *key, char **value,
                                  GError **error);
gboolean _qube_store_set_feature (QubeStore *store, gint64 qube_id,
                                  const char *key, const char *value,
                                  GError **error);
gboolean _qube_store_remove_feature (QubeStore *store, gint64 qube_id,
                                     const char *key, gboolean *removed,
                                     GError **error);
char **_qube_store_list_features (QubeStore *store, gint64 qube_id,
                                  GError **error);

/* Tags. */
gboolean _qube_store_has_tag (QubeStore *store, gint64 qube_id,
                              const char *tag, gboolean *has,
                              GError **error);
gboolean _qube_store_add_tag (QubeStore *store, gint64 qube_id,
                              const char *tag, GError **error);
gboolean _qube_store_remove_tag (QubeStore *store, gint64 qube_id,
                                 const char *tag, gboolean *removed,
                                 GError **error);
char **_qube_store_list_tags (QubeStore *store, gint64 qube_id,
                              GError **error);

/* Storage pools: a driver name and key=value options. */
typedef struct {
  char *name;
  char *driver;
  char **keys;     /* sorted; values[i] belongs to keys[i] */
  char **values;
} QubeStorePool;

void _qube_store_pool_clear (QubeStorePool *pool);
void _qube_store_pool_free (QubeStorePool *pool);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QubeStorePool, _qube_store_pool_clear)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeStorePool, _qube_store_pool_free)

/* QUBE_ERROR_NOT_FOUND when there is no such pool. */
gboolean _qube_store_get_pool (QubeStore *store, const char *name,
                               QubeStorePool *out, GError **error);
/* Names, sorted. */
char **_qube_store_list_pools (QubeStore *store, GError **error);
gboolean _qube_store_add_pool (QubeStore *store, const QubeStorePool *pool,
                               GError **error);
gboolean _qube_store_remove_pool (QubeStore *store, const char *name,
                                  GError **error);
/* "qube:volume" of every volume in the pool, sorted. */
char **_qube_store_list_pool_volumes (QubeStore *store, const char *pool,
                                      GError **error);

/* One row of the volumes table. */
typedef struct {
  gint64 qube_id;
  char *name;
  char *pool;
  guint32 flags;            /* QUBE_VOLUME_* of abi/qube-storage.h */
  guint64 size;
  char *source;             /* vid "<qube>/<volume>", or NULL */
  guint32 revisions_to_keep;
} QubeStoreVolume;

void _qube_store_volume_clear (QubeStoreVolume *volume);
void _qube_store_volume_free (QubeStoreVolume *volume);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QubeStoreVolume, _qube_store_volume_clear)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeStoreVolume, _qube_store_volume_free)

gboolean _qube_store_add_volume (QubeStore *store, const QubeStoreVolume *volume,
                                 GError **error);
/* Rewrites pool, flags, size, source and revisions_to_keep. */
gboolean _qube_store_update_volume (QubeStore *store,
                                    const QubeStoreVolume *volume,
                                    GError **error);
/* (element-type QubeStoreVolume) sorted by name */
GPtrArray *_qube_store_list_volumes (QubeStore *store, gint64 qube_id,
                                     GError **error);

/* PRAGMA integrity_check; FALSE with the first problem reported. */
gboolean _qube_store_check_integrity (QubeStore *store, GError **error);
int _qube_store_get_schema_version (QubeStore *store, GError **error);
/* FALSE when a kept statement (other than listing all qubes) would read a
 * whole table instead of searching an index: the cost of an operation on
 * one qube must not grow with the number of qubes. */
gboolean _qube_store_check_query_plans (QubeStore *store, GError **error);

G_END_DECLS
