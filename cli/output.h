/* output.h — how `qube` prints what it lists: aligned text tables for
 * people, JSON (through json-glib) for scripts.  Every listing command
 * prints through these so that all of them look and parse alike. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _QubeTable QubeTable;

/* A table of `n_columns` columns; `headers` (n_columns strings, or NULL for
 * a table printed without a header line). */
QubeTable *qube_table_new (guint n_columns, const char *const *headers);
void qube_table_free (QubeTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubeTable, qube_table_free)

/* Appends a cell to the current row, starting a new row when the last one
 * is full. A NULL or empty value prints as "-". */
void qube_table_add (QubeTable *table, const char *value);
/* Prints the table: columns separated by two spaces and padded to the
 * widest cell, the last column not padded. */
void qube_table_print (QubeTable *table);

/* Prints `node` as indented JSON followed by a newline. */
void qube_json_print (JsonNode *node);
/* Prints what `builder` built (see qube_json_print). */
void qube_json_print_builder (JsonBuilder *builder);

/* Adds `value` as a JSON string, or null when it is NULL. */
void qube_json_add_nullable_string (JsonBuilder *builder, const char *value);

/* Sorts a NULL-terminated string array in place, byte order. */
void qube_strv_sort (char **strv);

G_END_DECLS
