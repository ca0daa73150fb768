/* kvm-qmp.c — a small synchronous QMP client (see kvm-qmp.h). */
#include "config.h"

#include "kvm-qmp.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

/* QEMU's replies to the commands we send are a few hundred bytes; anything
 * near this limit means the peer misbehaves. */
#define KVM_QMP_MAX_LINE (1024 * 1024)
#define KVM_QMP_MAX_EVENTS 1024

struct _KvmQmp
{
  char *path;
  GSocketConnection *connection;
  GSocket *socket;
  GByteArray *pending;  /* received bytes not yet split into lines */
  GPtrArray *events;    /* (element-type utf8) */
};

void
kvm_qmp_free (KvmQmp *self)
{
  if (self == NULL)
    return;
  if (self->connection != NULL)
    g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  g_clear_object (&self->connection);
  g_byte_array_unref (self->pending);
  g_ptr_array_unref (self->events);
  g_free (self->path);
  g_free (self);
}

/* The next line from the monitor, parsed as a JSON object (transfer full). */
static JsonObject *
read_message (KvmQmp *self, GError **error)
{
  for (;;)
    {
      guint8 *nl = memchr (self->pending->data, '\n', self->pending->len);

      if (nl != NULL)
        {
          gsize len = (gsize) (nl - self->pending->data);
          g_autoptr(JsonParser) parser = json_parser_new ();
          g_autoptr(GError) local_error = NULL;
          g_autofree char *line = g_strndup ((const char *) self->pending->data, len);
          JsonNode *root;

          g_byte_array_remove_range (self->pending, 0, len + 1);
          if (!json_parser_load_from_data (parser, line, len, &local_error))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "QEMU monitor %s sent malformed JSON: %s",
                           self->path, local_error->message);
              return NULL;
            }
          root = json_parser_get_root (parser);
          if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "QEMU monitor %s sent something other than a JSON object",
                           self->path);
              return NULL;
            }
          return json_object_ref (json_node_get_object (root));
        }

      if (self->pending->len >= KVM_QMP_MAX_LINE)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "QEMU monitor %s sent a line longer than %d bytes",
                       self->path, KVM_QMP_MAX_LINE);
          return NULL;
        }

      guint8 buf[4096];
      gssize n = g_socket_receive (self->socket, (char *) buf, sizeof buf,
                                   NULL, error);
      if (n < 0)
        {
          g_prefix_error (error, "cannot read from QEMU monitor %s: ", self->path);
          return NULL;
        }
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "QEMU monitor %s closed the connection", self->path);
          return NULL;
        }
      g_byte_array_append (self->pending, buf, (guint) n);
    }
}

static void
record_event (KvmQmp *self, JsonObject *message)
{
  const char *name = json_object_get_string_member_with_default (message, "event", NULL);

  /* A flood of events must not grow memory without bound. */
  if (name != NULL && strlen (name) < 128 && self->events->len < KVM_QMP_MAX_EVENTS)
    {
      g_debug ("QMP event %s from %s", name, self->path);
      g_ptr_array_add (self->events, g_strdup (name));
    }
}

static gboolean
send_command (KvmQmp *self, const char *command, JsonObject *arguments,
              GError **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  g_autofree char *line = NULL;
  gsize len;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "execute");
  json_builder_add_string_value (builder, command);
  if (arguments != NULL)
    {
      json_builder_set_member_name (builder, "arguments");
      JsonNode *args = json_node_new (JSON_NODE_OBJECT);
      json_node_set_object (args, arguments);
      json_builder_add_value (builder, args);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &len);
  line = g_strconcat (text, "\n", NULL);

  if (!g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (self->connection)),
                                  line, len + 1, NULL, NULL, error))
    {
      g_prefix_error (error, "cannot send '%s' to QEMU monitor %s: ", command, self->path);
      return FALSE;
    }
  return TRUE;
}

JsonNode *
kvm_qmp_execute (KvmQmp *self, const char *command, JsonObject *arguments,
                 GError **error)
{
  if (!send_command (self, command, arguments, error))
    return NULL;

  for (;;)
    {
      g_autoptr(JsonObject) message = read_message (self, error);

      if (message == NULL)
        {
          g_prefix_error (error, "no reply to '%s': ", command);
          return NULL;
        }
      if (json_object_has_member (message, "event"))
        {
          record_event (self, message);
          continue;
        }
      if (json_object_has_member (message, "return"))
        return json_node_copy (json_object_get_member (message, "return"));
      if (json_object_has_member (message, "error"))
        {
          JsonNode *err = json_object_get_member (message, "error");
          const char *desc = NULL;

          if (JSON_NODE_HOLDS_OBJECT (err))
            desc = json_object_get_string_member_with_default (json_node_get_object (err),
                                                               "desc", NULL);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "QEMU refused '%s': %s", command,
                       desc != NULL ? desc : "no description");
          return NULL;
        }
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "QEMU monitor %s sent a message that is neither a reply nor an event",
                   self->path);
      return NULL;
    }
}

KvmQmp *
kvm_qmp_connect (const char *path, guint timeout_ms, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(KvmQmp) self = g_new0 (KvmQmp, 1);
  g_autoptr(JsonObject) greeting = NULL;
  g_autoptr(JsonNode) reply = NULL;

  self->path = g_strdup (path);
  self->pending = g_byte_array_new ();
  self->events = g_ptr_array_new_with_free_func (g_free);

  g_socket_client_set_timeout (client, (timeout_ms + 999) / 1000);
  self->connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address),
                                              NULL, error);
  if (self->connection == NULL)
    return NULL;
  self->socket = g_socket_connection_get_socket (self->connection);
  g_socket_set_timeout (self->socket, (timeout_ms + 999) / 1000);

  greeting = read_message (self, error);
  if (greeting == NULL)
    return NULL;
  if (!json_object_has_member (greeting, "QMP"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s does not greet like a QEMU monitor", path);
      return NULL;
    }
  reply = kvm_qmp_execute (self, "qmp_capabilities", NULL, error);
  if (reply == NULL)
    return NULL;
  return g_steal_pointer (&self);
}

/* How long later commands wait for an answer (connect's timeout covered
 * the greeting). */
void
kvm_qmp_set_timeout (KvmQmp *self, guint timeout_ms)
{
  g_socket_set_timeout (self->socket, (timeout_ms + 999) / 1000);
}

static gboolean
seen_event (KvmQmp *self, const char *name)
{
  for (guint i = 0; i < self->events->len; i++)
    if (g_str_equal (g_ptr_array_index (self->events, i), name))
      return TRUE;
  return FALSE;
}

gboolean
kvm_qmp_wait_event (KvmQmp *self, const char *name, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (!seen_event (self, name))
    {
      gint64 left = deadline - g_get_monotonic_time ();
      g_autoptr(JsonObject) message = NULL;

      /* Lines already received come first: the socket may have nothing
       * more to say. */
      if (left <= 0)
        return FALSE;
      if (memchr (self->pending->data, '\n', self->pending->len) == NULL &&
          !g_socket_condition_timed_wait (self->socket, G_IO_IN, left, NULL, NULL))
        return FALSE;
      /* A partial line is finished by read_message, bounded by the socket
       * timeout. */
      message = read_message (self, NULL);
      if (message == NULL)
        return FALSE;
      record_event (self, message);
    }
  return TRUE;
}

const GPtrArray *
kvm_qmp_get_events (KvmQmp *self)
{
  return self->events;
}
