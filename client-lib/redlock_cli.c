/*
 * redlock_cli.c - `redlock`, the command-line client of redlockd, built on
 * libredlock. `redlock run` is a distributed flock(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redlock.h"

#define EXIT_DAEMON_ERR 1  /* the daemon answered ERR */
#define EXIT_USAGE 64      /* EX_USAGE */
#define EXIT_UNAVAILABLE 69/* EX_UNAVAILABLE: cannot reach redlockd */
#define EXIT_HELD 75       /* EX_TEMPFAIL: the lock could not be had */
#define EXIT_LOST 76       /* run: the lock was lost while the command ran */
#define DEFAULT_GRACE_MS 5000
#define BLOCK_MAX 65536

static const char usage_text[] =
    "usage: redlock [-a ADDR] [-T TIMEOUT_MS] COMMAND [ARGS]\n"
    "  -a ADDR        host:port, [v6]:port or a Unix socket path\n"
    "                 (default: $REDLOCK_ADDR, then " REDLOCK_DEFAULT_ADDR ")\n"
    "  -T TIMEOUT_MS  give up on a reply after this long (default: wait)\n"
    "commands:\n"
    "  ping\n"
    "  acquire RES[,RES...] [-t TTL_MS] [-w WAIT_MS] [--detach] [--autoextend]\n"
    "        prints \"<lock_id> <validity_ms> [<fence>]\". Without --detach the lock\n"
    "        is released when this command exits, so scripts want --detach.\n"
    "  extend ID [TTL_MS]     prints \"<lock_id> <validity_ms>\"\n"
    "  release ID\n"
    "  info                   the daemon's INFO block\n"
    "  inspect RES            who holds RES, as the masters see it\n"
    "  raw LINE               send one request line, print the reply\n"
    "  run [-w WAIT_MS] [-t TTL_MS] [-g GRACE_MS] RES[,RES...] -- COMMAND [ARGS...]\n"
    "        hold an auto-extended lock while COMMAND runs, then release it.\n"
    "        COMMAND gets REDLOCK_LOCK_ID, REDLOCK_VALIDITY_MS, REDLOCK_RESOURCES\n"
    "        (and REDLOCK_FENCE) in its environment. If the lock is lost, COMMAND\n"
    "        gets SIGTERM, then SIGKILL after GRACE_MS (default 5000).\n"
    "exit status: 0 ok; 1 the daemon answered ERR; 64 usage; 69 redlockd unreachable;\n"
    "  75 the lock is held elsewhere (acquire, run: the command did not run);\n"
    "  76 run: the lock was lost while the command ran; otherwise run exits with\n"
    "  the command's status (128+N if a signal N killed it).\n";

static void usage(FILE *out) { fputs(usage_text, out); }

static int parse_ms(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > 2147483647ul) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int daemon_error(struct redlock_client *c, int rc)
{
    fprintf(stderr, "redlock: %s\n", redlock_errstr(c));
    if (rc == REDLOCK_ERR_BUSY) return EXIT_HELD;
    if (rc == REDLOCK_ERR_IO || rc == REDLOCK_ERR_TIMEOUT) return EXIT_UNAVAILABLE;
    return EXIT_DAEMON_ERR;
}

/* Options after an acquire/run verb: -t, -w, -g, --detach, --autoextend. */
struct lock_args {
    struct redlock_acquire_opts opts;
    uint32_t grace_ms;
    const char *resources;
    char **command; /* run: argv after "--" */
};

static int parse_lock_args(int argc, char **argv, bool is_run, struct lock_args *a)
{
    static const struct option longs[] = {
        {"detach", no_argument, NULL, 'D'},
        {"autoextend", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->grace_ms = DEFAULT_GRACE_MS;
    optind = 0; /* 0, not 1: GNU getopt re-initialises (permutation state) */
    int opt;
    while ((opt = getopt_long(argc, argv, is_run ? "+t:w:g:" : "t:w:", is_run ? longs + 2 : longs, NULL)) != -1) {
        uint32_t v;
        switch (opt) {
        case 't':
        case 'w':
        case 'g':
            if (parse_ms(optarg, &v) != 0) {
                fprintf(stderr, "redlock: -%c wants milliseconds\n", opt);
                return -1;
            }
            if (opt == 't') a->opts.ttl_ms = v;
            else if (opt == 'w') a->opts.wait_ms = v;
            else a->grace_ms = v;
            break;
        case 'D': a->opts.detach = true; break;
        case 'A': a->opts.autoextend = true; break;
        default: return -1;
        }
    }
    if (optind >= argc) return -1;
    a->resources = argv[optind++];
    if (is_run) {
        if (optind >= argc || strcmp(argv[optind], "--") != 0 || optind + 1 >= argc) return -1;
        a->command = &argv[optind + 1];
    } else if (optind != argc) {
        return -1;
    }
    return 0;
}

static void print_lock(const struct redlock_lock *lk)
{
    if (lk->fence) printf("%s %llu %llu\n", lk->id, (unsigned long long)lk->validity_ms, (unsigned long long)lk->fence);
    else printf("%s %llu\n", lk->id, (unsigned long long)lk->validity_ms);
    fflush(stdout);
}

static int cmd_acquire(struct redlock_client *c, int argc, char **argv)
{
    struct lock_args a;
    if (parse_lock_args(argc, argv, false, &a) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct redlock_lock lk;
    int rc = redlock_acquire(c, a.resources, &a.opts, &lk);
    if (rc != REDLOCK_OK) return daemon_error(c, rc);
    print_lock(&lk);
    return 0;
}

static int cmd_extend(struct redlock_client *c, int argc, char **argv)
{
    uint32_t ttl = 0;
    if (argc < 2 || argc > 3 || (argc == 3 && parse_ms(argv[2], &ttl) != 0)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct redlock_lock lk;
    int rc = redlock_extend(c, argv[1], ttl, &lk);
    if (rc != REDLOCK_OK) return daemon_error(c, rc);
    print_lock(&lk);
    return 0;
}

/* Commands whose reply is printed as it is: info, inspect, raw. */
static int cmd_print(struct redlock_client *c, const char *line)
{
    char *block = malloc(BLOCK_MAX);
    if (block == NULL) return EXIT_DAEMON_ERR;
    int rc = redlock_command(c, line, block, BLOCK_MAX);
    if (rc != REDLOCK_OK) {
        free(block);
        return daemon_error(c, rc);
    }
    puts(block);
    int status = strncmp(block, "ERR", 3) == 0 ? EXIT_DAEMON_ERR : 0;
    free(block);
    return status;
}

/* ---- run ---- */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    ssize_t ignored = write(signal_pipe[1], &b, 1);
    (void)ignored;
    errno = saved;
}

struct run_state {
    const char *lock_id;
    bool lost;
    char reason[32];
};

static void on_event(const struct redlock_event *ev, void *ud)
{
    struct run_state *st = ud;
    if (strcmp(ev->name, "LOST") == 0 && strcmp(ev->lock_id, st->lock_id) == 0) {
        st->lost = true;
        snprintf(st->reason, sizeof st->reason, "%s", ev->reason);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int install_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) return -1;
    return 0;
}

/* Wait for the child while watching the daemon connection; stop the child
 * if the lock is lost. Returns the exit status redlock run exits with. */
static int supervise(struct redlock_client *c, pid_t child, struct run_state *st, uint32_t grace_ms)
{
    uint64_t kill_at = 0; /* when SIGKILL follows the SIGTERM */
    bool term_sent = false;
    for (;;) {
        int status;
        pid_t w = waitpid(child, &status, WNOHANG);
        if (w == child) {
            if (st->lost) return EXIT_LOST;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (st->lost && !term_sent) {
            fprintf(stderr, "redlock: lock lost (%s): stopping the command\n", st->reason);
            kill(child, SIGTERM);
            term_sent = true;
            kill_at = mono_ms() + grace_ms;
        }
        if (term_sent && mono_ms() >= kill_at) {
            kill(child, SIGKILL);
            kill_at = UINT64_MAX;
        }
        struct pollfd p[2] = {{.fd = signal_pipe[0], .events = POLLIN}, {.fd = redlock_fd(c), .events = POLLIN}};
        int timeout = -1;
        if (term_sent && kill_at != UINT64_MAX) {
            uint64_t now = mono_ms();
            timeout = kill_at > now ? (int)(kill_at - now) : 0;
        }
        int n = poll(p, st->lost ? 1 : 2, timeout);
        if (n < 0 && errno != EINTR) return EXIT_LOST;
        if (n > 0 && (p[0].revents & POLLIN)) {
            unsigned char sig;
            while (read(signal_pipe[0], &sig, 1) == 1)
                if (sig != SIGCHLD) kill(child, sig); /* pass termination requests on */
        }
        if (!st->lost && n > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redlock_poll_events(c, 0) < 0) { /* the daemon went away: so did the lock */
                st->lost = true;
                snprintf(st->reason, sizeof st->reason, "DISCONNECTED");
            }
        }
    }
}

static int cmd_run(struct redlock_client *c, int argc, char **argv)
{
    struct lock_args a;
    if (parse_lock_args(argc, argv, true, &a) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    a.opts.autoextend = true;
    struct redlock_lock lk;
    int rc = redlock_acquire(c, a.resources, &a.opts, &lk);
    if (rc != REDLOCK_OK) {
        fprintf(stderr, "redlock: %s\n", redlock_errstr(c));
        if (rc == REDLOCK_ERR_BADREQ) return EXIT_USAGE;
        if (rc == REDLOCK_ERR_IO || rc == REDLOCK_ERR_TIMEOUT) return EXIT_UNAVAILABLE;
        return EXIT_HELD;
    }
    struct run_state st = {.lock_id = lk.id};
    redlock_set_event_handler(c, on_event, &st);
    if (install_signals() != 0) {
        perror("redlock: signals");
        return EXIT_DAEMON_ERR;
    }
    char num[32];
    setenv("REDLOCK_LOCK_ID", lk.id, 1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)lk.validity_ms);
    setenv("REDLOCK_VALIDITY_MS", num, 1);
    setenv("REDLOCK_RESOURCES", a.resources, 1);
    if (lk.fence) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)lk.fence);
        setenv("REDLOCK_FENCE", num, 1);
    }
    pid_t child = fork();
    if (child < 0) {
        perror("redlock: fork");
        return EXIT_DAEMON_ERR;
    }
    if (child == 0) {
        close(redlock_fd(c)); /* the lock must not outlive us through the child */
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execvp(a.command[0], a.command);
        fprintf(stderr, "redlock: %s: %s\n", a.command[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status = supervise(c, child, &st, a.grace_ms);
    if (!st.lost) redlock_release(c, lk.id);
    return status;
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    uint32_t timeout_ms = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+a:T:hV")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'T':
            if (parse_ms(optarg, &timeout_ms) != 0) {
                usage(stderr);
                return EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("redlock %s\n", REDLOCK_LIB_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char **args = argv + optind;
    int nargs = argc - optind;
    const char *cmd = args[0];
    static const char *const known[] = {"ping", "acquire", "extend", "release", "info", "inspect", "raw", "run"};
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= strcmp(cmd, known[i]) == 0;
    if (!ok) {
        fprintf(stderr, "redlock: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    char err[256];
    struct redlock_client *c = redlock_connect(addr, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "redlock: cannot connect: %s\n", err);
        return EXIT_UNAVAILABLE;
    }
    redlock_set_timeout(c, timeout_ms);
    int rc;
    if (strcmp(cmd, "ping") == 0 && nargs == 1) {
        rc = redlock_ping(c);
        rc = rc == REDLOCK_OK ? (puts("PONG"), 0) : daemon_error(c, rc);
    } else if (strcmp(cmd, "acquire") == 0) {
        rc = cmd_acquire(c, nargs, args);
    } else if (strcmp(cmd, "extend") == 0) {
        rc = cmd_extend(c, nargs, args);
    } else if (strcmp(cmd, "release") == 0 && nargs == 2) {
        rc = redlock_release(c, args[1]);
        rc = rc == REDLOCK_OK ? 0 : daemon_error(c, rc);
    } else if (strcmp(cmd, "info") == 0 && nargs == 1) {
        rc = cmd_print(c, "INFO");
    } else if (strcmp(cmd, "inspect") == 0 && nargs == 2 && strpbrk(args[1], " \t\r\n") == NULL) {
        char line[600];
        snprintf(line, sizeof line, "INSPECT %s", args[1]);
        rc = cmd_print(c, line);
    } else if (strcmp(cmd, "raw") == 0 && nargs == 2) {
        rc = cmd_print(c, args[1]);
    } else if (strcmp(cmd, "run") == 0) {
        rc = cmd_run(c, nargs, args);
    } else {
        usage(stderr);
        rc = EXIT_USAGE;
    }
    redlock_close(c);
    return rc;
}
