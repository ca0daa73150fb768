/* kvm-vchan.c — the host end of vchan for kvm qubes.
 *
 * One link per qube and process: a connection to the qube's virtio-serial
 * port socket (<runtime_dir>/vport-org.qubes.vchan.sock, QEMU listening)
 * carrying the channel multiplexer of common/vchan-mux.c.  A pump thread
 * per link does all of the link's I/O: it connects (again and again while
 * the qube is not up), feeds what arrives to the multiplexer and writes
 * what the channels queued, so bytes and credits flow whatever the
 * application threads do.  Application threads work on their channel under
 * the link's lock and wait on its condition.
 *
 * QEMU serves one connection per port at a time, so one process holds a
 * qube's link (flock on <runtime_dir>/vchan.lock); another process asking
 * for a channel to that qube is refused with a message that says so.  A
 * link with no channel left lingers for a moment (a process that closes and
 * reopens channels keeps its session), then lets go.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "common/vchan-mux.h"
#include "kvm-vchan.h"

/* A blocking client_init waits this long for the qube to come up. */
#define CONNECT_TIMEOUT_S 30
/* A link with no channel stays connected this long. */
#define LINGER_MS 2000
/* How often the pump retries connecting to a qube that is not up. */
#define RETRY_MS 50
#define READ_CHUNK (256 * 1024)

typedef struct KvmLink KvmLink;

struct QubeVchan {
  KvmLink *link;
  VmuxChan *vc;             /* NULL while an async client waits for the offer */
  uint32_t port;
  gboolean server;
  int event_fd;
  gboolean event_pending;
  char *what;               /* "vchan port N of qube Q", for messages */
};

struct KvmLink {
  char *key;                /* the runtime directory */
  char *qube;
  char *sock_path;
  GMutex lock;
  GCond cond;
  Vmux mux;
  int fd;                   /* the link socket, -1 while not connected */
  int lock_fd;
  int wake_fd;              /* eventfd: the pump has output to write */
  guint refs;               /* channels open on the link */
  gint64 idle_since;
  gboolean dead;            /* broken by the peer: no reconnecting */
  char *dead_reason;
  GPtrArray *chans;         /* QubeVchan * on this link */
};

static const QubeHost *vchan_host;
static GMutex links_lock;
static GHashTable *links;   /* runtime dir -> KvmLink */

void
kvm_vchan_set_host (const QubeHost *host)
{
  vchan_host = host;
}

static void G_GNUC_PRINTF (2, 3)
set_error (int code, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  if (vchan_host != NULL)
    vchan_host->set_error (vchan_host, (QubeAbiError) code, "%s", message);
}

/* ---- events ---- */

static void
chan_signal (QubeVchan *chan)
{
  const uint64_t one = 1;

  if (chan->event_pending)
    return;
  chan->event_pending = TRUE;
  if (write (chan->event_fd, &one, sizeof one) < 0 && errno != EAGAIN)
    g_warning ("%s: cannot signal an event: %s", chan->what, g_strerror (errno));
}

/* Called by the multiplexer with the link locked. */
static void
link_notify (Vmux *mux, VmuxChan *vc, void *data)
{
  KvmLink *link = data;

  (void) mux;
  if (vc != NULL && vc->user != NULL)
    chan_signal (vc->user);
  else if (vc == NULL)
    for (guint i = 0; i < link->chans->len; i++)
      chan_signal (g_ptr_array_index (link->chans, i));
  g_cond_broadcast (&link->cond);
}

/* The multiplexer's account of the channels' lives (link locked). */
static void
link_trace (Vmux *mux, const char *text, void *data)
{
  KvmLink *link = data;

  (void) mux;
  g_debug ("vchan link of qube '%s': %s", link->qube, text);
}

/* Wakes the pump when the channels queued output. */
static void
link_kick (KvmLink *link)
{
  const uint64_t one = 1;
  const void *buf;
  size_t len;

  vmux_out_peek (&link->mux, &buf, &len);
  if (len > 0 && write (link->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
    g_warning ("vchan link of qube '%s': cannot wake the pump: %s", link->qube,
               g_strerror (errno));
}

/* ---- the pump ---- */

static guint
link_connected (KvmLink *link)
{
  guint n = 0;

  for (VmuxChan *c = link->mux.chans; c != NULL; c = c->next)
    n += c->state == VMUX_CHAN_CONNECTED;
  return n;
}

/* The link cannot keep channels apart any more: it stays dead, for
 * `reason`. */
static void
link_mark_dead (KvmLink *link, const char *reason)
{
  link->dead = TRUE;
  g_free (link->dead_reason);
  link->dead_reason = g_strdup (reason);
  g_warning ("vchan link of qube '%s' cut off: %s", link->qube, reason);
}

static void
link_drop (KvmLink *link, const char *reason, gboolean fatal)
{
  guint connected = link_connected (link);

  if (link->fd >= 0)
    {
      close (link->fd);
      link->fd = -1;
    }
  vmux_link_down (&link->mux);
  if (fatal)
    link_mark_dead (link, reason);
  else if (connected > 0)
    /* The channels' users see "the peer closed the channel": say why. */
    g_message ("vchan link of qube '%s' down with %u channels open: %s", link->qube, connected,
               reason);
  else
    g_debug ("vchan link of qube '%s' down: %s", link->qube, reason);
}

static int
link_try_connect (KvmLink *link)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  if (fd < 0)
    return -1;
  g_strlcpy (sun.sun_path, link->sock_path, sizeof sun.sun_path);
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0 && errno != EINPROGRESS)
    {
      close (fd);
      return -1;
    }
  return fd;
}

static void link_free (KvmLink *link);

/* Whether an idle link should go now; takes it out of the table if so. */
static gboolean
link_retire (KvmLink *link)
{
  gboolean retire = FALSE;

  g_mutex_unlock (&link->lock);
  g_mutex_lock (&links_lock);
  g_mutex_lock (&link->lock);
  if (link->refs == 0 && g_get_monotonic_time () - link->idle_since >= LINGER_MS * 1000)
    {
      g_hash_table_remove (links, link->key);
      retire = TRUE;
    }
  g_mutex_unlock (&links_lock);
  return retire;
}

static gpointer
link_pump (gpointer data)
{
  KvmLink *link = data;
  g_autofree char *buf = g_malloc (READ_CHUNK);

  g_mutex_lock (&link->lock);
  for (;;)
    {
      struct pollfd pfd[2];
      const void *out;
      size_t out_len;
      int timeout = -1;
      int fd;

      if (link->refs == 0)
        {
          gint64 idle_ms = (g_get_monotonic_time () - link->idle_since) / 1000;

          if (idle_ms >= LINGER_MS && link_retire (link))
            break;
          timeout = (int) MAX (LINGER_MS - idle_ms, 1);
        }
      if (link->fd < 0 && !link->dead)
        {
          link->fd = link_try_connect (link);
          if (link->fd >= 0 && vmux_link_up (&link->mux) < 0)
            link_drop (link, link->mux.error, FALSE);
          if (link->fd < 0)
            timeout = timeout < 0 ? RETRY_MS : MIN (timeout, RETRY_MS);
        }
      fd = link->fd;
      vmux_out_peek (&link->mux, &out, &out_len);
      g_mutex_unlock (&link->lock);

      pfd[0] = (struct pollfd) { .fd = link->wake_fd, .events = POLLIN };
      pfd[1] = (struct pollfd) { .fd = fd, .events = POLLIN | (out_len > 0 ? POLLOUT : 0) };
      if (poll (pfd, fd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
        g_warning ("vchan link of qube '%s': poll: %s", link->qube, g_strerror (errno));
      if (pfd[0].revents & POLLIN)
        {
          uint64_t v;

          if (read (link->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            g_warning ("vchan link of qube '%s': %s", link->qube, g_strerror (errno));
        }
      if (fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
        {
          ssize_t n = read (fd, buf, READ_CHUNK);

          g_mutex_lock (&link->lock);
          if (link->fd == fd)
            {
              if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                link_drop (link, n == 0 ? "QEMU closed the port" : g_strerror (errno), FALSE);
              else if (n > 0)
                {
                  unsigned long sessions = link->mux.sessions;

                  if (vmux_feed (&link->mux, buf, (size_t) n) < 0)
                    link_drop (link, link->mux.error, TRUE);
                  else if (sessions > 0 && link->mux.sessions != sessions
                           && link->mux.reset_ended > 0)
                    g_message ("vchan link of qube '%s': the guest started a new session with "
                               "%u channels open: they ended", link->qube,
                               link->mux.reset_ended);
                }
            }
          g_mutex_unlock (&link->lock);
        }
      g_mutex_lock (&link->lock);
      vmux_out_peek (&link->mux, &out, &out_len);
      if (link->fd >= 0 && link->fd == fd && out_len > 0)
        {
          ssize_t n = send (fd, out, out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

          if (n > 0)
            vmux_out_consumed (&link->mux, (size_t) n);
          else if (n < 0 && errno != EAGAIN && errno != EINTR)
            link_drop (link, g_strerror (errno), FALSE);
        }
    }
  /* Out of the table: say goodbye to the guest's channels and let go. */
  {
    const void *out;
    size_t out_len;

    vmux_out_peek (&link->mux, &out, &out_len);
    if (link->fd >= 0 && out_len > 0)
      {
        struct pollfd pfd = { .fd = link->fd, .events = POLLOUT };

        while (out_len > 0 && poll (&pfd, 1, 1000) > 0)
          {
            ssize_t n = send (link->fd, out, out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n <= 0)
              break;
            vmux_out_consumed (&link->mux, (size_t) n);
            vmux_out_peek (&link->mux, &out, &out_len);
          }
      }
  }
  g_mutex_unlock (&link->lock);
  link_free (link);
  return NULL;
}

static void
link_free (KvmLink *link)
{
  if (link->fd >= 0)
    close (link->fd);
  if (link->lock_fd >= 0)
    close (link->lock_fd);
  if (link->wake_fd >= 0)
    close (link->wake_fd);
  vmux_clear (&link->mux);
  g_ptr_array_unref (link->chans);
  g_mutex_clear (&link->lock);
  g_cond_clear (&link->cond);
  g_free (link->key);
  g_free (link->qube);
  g_free (link->sock_path);
  g_free (link->dead_reason);
  g_free (link);
}

/* ---- links ---- */

/* The link to the qube `peer` names, with a reference for a new channel
 * (returned locked), or NULL with the error set. */
static KvmLink *
link_get (const QubeVchanPeer *peer, const char *operation, uint32_t port)
{
  const char *name = peer != NULL && peer->name != NULL ? peer->name : "(unnamed)";
  g_autofree char *lock_path = NULL;
  KvmLink *link;
  gint64 deadline;

  if (peer == NULL || peer->runtime_dir == NULL || !g_path_is_absolute (peer->runtime_dir))
    {
      set_error (QUBE_ABI_E_INVALID, "cannot %s vchan port %u of qube '%s': the kvm transport "
                 "needs the qube's runtime directory", operation, port, name);
      return NULL;
    }
  g_mutex_lock (&links_lock);
  if (links == NULL)
    links = g_hash_table_new (g_str_hash, g_str_equal);
  link = g_hash_table_lookup (links, peer->runtime_dir);
  if (link != NULL)
    {
      g_mutex_lock (&link->lock);
      link->refs++;
      g_mutex_unlock (&links_lock);
      return link;
    }

  link = g_new0 (KvmLink, 1);
  link->key = g_strdup (peer->runtime_dir);
  link->qube = g_strdup (name);
  link->sock_path = g_strdup_printf ("%s/vport-%s.sock", peer->runtime_dir, KVM_VCHAN_PORT_NAME);
  link->fd = link->lock_fd = link->wake_fd = -1;
  link->chans = g_ptr_array_new ();
  g_mutex_init (&link->lock);
  g_cond_init (&link->cond);
  vmux_init (&link->mux, link_notify, link);
  /* Formatted only when shown: the guest decides how many frames come. */
  if (!g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
    vmux_set_trace (&link->mux, link_trace, link);
  lock_path = g_build_filename (peer->runtime_dir, "vchan.lock", NULL);
  if (strlen (link->sock_path) >= sizeof ((struct sockaddr_un *) 0)->sun_path)
    {
      set_error (QUBE_ABI_E_INVALID, "cannot %s vchan port %u of qube '%s': %s is too long "
                 "for a unix socket", operation, port, name, link->sock_path);
      goto fail;
    }
  link->lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (link->lock_fd < 0)
    {
      set_error (errno == ENOENT ? QUBE_ABI_E_NOT_FOUND : QUBE_ABI_E_FAILED,
                 "cannot %s vchan port %u of qube '%s': %s: %s", operation, port, name,
                 lock_path, errno == ENOENT ? "the qube is not running" : g_strerror (errno));
      goto fail;
    }
  /* A link this process just let go may still be saying goodbye. */
  deadline = g_get_monotonic_time () + 2 * G_TIME_SPAN_SECOND;
  while (flock (link->lock_fd, LOCK_EX | LOCK_NB) < 0)
    {
      if (errno != EWOULDBLOCK || g_get_monotonic_time () > deadline)
        {
          set_error (QUBE_ABI_E_BUSY, "cannot %s vchan port %u of qube '%s': another process "
                     "holds the qube's vchan link (%s)", operation, port, name, lock_path);
          goto fail;
        }
      g_usleep (20000);
    }
  link->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (link->wake_fd < 0)
    {
      set_error (QUBE_ABI_E_FAILED, "cannot %s vchan port %u of qube '%s': eventfd: %s",
                 operation, port, name, g_strerror (errno));
      goto fail;
    }
  link->refs = 1;
  g_hash_table_insert (links, link->key, link);
  g_thread_unref (g_thread_new ("kvm-vchan", link_pump, link));
  g_mutex_lock (&link->lock);
  g_mutex_unlock (&links_lock);
  return link;

fail:
  g_mutex_unlock (&links_lock);
  link_free (link);
  return NULL;
}

/* Drops a channel's reference (link locked, unlocks it). */
static void
link_put (KvmLink *link)
{
  if (--link->refs == 0)
    link->idle_since = g_get_monotonic_time ();
  link_kick (link);
  /* The pump may sleep forever with no timeout: wake it to start lingering. */
  {
    const uint64_t one = 1;

    if (write (link->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
      g_warning ("vchan link of qube '%s': %s", link->qube, g_strerror (errno));
  }
  g_mutex_unlock (&link->lock);
}

/* ---- channels ---- */

static QubeVchan *
chan_new (KvmLink *link, uint32_t port, gboolean server)
{
  QubeVchan *chan = g_new0 (QubeVchan, 1);

  chan->link = link;
  chan->port = port;
  chan->server = server;
  chan->what = g_strdup_printf ("vchan port %u of qube '%s'", port, link->qube);
  chan->event_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (chan->event_fd < 0)
    {
      set_error (QUBE_ABI_E_FAILED, "cannot open %s: eventfd: %s", chan->what, g_strerror (errno));
      g_free (chan->what);
      g_free (chan);
      return NULL;
    }
  g_ptr_array_add (link->chans, chan);
  return chan;
}

/* Frees a channel (link locked, unlocks it). */
static void
chan_free_locked (QubeVchan *chan)
{
  KvmLink *link = chan->link;

  /* The close could not be sent or recorded: the link cannot keep
   * channels apart any more.  It ends here; its descriptor is only shut
   * down, as the pump may be reading it right now: the pump closes it. */
  if (chan->vc != NULL && vmux_chan_close (chan->vc) < 0)
    {
      link_mark_dead (link, link->mux.error);
      vmux_link_down (&link->mux);
      if (link->fd >= 0)
        shutdown (link->fd, SHUT_RDWR);
      link_kick (link);
    }
  g_ptr_array_remove (link->chans, chan);
  close (chan->event_fd);
  g_free (chan->what);
  g_free (chan);
  link_put (link);
}

static void
chan_attach (QubeVchan *chan, VmuxChan *vc)
{
  chan->vc = vc;
  vc->user = chan;
}

static QubeVchan *
kvm_vchan_server_init (void *plugin, const QubeVchanPeer *peer, uint32_t port,
                       size_t read_min, size_t write_min)
{
  KvmLink *link = link_get (peer, "offer", port);
  QubeVchan *chan;
  VmuxChan *vc;

  (void) plugin;
  if (link == NULL)
    return NULL;
  if (link->dead)
    {
      set_error (QUBE_ABI_E_FAILED, "cannot offer vchan port %u of qube '%s': the link was cut "
                 "off: %s", port, link->qube, link->dead_reason);
      link_put (link);
      return NULL;
    }
  chan = chan_new (link, port, TRUE);
  if (chan == NULL)
    {
      link_put (link);
      return NULL;
    }
  vc = vmux_offer (&link->mux, port, read_min, write_min);
  if (vc == NULL)
    {
      set_error (QUBE_ABI_E_BUSY, "cannot offer %s: %s", chan->what, link->mux.error);
      chan_free_locked (chan);
      return NULL;
    }
  chan_attach (chan, vc);
  link_kick (link);
  g_mutex_unlock (&link->lock);
  return chan;
}

/* Connects if the peer offers the port (link locked): 0, QUBE_ABI_E_TIMEOUT
 * while it does not, or an error. */
static int
chan_try_connect (QubeVchan *chan, gboolean wait_for_offer)
{
  KvmLink *link = chan->link;
  VmuxChan *vc;

  if (link->dead)
    {
      set_error (QUBE_ABI_E_FAILED, "cannot connect to %s: the link was cut off: %s",
                 chan->what, link->dead_reason);
      return QUBE_ABI_E_FAILED;
    }
  if (!link->mux.peer_up)
    return QUBE_ABI_E_TIMEOUT;
  if (!vmux_peer_offers (&link->mux, chan->port))
    {
      if (wait_for_offer)
        return QUBE_ABI_E_TIMEOUT;
      set_error (QUBE_ABI_E_NOT_FOUND, "cannot connect to %s: the qube does not offer it",
                 chan->what);
      return QUBE_ABI_E_NOT_FOUND;
    }
  vc = vmux_connect (&link->mux, chan->port);
  if (vc == NULL)
    {
      set_error (QUBE_ABI_E_FAILED, "cannot connect to %s: %s", chan->what, link->mux.error);
      return QUBE_ABI_E_FAILED;
    }
  chan_attach (chan, vc);
  link_kick (link);
  return 0;
}

static QubeVchan *
kvm_vchan_client_init (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  KvmLink *link = link_get (peer, "connect to", port);
  gint64 deadline = g_get_monotonic_time () + CONNECT_TIMEOUT_S * G_TIME_SPAN_SECOND;
  QubeVchan *chan;
  int rc;

  (void) plugin;
  if (link == NULL)
    return NULL;
  chan = chan_new (link, port, FALSE);
  if (chan == NULL)
    {
      link_put (link);
      return NULL;
    }
  /* Like libvchan's client: wait for the qube to be up, then the port must
   * be offered. */
  while ((rc = chan_try_connect (chan, FALSE)) == QUBE_ABI_E_TIMEOUT)
    if (!g_cond_wait_until (&link->cond, &link->lock, deadline))
      {
        set_error (QUBE_ABI_E_TIMEOUT, "cannot connect to %s: the qube's vchan link did not "
                   "come up in %d s", chan->what, CONNECT_TIMEOUT_S);
        break;
      }
  if (rc != 0)
    {
      chan_free_locked (chan);
      return NULL;
    }
  g_mutex_unlock (&link->lock);
  return chan;
}

static QubeVchan *
kvm_vchan_client_init_async (void *plugin, const QubeVchanPeer *peer, uint32_t port)
{
  KvmLink *link = link_get (peer, "connect to", port);
  QubeVchan *chan;

  (void) plugin;
  if (link == NULL)
    return NULL;
  chan = chan_new (link, port, FALSE);
  if (chan == NULL)
    link_put (link);
  else
    g_mutex_unlock (&link->lock);
  return chan;
}

static int
kvm_vchan_client_init_async_finish (QubeVchan *chan)
{
  int rc;

  g_mutex_lock (&chan->link->lock);
  rc = chan->vc != NULL ? 0 : chan_try_connect (chan, TRUE);
  g_mutex_unlock (&chan->link->lock);
  return rc;
}

/* The peer is gone and nothing it sent is left. */
static gboolean
chan_finished (QubeVchan *chan)
{
  return chan->link->dead || chan->vc == NULL ||
         (chan->vc->state == VMUX_CHAN_GONE && vmux_chan_ready (chan->vc) == 0);
}

/* Moves bytes; `all` for recv/send.  Blocks until something can move. */
static long
chan_io (QubeVchan *chan, void *buf, size_t len, gboolean writing, gboolean all)
{
  KvmLink *link = chan->link;
  size_t done = 0;

  if (len == 0)
    return 0;
  g_mutex_lock (&link->lock);
  /* An offered channel has no rings yet: wait for the client first. */
  while (chan->vc != NULL && chan->vc->state == VMUX_CHAN_WAITING && !link->dead)
    g_cond_wait (&link->cond, &link->lock);
  if (all && chan->vc != NULL && chan->vc->state != VMUX_CHAN_WAITING &&
      len > (writing ? chan->vc->peer_ring : chan->vc->rx_size))
    {
      set_error (QUBE_ABI_E_INVALID, "cannot %s %zu bytes at once on %s: its ring holds %zu",
                 writing ? "send" : "receive", len, chan->what,
                 writing ? chan->vc->peer_ring : chan->vc->rx_size);
      g_mutex_unlock (&link->lock);
      return -1;
    }
  for (;;)
    {
      VmuxChan *vc = chan->vc;
      size_t avail;

      if (vc == NULL || link->dead || (writing && vc->state == VMUX_CHAN_GONE))
        goto gone;
      avail = writing ? vmux_chan_space (vc) : vmux_chan_ready (vc);
      if (avail > 0 && (!all || avail >= len - done))
        {
          if (writing)
            done += vmux_chan_write (vc, (const char *) buf + done, len - done);
          else
            done += vmux_chan_read (vc, (char *) buf + done, len - done);
          link_kick (link);
          if (!all || done == len)
            break;
          continue;
        }
      if (!writing && vc->state == VMUX_CHAN_GONE)
        goto gone;
      g_cond_wait (&link->cond, &link->lock);
    }
  g_mutex_unlock (&link->lock);
  return (long) done;

gone:
  set_error (QUBE_ABI_E_FAILED, "%s: %s", chan->what,
             link->dead ? link->dead_reason
             : chan->vc == NULL ? "not connected" : "the peer closed the channel");
  g_mutex_unlock (&link->lock);
  return -1;
}

static long
kvm_vchan_read (QubeVchan *chan, void *buf, size_t len)
{
  return chan_io (chan, buf, len, FALSE, FALSE);
}

static long
kvm_vchan_write (QubeVchan *chan, const void *buf, size_t len)
{
  return chan_io (chan, (void *) buf, len, TRUE, FALSE);
}

static long
kvm_vchan_recv (QubeVchan *chan, void *buf, size_t len)
{
  return chan_io (chan, buf, len, FALSE, TRUE);
}

static long
kvm_vchan_send (QubeVchan *chan, const void *buf, size_t len)
{
  return chan_io (chan, (void *) buf, len, TRUE, TRUE);
}

static size_t
kvm_vchan_data_ready (QubeVchan *chan)
{
  size_t n;

  g_mutex_lock (&chan->link->lock);
  n = chan->vc != NULL ? vmux_chan_ready (chan->vc) : 0;
  g_mutex_unlock (&chan->link->lock);
  return n;
}

static size_t
kvm_vchan_buffer_space (QubeVchan *chan)
{
  size_t n;

  g_mutex_lock (&chan->link->lock);
  n = chan->vc != NULL && !chan->link->dead ? vmux_chan_space (chan->vc) : 0;
  g_mutex_unlock (&chan->link->lock);
  return n;
}

static int
kvm_vchan_is_open (QubeVchan *chan)
{
  int state;

  g_mutex_lock (&chan->link->lock);
  if (chan->vc == NULL)
    state = chan->link->dead ? QUBE_VCHAN_DISCONNECTED : QUBE_VCHAN_WAITING;
  else if (chan->vc->state == VMUX_CHAN_WAITING)
    state = chan->link->dead ? QUBE_VCHAN_DISCONNECTED : QUBE_VCHAN_WAITING;
  else if (chan_finished (chan))
    state = QUBE_VCHAN_DISCONNECTED;
  else
    state = QUBE_VCHAN_CONNECTED;
  g_mutex_unlock (&chan->link->lock);
  return state;
}

static int
kvm_vchan_fd (QubeVchan *chan)
{
  return chan->event_fd;
}

static int
kvm_vchan_ack (QubeVchan *chan)
{
  uint64_t v;

  g_mutex_lock (&chan->link->lock);
  if (read (chan->event_fd, &v, sizeof v) < 0 && errno != EAGAIN)
    {
      g_mutex_unlock (&chan->link->lock);
      set_error (QUBE_ABI_E_FAILED, "%s: %s", chan->what, g_strerror (errno));
      return -1;
    }
  chan->event_pending = FALSE;
  g_mutex_unlock (&chan->link->lock);
  return 0;
}

static int
kvm_vchan_wait (QubeVchan *chan)
{
  struct pollfd pfd = { .fd = chan->event_fd, .events = POLLIN };

  g_mutex_lock (&chan->link->lock);
  /* Once the peer is gone no event will come: do not block. */
  if (chan->vc != NULL && chan->vc->state == VMUX_CHAN_GONE)
    {
      g_mutex_unlock (&chan->link->lock);
      return kvm_vchan_ack (chan);
    }
  g_mutex_unlock (&chan->link->lock);
  while (poll (&pfd, 1, -1) < 0)
    if (errno != EINTR)
      {
        set_error (QUBE_ABI_E_FAILED, "%s: poll: %s", chan->what, g_strerror (errno));
        return -1;
      }
  return kvm_vchan_ack (chan);
}

static void
kvm_vchan_close (QubeVchan *chan)
{
  if (chan == NULL)
    return;
  g_mutex_lock (&chan->link->lock);
  chan_free_locked (chan);
}

const QubeVchanOps kvm_vchan_ops = {
  .size = sizeof (QubeVchanOps),
  .server_init = kvm_vchan_server_init,
  .client_init = kvm_vchan_client_init,
  .client_init_async = kvm_vchan_client_init_async,
  .client_init_async_finish = kvm_vchan_client_init_async_finish,
  .read = kvm_vchan_read,
  .write = kvm_vchan_write,
  .recv = kvm_vchan_recv,
  .send = kvm_vchan_send,
  .data_ready = kvm_vchan_data_ready,
  .buffer_space = kvm_vchan_buffer_space,
  .is_open = kvm_vchan_is_open,
  .fd = kvm_vchan_fd,
  .ack = kvm_vchan_ack,
  .wait = kvm_vchan_wait,
  .close = kvm_vchan_close,
};
