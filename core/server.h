/* server.h: the server and connection structs.
 *
 * A struct server holds everything one running server knows: its
 * options (from the command line or an embedding program), its chain
 * of backends and its live connections.  A struct connection holds one
 * client's state through handshake and transmission.
 */

#ifndef NBDKIT_SERVER_H
#define NBDKIT_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct backend;
struct context;
struct nbdkit_exports;
struct idle;
struct captive;
struct pool_rec;
struct async_conn;

/* --tls: the values are also what $tls holds for a --run command. */
enum tls_mode { TLS_OFF = 0, TLS_ON = 1, TLS_REQUIRE = 2 };

#define MAX_LISTEN_ADDRS 16
#define MAX_LISTEN_FDS 64

struct server_options {
  const char *unixsocket;               /* -U; "-" for a private one */
  const char *port;                     /* -p */
  const char *ipaddr[MAX_LISTEN_ADDRS]; /* -i, repeatable */
  int nipaddr;
  int family;  /* AF_UNSPEC, or -4 / -6 */
  bool single; /* -s */
  int fd;      /* --fd N, or -1 */
  bool vsock;
  bool socket_activation; /* LISTEN_FDS present */
  const char *run;        /* --run CMD */
  const char *pidfile;    /* -P */
  bool foreground;        /* -f */
  bool exit_with_parent;
  bool readonly;          /* -r */
  const char *exportname; /* -e */
  bool print_uri;
  unsigned threads; /* -t, default 16 */
  enum tls_mode tls;
  const char *tls_certificates;
  const char *tls_psk;
  bool tls_verify_peer;
  bool mask_handshake; /* don't advertise NBD_FLAG_NO_ZEROES etc */
  bool no_sr;          /* refuse structured replies */
  bool no_mc;          /* refuse meta contexts */
  bool no_eh;          /* refuse extended headers */
  unsigned timeout;    /* handshake timeout in seconds, 0 none */
  bool keepalive;
  bool watch; /* --watch: reload when a script changes (watch.c) */
  const char *user, *group;
  bool reverse;  /* --reverse: connect out to the client */
  bool mlock;    /* --swap: mlockall, to serve swap space */
  bool oldstyle; /* -o: the oldstyle handshake */
  int verbose;
  int log_to; /* enum log_to; LOG_TO_DEFAULT until server_run decides */
  /* --transmission-only FD: a connected socket already past the
   * handshake; serve the export named by -e straight away.
   */
  bool transmission_only;
};

struct server {
  struct server_options opt;
  const char *program_name; /* "nbdkit" */
  /* Created through <nbdkit-server.h> (embed.c): the process belongs
   * to the program, so no signal handlers, no daemon, no options that
   * act on the whole process.
   */
  bool embedded;
  /* Called by server_run once clients can connect, just before it
   * serves; NULL if nobody waits for that.
   */
  void (*ready) (struct server *s, void *opaque);
  void *ready_opaque;
  /* The last error logged for this server (log.c), for
   * nbdkit_server_error.
   */
  pthread_mutex_t error_lock;
  char *last_error;
  struct backend *top;    /* first filter, or the plugin */
  struct backend *plugin; /* the last layer */
  void *tls;              /* credentials (tls.c), NULL without TLS */
  int thread_model;       /* effective: most serializing of all */
  int exit_status;        /* from --run, or 0 */
  int ncpus;              /* CPUs the process may run on */

  /* Listening and life cycle. */
  int listen_fds[MAX_LISTEN_FDS];
  int nlisten_fds;
  char *private_dir; /* for -U - */
  char *socket_path; /* the Unix socket actually used */
  bool socket_made;  /* ... and this process made it: remove it at exit */
  int bound_port;    /* the TCP port actually used */
  atomic_bool quit;
  atomic_bool stop_asked;  /* stopped by the embedding program */
  struct captive *captive; /* the --run command's waiter (server.c) */
  int quit_pipe[2];        /* written once to wake every poll */
  int reload_pipe[2];      /* SIGHUP: the accept loop reloads (reload.c) */
  struct watcher *watcher; /* files to watch (watch.c), made with lock */

  pthread_mutex_t lock; /* protects the fields below */
  pthread_cond_t cond;
  unsigned nconnections; /* live ones */
  unsigned next_conn_id;
  struct connection *connections; /* list, for shutdown */

  /* The watchdog: finds a reader for connections whose only thread
   * has been busy with a request for a while (see transmission.c).
   */
  pthread_t watchdog;
  bool watchdog_started;
  pthread_cond_t watch_cond; /* with lock: nwatched became non-zero */
  unsigned nwatched;

  /* Threads kept for reuse (threads.c). */
  pthread_mutex_t pool_lock;
  pthread_cond_t pool_done; /* pool_threads went down */
  struct idle *pool_idle;   /* idle threads waiting for a task */
  unsigned pool_threads;
  bool pool_stop;
  struct pool_rec *pool_exited; /* threads gone, to be joined */

  /* serialize-connections and serialize-all-requests: one call at a
   * time into the plugin, whatever context it is on (backend.c).
   */
  pthread_mutex_t plugin_lock;
  /* A filter asking for serialize-all-requests or stricter for itself:
   * one client request at a time through the chain (transmission.c).
   */
  bool serialize_filters;
  pthread_mutex_t all_requests_lock;
  pthread_mutex_t connections_lock; /* serialize-connections */

  /* Interned strings outside connections. */
  pthread_mutex_t intern_lock;
  char **interned;
  size_t ninterned, interned_alloc;

  /* Meta contexts offered: [0] is base:allocation, then one per
   * filter that has its own (meta_owner is that filter).
   */
#define MAX_META 16
  const char *meta_names[MAX_META];
  struct backend *meta_owner[MAX_META];
  int nmeta;

  /* Debug flags from -D. */
  char **debug_flags;
  size_t ndebug_flags;
  /* The server's own, -D nbdkit.FLAG=N. */
  int debug_controlpath; /* trace calls that set connections up */
  int debug_datapath;    /* trace data requests */
  int debug_tls_log;     /* GnuTLS log level */
  int debug_tls_session; /* describe each TLS session */
};

/* A connection's state, ordered: "> CONN_STOPPING" is live, "<=" is
 * going, ">= CONN_STOPPING" may still send replies.
 */
enum conn_status {
  CONN_DEAD = -1,    /* neither reads nor sends: replies fail */
  CONN_STOPPING = 0, /* reads no more requests, finishes those read */
  CONN_LIVE = 1,
};

/* One connection.  Fields after "locked by lock" are shared between
 * the threads serving it.
 */
struct connection {
  struct server *server;
  struct connection *next_live; /* in server->connections */
  unsigned id;
  int sockin, sockout; /* the same fd except with -s */
  bool is_unix;
  bool is_socket; /* sockout is a socket, not a pipe */
  struct sockaddr_storage peer;
  socklen_t peerlen;

  /* Negotiated in the handshake. */
  bool structured_replies;
  bool extended_headers;
  /* Meta contexts: bit I of meta_set means server->meta_names[I] was
   * selected (its id is I + 1); meta_selected is what applies to the
   * export finally chosen.
   */
  uint32_t meta_set;
  uint32_t meta_selected;
  char *meta_export; /* export name the SET was for */
  bool no_zeroes;
  bool fixed_newstyle; /* the client set NBD_FLAG_C_FIXED_NEWSTYLE */
  bool is_tls;
  void *tls_session;    /* after STARTTLS (tls.c) */
  bool tls_held;        /* a record send was cut short (tls.c, send_lock) */
  size_t tls_ahead;     /* bytes of the stream that left already (tls.c) */
  char *exportname;     /* the export open, default resolved */
  char *requested_name; /* what the client asked for */
  /* Each layer's default_export answers, asked once (exports.c). */
  struct default_export *default_exports;
  bool client_requested_bs;
  uint16_t eflags; /* transmission flags sent */
  int64_t exportsize;
  struct nbdkit_block_size bs; /* enforced block sizes */
  struct context *top;         /* the open chain */
  bool readonly;

  /* During the handshake with --timeout: when it must be over
   * (monotonic ns), else 0.
   */
  uint64_t deadline;

  /* Input buffer, owned by the thread currently reading requests. */
  unsigned char *rbuf;
  size_t rbuf_size, rbuf_start, rbuf_end;

  /* Thread state. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool reader_busy; /* a thread holds the reader role */
  unsigned nthreads, nidle, max_threads;
  unsigned inflight;              /* requests read and not yet replied */
  uint64_t next_seq, next_retire; /* for serialize-retirement */
  atomic_int status;              /* enum conn_status */
  /* A layer asked for a soft disconnect: every later request but
   * NBD_CMD_DISC fails with ESHUTDOWN; those in flight finish.
   */
  atomic_bool soft_disconnect;
  /* When the thread serving a request kept the reader role unfilled
   * (monotonic ns), or 0: the watchdog fills it if that lasts.
   */
  _Atomic uint64_t unattended_since;
  int64_t service_ns; /* average time a request takes (lock) */
  bool disc_requested;
  pthread_mutex_t send_lock;

  /* Interned strings for this connection. */
  char **interned;
  size_t ninterned, interned_alloc;

  /* Requests the plugin completes later (async.c), or NULL. */
  struct async_conn *async;
};

/* ---- server.c ---- */
extern struct server *server_new (void);
extern void server_free (struct server *s);
extern void server_request_quit (struct server *s);
extern int server_prepare (struct server *s);
extern int server_run (struct server *s); /* returns the exit status */
/* Clean up and unload every layer (at the end of server_run, or for a
 * server that never ran).
 */
extern void server_unload (struct server *s);
/* The most serializing thread model of all layers, or -1. */
extern int server_thread_model (struct server *s);

/* ---- signals.c: the process's signals (the nbdkit program only) ---- */
extern void signals_install (struct server *s);
extern void signals_forget (struct server *s);
extern bool signals_quit_received (void);

/* Load every layer's code again, where a layer can (reload.c). */
extern void server_reload (struct server *s);

/* ---- watch.c: --watch, reloading when a script changes ---- */
/* Remember PATH, which a layer's code comes from. */
extern int watch_add (struct server *s, const char *path);
/* The inotify descriptor the accept loop polls, or -1 without --watch. */
extern int watch_start (struct server *s);
/* Read its events (a watched file changed: a reload is due soon). */
extern void watch_read (struct server *s);
/* Milliseconds until the reload is due, for poll; -1 if none. */
extern int watch_timeout (struct server *s);
/* Whether the reload is due now (then it is no longer). */
extern bool watch_due (struct server *s);
extern void watch_free (struct server *s);
extern void server_quit_from_anywhere (void);

/* ---- background.c, usergroup.c: the serving process itself ---- */
extern int daemonize (struct server *s, bool log_default);
extern int write_pidfile (struct server *s);
extern int lock_memory (struct server *s);
extern int change_user (struct server *s);

/* ---- captive.c: --run ---- */
extern int captive_start (struct server *s);
/* Cut the --run waiter off the server, before it is torn down. */
extern void captive_detach (struct server *s);

/* ---- dump.c, dump_v2.c: --dump-plugin ---- */
extern int dump_plugin (struct server *s, struct backend *b);
extern void plugin_v2_dump_fields (struct backend *b, const char *chain_model,
                                   FILE *fp);

/* ---- cmdline.c ---- */
enum cmdline_result {
  CMDLINE_RUN,   /* configured: go on and run */
  CMDLINE_DONE,  /* answered (--help, --version, ...): *STATUS says how */
  CMDLINE_ERROR, /* message logged */
};
/* Parse argv into S, load the plugin and filters, configure them. */
extern enum cmdline_result cmdline_parse (struct server *s, int argc,
                                          char **argv, int *status);

/* ---- listen.c ---- */
extern int listen_setup (struct server *s);
extern int listen_loop (struct server *s);
extern void listen_cleanup (struct server *s);
extern char *server_uri (struct server *s);
extern int reverse_connect (struct server *s);

/* ---- connection.c ---- */
/* Serve one client on the connected socket(s); takes ownership. */
extern void connection_start (struct server *s, int sockin, int sockout,
                              bool detached);
extern int conn_recv (struct connection *c, void *buf, size_t len);
extern void conn_clear_deadline (struct connection *c);
extern int conn_send (struct connection *c, const void *buf, size_t len);
extern int conn_sendv (struct connection *c, struct iovec *iov, int iovcnt);
/* Send as much as the socket takes without waiting (a socket, not a
 * pipe): the number of bytes sent, or -1 on error.  Over TLS a record
 * the socket took only in part is not counted: the next send on the
 * connection must start at its first byte (tls.c).
 */
extern ssize_t conn_sendv_nowait (struct connection *c, struct iovec *iov,
                                  int iovcnt);
extern void conn_intern_free (struct connection *c);
extern bool conn_input_pending (struct connection *c);
extern bool conn_request_buffered (struct connection *c);
/* With c->lock held: wake or start a thread to read the next request. */
extern void connection_find_reader (struct connection *c);
extern void watchdog_start (struct server *s);
extern void watchdog_stop (struct server *s);
extern uint64_t monotonic_ns (void);

/* ---- handshake.c ---- */
/* Returns 0 when the client may enter transmission, -1 to drop it. */
extern int handshake (struct connection *c);
/* Open the chain for EXPORTNAME and compute eflags/size/block sizes. */
extern int handshake_finish_export (struct connection *c,
                                    const char *exportname);

/* ---- oldstyle.c ---- */
/* The oldstyle greeting (-o) for the default export; 0 to go on. */
extern int handshake_oldstyle (struct connection *c);

/* ---- threads.c ---- */
/* Run FN (ARG) on a pooled thread; -1 if no thread could be had. */
extern int pool_run (struct server *s, void *(*fn) (void *), void *arg);
/* Wait for every pooled thread to exit (after the last connection). */
extern void pool_stop (struct server *s);
/* Join the pool threads that have left; call with no lock held. */
extern void pool_reap (struct server *s);

/* ---- tls.c ---- */
extern int tls_init (struct server *s);
extern void tls_free (struct server *s);
extern int tls_handshake (struct connection *c);
extern ssize_t tls_recv (struct connection *c, void *buf, size_t len);
extern ssize_t tls_sendv (struct connection *c, struct iovec *iov, int iovcnt,
                          bool nowait);
extern bool tls_pending (struct connection *c);
extern void tls_close (struct connection *c);

/* ---- transmission.c ---- */
extern void transmission_loop (struct connection *c);

/* ---- public.c / log.c helpers ---- */
extern void thread_ctx_set (struct server *s, struct connection *c,
                            const char *name);
extern const char *thread_model_name (int model);
extern const char *server_plugindir (void);
extern const char *server_filterdir (void);

#endif /* NBDKIT_SERVER_H */
