/* output.c — aligned tables and JSON output shared by every `qube`
 * command (see output.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

struct _CliTable {
  guint n_columns;
  GPtrArray *cells;   /* row-major, owned strings */
  const char *placeholder;
};

CliTable *
cli_table_new (guint n_columns, const char *const *headers)
{
  CliTable *table = g_new0 (CliTable, 1);

  g_return_val_if_fail (n_columns > 0, NULL);
  table->n_columns = n_columns;
  table->cells = g_ptr_array_new_with_free_func (g_free);
  table->placeholder = "-";
  if (headers != NULL)
    for (guint i = 0; i < n_columns; i++)
      g_ptr_array_add (table->cells, g_strdup (headers[i]));
  return table;
}

void
cli_table_free (CliTable *table)
{
  if (table == NULL)
    return;
  g_ptr_array_unref (table->cells);
  g_free (table);
}

void
cli_table_set_placeholder (CliTable *table, const char *placeholder)
{
  table->placeholder = placeholder;
}

void
cli_table_add (CliTable *table, const char *value)
{
  g_ptr_array_add (table->cells,
                   g_strdup (value != NULL && *value != '\0' ? value : table->placeholder));
}

void
cli_table_print (CliTable *table)
{
  g_autofree gsize *widths = g_new0 (gsize, table->n_columns);
  g_autoptr(GString) line = g_string_new (NULL);
  guint n_cells = table->cells->len;

  /* Cells may hold UTF-8 (labels, reasons): width counts characters. */
  for (guint i = 0; i < n_cells; i++)
    {
      gsize w = g_utf8_strlen (g_ptr_array_index (table->cells, i), -1);
      widths[i % table->n_columns] = MAX (widths[i % table->n_columns], w);
    }

  for (guint i = 0; i < n_cells; i++)
    {
      const char *cell = g_ptr_array_index (table->cells, i);
      guint column = i % table->n_columns;

      g_string_append (line, cell);
      if (column < table->n_columns - 1 && i < n_cells - 1)
        {
          for (gsize pad = g_utf8_strlen (cell, -1); pad < widths[column] + 2; pad++)
            g_string_append_c (line, ' ');
          continue;
        }
      /* An empty last cell would leave trailing blanks. */
      g_strchomp (line->str);
      fputs (line->str, stdout);
      fputc ('\n', stdout);
      g_string_truncate (line, 0);
    }
}

void
cli_json_print (JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, TRUE);
  json_generator_set_indent (generator, 2);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  fputs (text, stdout);
  fputc ('\n', stdout);
}

void
cli_json_print_builder (JsonBuilder *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);

  cli_json_print (root);
}

void
cli_json_add_nullable_string (JsonBuilder *builder, const char *value)
{
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

void
cli_json_add_string_member (JsonBuilder *builder, const char *member,
                            const char *value)
{
  json_builder_set_member_name (builder, member);
  cli_json_add_nullable_string (builder, value);
}

void
cli_json_add_int_member (JsonBuilder *builder, const char *member, gint64 value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_int_value (builder, value);
}

void
cli_print_listing (gboolean json, JsonBuilder *builder, CliTable *table)
{
  if (json)
    cli_json_print_builder (builder);
  else
    cli_table_print (table);
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

void
cli_strv_sort (char **strv)
{
  if (strv != NULL)
    qsort (strv, g_strv_length (strv), sizeof (char *), compare_strings);
}

char *
cli_format_size (guint64 bytes)
{
  g_autofree char *text = g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_auto(GStrv) parts = g_strsplit (text, "\u00a0", -1);

  /* GLib puts a no-break space before the unit: scripts split on spaces. */
  return g_strjoinv (" ", parts);
}

char *
cli_format_bytes (guint64 bytes)
{
  g_autofree char *human = cli_format_size (bytes);

  return g_strdup_printf ("%s (%" G_GUINT64_FORMAT " bytes)", human, bytes);
}
