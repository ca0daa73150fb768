/* xen-store.c — writes the per-qube xenstore keys a guest reads.  Only dom0
 * writes here; the guest gets read permission on the qube/ subtree and
 * nothing else, so it can never change what dom0 says about it. */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <xenstore.h>

#include "xen-store.h"

#define XEN_STORE_KEY_PREFIX "xenstore."

/* Keys a guest may be given through extra settings: short, and made of
 * characters xenstore accepts in a path element. */
static gboolean
valid_key (const char *key)
{
  size_t len = strlen (key);

  if (len == 0 || len > 64)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum (key[i]) && strchr ("-_", key[i]) == NULL)
      return FALSE;
  return TRUE;
}

static gboolean
write_key (struct xs_handle *xs, xs_transaction_t t, uint32_t domid,
           const char *base, const char *key, const char *value, GError **error)
{
  g_autofree char *path = g_strdup_printf ("%s/%s", base, key);
  /* Owner dom0 with no access for others, then read access for the guest. */
  struct xs_permissions perms[2] = {
    { .id = 0, .perms = XS_PERM_NONE },
    { .id = domid, .perms = XS_PERM_READ },
  };

  if (!xs_write (xs, t, path, value, strlen (value)) ||
      !xs_set_permissions (xs, t, path, perms, 2))
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot write xenstore key %s: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

gboolean
xen_store_check_qube_keys (const QubeDomainConfig *config, GError **error)
{
  for (uint32_t i = 0; i < config->n_extra; i++)
    {
      const char *key = config->extra[i].key;

      if (key != NULL && g_str_has_prefix (key, XEN_STORE_KEY_PREFIX) &&
          !valid_key (key + strlen (XEN_STORE_KEY_PREFIX)))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "setting '%s' of qube '%s' is not a valid xenstore key "
                       "(1 to 64 of a-z, A-Z, 0-9, '-', '_')",
                       key, config->ref.name);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
xen_store_write_qube_keys (uint32_t domid, const QubeDomainConfig *config,
                           GError **error)
{
  g_autofree char *base = g_strdup_printf ("/local/domain/%u/qube", domid);
  struct xs_handle *xs;
  gboolean ok = FALSE;

  xs = xs_open (0);
  if (xs == NULL)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot connect to xenstore: %s", g_strerror (saved_errno));
      return FALSE;
    }

  /* A transaction that ends in EAGAIN raced another writer: run it again. */
  for (int attempt = 0; attempt < 10 && !ok; attempt++)
    {
      xs_transaction_t t = xs_transaction_start (xs);
      gboolean written;

      if (t == XBT_NULL)
        {
          int saved_errno = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "cannot start a xenstore transaction: %s",
                       g_strerror (saved_errno));
          break;
        }
      written = write_key (xs, t, domid, base, "name", config->ref.name, error) &&
                write_key (xs, t, domid, base, "uuid",
                           config->ref.uuid != NULL ? config->ref.uuid : "", error) &&
                write_key (xs, t, domid, base, "type",
                           config->klass != NULL ? config->klass : "", error);
      for (uint32_t i = 0; written && i < config->n_extra; i++)
        {
          const char *key = config->extra[i].key;
          const char *value = config->extra[i].value;

          if (key != NULL && value != NULL &&
              g_str_has_prefix (key, XEN_STORE_KEY_PREFIX))
            written = write_key (xs, t, domid, base,
                                 key + strlen (XEN_STORE_KEY_PREFIX), value, error);
        }
      if (!written)
        {
          xs_transaction_end (xs, t, true);
          break;
        }
      if (xs_transaction_end (xs, t, false))
        ok = TRUE;
      else if (errno != EAGAIN)
        {
          int saved_errno = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "cannot commit the xenstore keys of domain %u: %s",
                       domid, g_strerror (saved_errno));
          break;
        }
    }
  if (!ok && error != NULL && *error == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                 "cannot commit the xenstore keys of domain %u: "
                 "xenstore kept reporting conflicts", domid);
  xs_close (xs);
  return ok;
}
