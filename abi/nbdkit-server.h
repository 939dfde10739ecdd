/* nbdkit-server.h: a server inside your program.
 *
 * The nbdkit program is one user of this API; any program may be
 * another, and may run several servers at once, each with its own
 * plugin, filters and sockets.  Build with
 *
 *   cc $(pkg-config --cflags nbdkit-server) prog.c \
 *      $(pkg-config --libs nbdkit-server)
 *
 * A server is configured with the words of the nbdkit command line,
 * runs until stopped, and is freed:
 *
 *   const char *words[] = { "-U", "/tmp/sock", "memory", "1M", NULL };
 *   nbdkit_server *srv = nbdkit_server_new ();
 *   if (nbdkit_server_configure (srv, words) == -1)
 *     fprintf (stderr, "%s\n", nbdkit_server_error (srv));
 *   nbdkit_server_start (srv);     (or nbdkit_server_run in this thread)
 *   ...
 *   nbdkit_server_stop (srv);
 *   nbdkit_server_wait (srv);
 *   nbdkit_server_free (srv);
 *
 * Functions return -1 on error and keep the message for
 * nbdkit_server_error; none of them ever exits the process.  Messages
 * are also logged as the server logs them (stderr unless --log says
 * otherwise).  See abi/README.md, "Embedding", for what is shared
 * between servers in one process.
 */

#ifndef NBDKIT_SERVER_H_PUBLIC
#define NBDKIT_SERVER_H_PUBLIC

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nbdkit_server nbdkit_server;

/* A new server, not yet configured; NULL (errno set) if out of memory
 * or descriptors.
 */
extern nbdkit_server *nbdkit_server_new (void);

/* Configure SRV with the words of an nbdkit command line, without the
 * program name, in a NULL-terminated array: options (where clients
 * connect, -r, -e, -t, --filter=F, --tls=..., -v, --log=...), the
 * plugin, and its key=value parameters, e.g.
 *
 *   { "--filter=offset", "offset=1M", "-U", "/tmp/sock",
 *     "memory", "size=1G", NULL }
 *
 * Where clients connect: -U SOCKET (a Unix socket; "-" for a private
 * one, see nbdkit_server_uri), -p PORT and -i ADDR (TCP), or --fd N (a
 * connected socket the server then owns; it serves that client, then
 * nbdkit_server_run returns).  The plugin and filters are loaded and
 * configured here.  Words the nbdkit program answers by printing
 * (--help, --version, --dump-*) and those that act on the whole
 * process (-s, going into the background, -P, -u, -g, --swap,
 * --exit-with-parent, --run) are refused: the process is yours.  The
 * words are copied.  Called once per server.  Returns 0 or -1.
 */
extern int nbdkit_server_configure (nbdkit_server *srv,
                                    const char *const *words);

/* Serve in the calling thread until nbdkit_server_stop (or, with --fd,
 * until that client leaves); the plugin is then closed and unloaded.
 * Returns 0, or -1 if the server could not start (sockets, TLS, a
 * layer's get_ready).  Once per server.
 */
extern int nbdkit_server_run (nbdkit_server *srv);

/* As nbdkit_server_run, in a thread of the server's own: returns once
 * clients can connect (the sockets are listening), or -1 if the server
 * could not start.  Collect the end with nbdkit_server_wait.
 */
extern int nbdkit_server_start (nbdkit_server *srv);

/* Ask SRV to stop: it accepts no more clients, lets requests in flight
 * finish, closes its clients and returns from nbdkit_server_run (or
 * ends its thread).  Thread-safe and idempotent; not for a signal
 * handler (use sigwait, signalfd or a thread of your own).
 */
extern void nbdkit_server_stop (nbdkit_server *srv);

/* Ask SRV to load the code of its script layers again, as SIGHUP does
 * for the nbdkit program: connections opened afterwards use the new
 * code.  The server's accept loop does it soon after; thread-safe, and
 * unlike nbdkit_server_stop also safe in a signal handler.
 */
extern void nbdkit_server_reload (nbdkit_server *srv);

/* After nbdkit_server_start: wait until the server's thread ends, and
 * return what nbdkit_server_run would have.
 */
extern int nbdkit_server_wait (nbdkit_server *srv);

/* The URI clients connect to (nbd+unix:///?socket=... or
 * nbd://HOST:PORT), once running; the string belongs to SRV.  NULL
 * before nbdkit_server_start or for --fd.
 */
extern const char *nbdkit_server_uri (nbdkit_server *srv);

/* The last error message of SRV (without a trailing newline), or ""
 * if none.  The string belongs to SRV and changes with the next error.
 */
extern const char *nbdkit_server_error (nbdkit_server *srv);

/* Free SRV.  A running server is stopped and waited for first. */
extern void nbdkit_server_free (nbdkit_server *srv);

/* The nbdkit program: parse ARGV as nbdkit does (argv[0] is the program
 * name), answer --help and friends, or serve.  Returns the process's
 * exit status; unlike the functions above it may fork into the
 * background and set process-wide state (signals, identity), as the
 * command line asks.
 */
extern int nbdkit_main (int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* NBDKIT_SERVER_H_PUBLIC */
