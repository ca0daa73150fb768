/* output.h — how `qube` prints what it lists: aligned text tables for
 * people, JSON (through json-glib) for scripts.  Every listing command
 * prints through these so that all of them look and parse alike. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _CliTable CliTable;

/* A table of `n_columns` columns; `headers` (n_columns strings, or NULL for
 * a table printed without a header line). */
CliTable *cli_table_new (guint n_columns, const char *const *headers);
void cli_table_free (CliTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliTable, cli_table_free)

/* What a NULL or empty cell prints as: "-" unless set otherwise. */
void cli_table_set_placeholder (CliTable *table, const char *placeholder);
/* Appends a cell to the current row, starting a new row when the last one
 * is full. */
void cli_table_add (CliTable *table, const char *value);
/* Prints the table: columns separated by two spaces and padded to the
 * widest cell, the last column not padded. */
void cli_table_print (CliTable *table);

/* Prints `node` as indented JSON followed by a newline. */
void cli_json_print (JsonNode *node);
/* Prints what `builder` built (see cli_json_print). */
void cli_json_print_builder (JsonBuilder *builder);

/* Adds `value` as a JSON string, or null when it is NULL. */
void cli_json_add_nullable_string (JsonBuilder *builder, const char *value);
/* Adds the member `member` of the object being built (value as above). */
void cli_json_add_string_member (JsonBuilder *builder, const char *member,
                                 const char *value);
void cli_json_add_int_member (JsonBuilder *builder, const char *member,
                              gint64 value);

/* Prints a listing: what `builder` built when `json`, else `table`. */
void cli_print_listing (gboolean json, JsonBuilder *builder, CliTable *table);

/* "2.0 GiB", with a plain space. */
char *cli_format_size (guint64 bytes);
/* "2.0 GiB (2147483648 bytes)": a size for a person, exact for a script. */
char *cli_format_bytes (guint64 bytes);

/* Sorts a NULL-terminated string array in place, byte order. */
void cli_strv_sort (char **strv);

G_END_DECLS
