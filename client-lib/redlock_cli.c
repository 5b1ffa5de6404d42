/*
 * redlock_cli.c - `redlock`, the command-line client of redlockd, built on
 * libredlock. `redlock run` is a distributed flock(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redlock.h"

#define EXIT_DAEMON_ERR 1   /* the daemon answered ERR */
#define EXIT_USAGE 64       /* EX_USAGE */
#define EXIT_NOINPUT 66     /* EX_NOINPUT: the token file cannot be read */
#define EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: cannot reach redlockd */
#define EXIT_HELD 75        /* EX_TEMPFAIL: the lock could not be had */
#define EXIT_LOST 76        /* run: the lock was lost while the command ran */
#define EXIT_NOPERM 77      /* EX_NOPERM: the daemon refused AUTH, or wants it */
#define DEFAULT_GRACE_MS 5000
#define BLOCK_MAX 65536
#define LOCKS_BLOCK_MAX (256 * 1024) /* the daemon sends at most 64 KiB of lock lines */
#define WAIT_FOREVER_MS 2147483647u  /* the largest WAIT; run asks again when it ends */

static const char usage_text[] =
    "usage: redlock [-a ADDR] [-T TIMEOUT_MS] [--token-file FILE] COMMAND [ARGS]\n"
    "       redlock -h|--help | -V|--version\n"
    "  -a ADDR        host:port, [v6]:port or a Unix socket path\n"
    "                 (default: $REDLOCK_ADDR, then " REDLOCK_DEFAULT_ADDR ")\n"
    "  -T TIMEOUT_MS  give up on a reply after this long (default: wait)\n"
    "  --token-file FILE  send AUTH with the first line of FILE (default:\n"
    "                 $REDLOCK_TOKEN_FILE; tokens are never taken from the command line)\n"
    "commands:\n"
    "  ping\n"
    "  acquire RES[,RES...] --detach [-t TTL_MS] [-w WAIT_MS | -n] [--shared | --permits N]\n"
    "        take a lock that outlives this command and print\n"
    "        \"<lock_id> <validity_ms> [<fence>]\"; free it with release, or let its\n"
    "        TTL end. --detach is required: a lock taken without it would end with\n"
    "        this command (use run to hold a lock while a command runs).\n"
    "        Without -w/-n the daemon's retries apply (retry_count).\n"
    "        In scripts keep the exit status:  out=$(redlock acquire ...) || exit\n"
    "  extend ID [TTL_MS]     prints \"<lock_id> <validity_ms>\"\n"
    "  release ID\n"
    "  info                   the daemon's INFO block\n"
    "  inspect RES            who holds RES, as the masters see it\n"
    "  locks [--json]         this daemon's held locks and waiting ACQUIREs\n"
    "  raw LINE               send one request line, print the reply\n"
    "  run [-w WAIT_MS | -n] [-t TTL_MS] [-g GRACE_MS] [--shared | --permits N] RES[,RES...]\n"
    "      -- COMMAND [ARGS...]\n"
    "        hold an auto-extended lock while COMMAND runs, then release it.\n"
    "        Without -w/-n, wait until the lock is free (as flock(1) does).\n"
    "        COMMAND gets REDLOCK_LOCK_ID, REDLOCK_VALIDITY_MS, REDLOCK_RESOURCES\n"
    "        (and REDLOCK_FENCE) in its environment. If the lock is lost, COMMAND\n"
    "        gets SIGTERM, then SIGKILL after GRACE_MS (default 5000).\n"
    "  -w WAIT_MS  wait up to WAIT_MS for the lock; -n (or -w 0): one attempt, no\n"
    "        wait and no retries, exit 75 at once if the lock is held.\n"
    "  --shared    a reader: any number hold together, writers (without --shared)\n"
    "        wait for them. --permits N: one of at most N holders (1..1000).\n"
    "exit status: 0 ok; 1 the daemon answered ERR; 64 usage; 66 the token file\n"
    "  cannot be read; 69 redlockd unreachable; 75 the lock is held elsewhere\n"
    "  (acquire, run: the command did not run); 76 run: the lock was lost while the\n"
    "  command ran; 77 the daemon wants AUTH or refused the token; otherwise run\n"
    "  exits with the command's status (128+N if a signal N killed it).\n";

/* A usage error: one line saying what was wrong, exit status 64. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("redlock: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see redlock --help)\n", stderr);
    return EXIT_USAGE;
}

static int parse_ms(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > 2147483647ul) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The exit status for a failed request, after saying why on stderr. */
static int daemon_error(struct redlock_client *c, int rc)
{
    fprintf(stderr, "redlock: %s\n", redlock_errstr(c));
    if (rc == REDLOCK_ERR_BUSY) return EXIT_HELD;
    if (rc == REDLOCK_ERR_IO || rc == REDLOCK_ERR_TIMEOUT) return EXIT_UNAVAILABLE;
    if (rc == REDLOCK_ERR_AUTH) return EXIT_NOPERM;
    return EXIT_DAEMON_ERR;
}

/* Options after an acquire/run verb: -t, -w, -n, -g, --detach, --shared, --permits. */
struct lock_args {
    struct redlock_acquire_opts opts;
    bool wait_given; /* -w or -n */
    uint32_t grace_ms;
    const char *resources;
    char **command; /* run: argv after "--" */
};

/* Parse the arguments of acquire (is_run false) or run. Returns 0, or
 * EXIT_USAGE after saying what was wrong. */
static int parse_lock_args(int argc, char **argv, bool is_run, struct lock_args *a)
{
    static const struct option longs[] = {
        {"shared", no_argument, NULL, 'S'},
        {"permits", required_argument, NULL, 'P'},
        {"detach", no_argument, NULL, 'D'},
        {"autoextend", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    static const struct option run_longs[] = {
        {"shared", no_argument, NULL, 'S'},
        {"permits", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const char *verb = argv[0];
    memset(a, 0, sizeof *a);
    a->grace_ms = DEFAULT_GRACE_MS;
    optind = 0; /* 0, not 1: GNU getopt re-initialises (permutation state) */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, is_run ? "+:t:w:g:n" : ":t:w:n", is_run ? run_longs : longs, NULL)) !=
           -1) {
        uint32_t v;
        switch (opt) {
        case 't':
        case 'w':
        case 'g':
            if (parse_ms(optarg, &v) != 0)
                return usage_error("%s: -%c wants milliseconds (0 to 2147483647), not '%s'", verb, opt, optarg);
            if (opt == 't') a->opts.ttl_ms = v;
            else if (opt == 'w') a->opts.wait_ms = v == 0 ? REDLOCK_NOWAIT : v;
            else a->grace_ms = v;
            if (opt == 'w') a->wait_given = true;
            break;
        case 'n':
            a->opts.wait_ms = REDLOCK_NOWAIT;
            a->wait_given = true;
            break;
        case 'D': a->opts.detach = true; break;
        case 'S': a->opts.shared = true; break;
        case 'P':
            if (parse_ms(optarg, &v) != 0 || v < 1 || v > 1000)
                return usage_error("%s: --permits wants a number from 1 to 1000, not '%s'", verb, optarg);
            a->opts.permits = v;
            break;
        case 'A': return usage_error("acquire: --autoextend would end with this command; use redlock run");
        case ':': return usage_error("%s: -%c needs a value", verb, optopt);
        default:
            if (optopt) return usage_error("%s: unknown option -%c", verb, optopt);
            return usage_error("%s: unknown option %s", verb, argv[optind - 1]);
        }
    }
    if (a->opts.shared && a->opts.permits)
        return usage_error("%s: --shared and --permits exclude each other", verb);
    if (optind >= argc) return usage_error("%s: which resource? (RES or RES1,RES2,...)", verb);
    a->resources = argv[optind++];
    if (is_run) {
        if (optind >= argc || strcmp(argv[optind], "--") != 0)
            return usage_error("run: want RES -- COMMAND [ARGS...] (options before RES)");
        if (optind + 1 >= argc) return usage_error("run: no command after --");
        a->command = &argv[optind + 1];
    } else if (optind != argc) {
        return usage_error("acquire: unexpected argument '%s'", argv[optind]);
    } else if (!a->opts.detach) {
        return usage_error("acquire without --detach: the lock would be released as this command "
                           "exits; add --detach, or use redlock run");
    }
    return 0;
}

static void print_lock(const struct redlock_lock *lk)
{
    if (lk->fence)
        printf("%s %llu %llu\n", lk->id, (unsigned long long)lk->validity_ms, (unsigned long long)lk->fence);
    else printf("%s %llu\n", lk->id, (unsigned long long)lk->validity_ms);
    fflush(stdout);
}

static int cmd_acquire(struct redlock_client *c, const struct lock_args *a)
{
    struct redlock_lock lk;
    int rc = redlock_acquire(c, a->resources, &a->opts, &lk);
    if (rc != REDLOCK_OK) return daemon_error(c, rc);
    print_lock(&lk);
    return 0;
}

static int cmd_extend(struct redlock_client *c, const char *id, uint32_t ttl)
{
    struct redlock_lock lk;
    int rc = redlock_extend(c, id, ttl, &lk);
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
    if (strncmp(block, "ERR AUTH", 8) == 0) status = EXIT_NOPERM;
    free(block);
    return status;
}

/* ---- locks ---- */

/* s as a JSON string: resource names and owner ids are printable ASCII. */
static void json_string(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 18) return false; /* fits a JSON number exactly */
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* A value: digits as a number, "-" as null, yes/no as booleans, else a string. */
static void json_value(const char *v, size_t len)
{
    if (all_digits(v, len)) printf("%.*s", (int)len, v);
    else if (len == 1 && v[0] == '-') fputs("null", stdout);
    else if (len == 3 && memcmp(v, "yes", 3) == 0) fputs("true", stdout);
    else if (len == 2 && memcmp(v, "no", 2) == 0) fputs("false", stdout);
    else json_string(v, len);
}

/* "a,b,c" as ["a","b","c"]; "-" as []. */
static void json_list(const char *v, size_t len)
{
    putchar('[');
    if (!(len == 1 && v[0] == '-')) {
        const char *end = v + len;
        for (const char *p = v; p <= end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            if (p != v) putchar(',');
            json_string(p, (size_t)(stop - p));
            p = stop + 1;
        }
    }
    putchar(']');
}

/* One "lock k=v k=v ..." line as a JSON object. */
static void json_lock(const char *fields)
{
    putchar('{');
    bool first = true;
    for (const char *p = fields; *p;) {
        while (*p == ' ') p++;
        if (*p == '\0') break;
        size_t tok = strcspn(p, " ");
        const char *eq = memchr(p, '=', tok);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - p), vlen = tok - klen - 1;
            if (!first) putchar(',');
            first = false;
            json_string(p, klen);
            putchar(':');
            if ((klen == 3 && memcmp(p, "res", 3) == 0) || (klen == 5 && memcmp(p, "flags", 5) == 0))
                json_list(eq + 1, vlen);
            else if (klen == 2 && memcmp(p, "id", 2) == 0)
                json_string(eq + 1, vlen); /* 8 hex digits can be all digits */
            else json_value(eq + 1, vlen);
        }
        p += tok;
    }
    putchar('}');
}

/* LOCKS, printed as the daemon sends it or as one JSON object:
 * {"locks_held":N,"waiters":N,"shown":N,"truncated":false,"locks":[{...}]}. */
static int cmd_locks(struct redlock_client *c, bool json)
{
    char *block = malloc(LOCKS_BLOCK_MAX);
    if (block == NULL) return EXIT_DAEMON_ERR;
    int rc = redlock_command(c, "LOCKS", block, LOCKS_BLOCK_MAX);
    if (rc != REDLOCK_OK) {
        free(block);
        return daemon_error(c, rc);
    }
    if (strncmp(block, "ERR", 3) == 0) {
        fprintf(stderr, "redlock: %s\n", block);
        int status = strncmp(block, "ERR AUTH", 8) == 0 ? EXIT_NOPERM : EXIT_DAEMON_ERR;
        free(block);
        return status;
    }
    if (!json) {
        puts(block);
        free(block);
        return 0;
    }
    putchar('{');
    bool in_locks = false, first = true;
    for (char *line = block; line != NULL && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (strncmp(line, "lock ", 5) == 0) {
            if (!in_locks) {
                printf("%s\"locks\":[", first ? "" : ",");
                in_locks = true;
                first = true;
            }
            if (!first) putchar(',');
            json_lock(line + 5);
            first = false;
        } else if (!in_locks) {
            size_t klen = strcspn(line, " ");
            const char *v = line[klen] ? line + klen + 1 : line + klen;
            if (!first) putchar(',');
            json_string(line, klen);
            putchar(':');
            json_value(v, strlen(v));
            first = false;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!in_locks) printf("%s\"locks\":[", first ? "" : ",");
    puts("]}");
    free(block);
    return 0;
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
        struct pollfd p[2] = {{.fd = signal_pipe[0], .events = POLLIN},
                              {.fd = redlock_fd(c), .events = POLLIN}};
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

/* Take run's lock: with -w/-n as asked; without, wait until it is had
 * (WAIT for its largest value, again and again, as flock(1) waits). */
static int run_acquire(struct redlock_client *c, const struct lock_args *a, struct redlock_lock *lk)
{
    struct redlock_acquire_opts o = a->opts;
    o.autoextend = true;
    if (!a->wait_given) o.wait_ms = WAIT_FOREVER_MS;
    for (;;) {
        int rc = redlock_acquire(c, a->resources, &o, lk);
        if (a->wait_given || (rc != REDLOCK_ERR_BUSY && rc != REDLOCK_ERR_NOQUORUM)) return rc;
    }
}

static int cmd_run(struct redlock_client *c, const struct lock_args *ap)
{
    struct lock_args a = *ap;
    struct redlock_lock lk;
    int rc = run_acquire(c, &a, &lk);
    if (rc != REDLOCK_OK) {
        fprintf(stderr, "redlock: %s\n", redlock_errstr(c));
        if (rc == REDLOCK_ERR_BADREQ) return EXIT_USAGE;
        if (rc == REDLOCK_ERR_IO || rc == REDLOCK_ERR_TIMEOUT) return EXIT_UNAVAILABLE;
        if (rc == REDLOCK_ERR_AUTH) return EXIT_NOPERM;
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

/* A command line, checked before anything is connected. */
struct cli_cmd {
    const char *name;
    struct lock_args lock; /* acquire, run */
    const char *arg;       /* extend/release: the id; inspect: the resource; raw: the line */
    uint32_t ttl_ms;       /* extend */
    bool json;             /* locks */
};

/* Check the command and its arguments. Returns 0, or EXIT_USAGE after
 * saying what was wrong. */
static int parse_command(int nargs, char **args, struct cli_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    const char *name = cmd->name = args[0];
    if (strcmp(name, "acquire") == 0) return parse_lock_args(nargs, args, false, &cmd->lock);
    if (strcmp(name, "run") == 0) return parse_lock_args(nargs, args, true, &cmd->lock);
    if (strcmp(name, "ping") == 0 || strcmp(name, "info") == 0) {
        if (nargs != 1) return usage_error("%s takes no arguments", name);
        return 0;
    }
    if (strcmp(name, "locks") == 0) {
        if (nargs == 2 && strcmp(args[1], "--json") == 0) cmd->json = true;
        else if (nargs != 1) return usage_error("locks: unexpected argument '%s' (only --json)", args[1]);
        return 0;
    }
    if (strcmp(name, "extend") == 0) {
        if (nargs < 2 || nargs > 3) return usage_error("extend: want ID [TTL_MS]");
        if (nargs == 3 && parse_ms(args[2], &cmd->ttl_ms) != 0)
            return usage_error("extend: TTL_MS wants milliseconds, not '%s'", args[2]);
        cmd->arg = args[1];
        return 0;
    }
    if (strcmp(name, "release") == 0 || strcmp(name, "inspect") == 0 || strcmp(name, "raw") == 0) {
        const char *what = name[1] == 'e' ? "ID" : name[0] == 'i' ? "RES" : "LINE (quoted)";
        if (nargs != 2) return usage_error("%s: want one argument, %s", name, what);
        if (name[0] == 'i' && strpbrk(args[1], " \t\r\n,") != NULL)
            return usage_error("inspect: one resource name, without spaces or commas");
        cmd->arg = args[1];
        return 0;
    }
    return usage_error("unknown command '%s'", name);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"token-file", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *token_file = NULL;
    uint32_t timeout_ms = 0;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:a:T:hV", longs, NULL)) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'K': token_file = optarg; break;
        case 'T':
            if (parse_ms(optarg, &timeout_ms) != 0)
                return usage_error("-T wants milliseconds (0 to 2147483647), not '%s'", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("redlock %s\n", REDLOCK_LIB_VERSION); return 0;
        case ':':
            if (optopt) return usage_error("-%c needs a value", optopt);
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            if (optopt) return usage_error("unknown option -%c", optopt);
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc) return usage_error("no command given");
    struct cli_cmd cmd;
    if (parse_command(argc - optind, argv + optind, &cmd) != 0) return EXIT_USAGE;

    char err[256];
    struct redlock_client *c = redlock_connect(addr, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "redlock: cannot connect: %s\n", err);
        return EXIT_UNAVAILABLE;
    }
    redlock_set_timeout(c, timeout_ms);
    int rc = redlock_auth_file(c, token_file);
    if (rc != REDLOCK_OK) {
        fprintf(stderr, "redlock: %s\n", redlock_errstr(c));
        redlock_close(c);
        return rc == REDLOCK_ERR_ARG ? EXIT_NOINPUT : rc == REDLOCK_ERR_AUTH ? EXIT_NOPERM : EXIT_UNAVAILABLE;
    }
    const char *name = cmd.name;
    if (strcmp(name, "ping") == 0) {
        rc = redlock_ping(c);
        rc = rc == REDLOCK_OK ? (puts("PONG"), 0) : daemon_error(c, rc);
    } else if (strcmp(name, "acquire") == 0) {
        rc = cmd_acquire(c, &cmd.lock);
    } else if (strcmp(name, "extend") == 0) {
        rc = cmd_extend(c, cmd.arg, cmd.ttl_ms);
    } else if (strcmp(name, "release") == 0) {
        rc = redlock_release(c, cmd.arg);
        rc = rc == REDLOCK_OK ? 0 : daemon_error(c, rc);
    } else if (strcmp(name, "info") == 0) {
        rc = cmd_print(c, "INFO");
    } else if (strcmp(name, "inspect") == 0) {
        char line[600];
        snprintf(line, sizeof line, "INSPECT %s", cmd.arg);
        rc = cmd_print(c, line);
    } else if (strcmp(name, "locks") == 0) {
        rc = cmd_locks(c, cmd.json);
    } else if (strcmp(name, "raw") == 0) {
        rc = cmd_print(c, cmd.arg);
    } else {
        rc = cmd_run(c, &cmd.lock);
    }
    if (rc == EXIT_NOPERM && (token_file == NULL || token_file[0] == '\0') &&
        (getenv(REDLOCK_TOKEN_FILE_ENV) == NULL || getenv(REDLOCK_TOKEN_FILE_ENV)[0] == '\0'))
        fprintf(stderr, "redlock: this daemon wants a token: set REDLOCK_TOKEN_FILE or --token-file FILE\n");
    redlock_close(c);
    return rc;
}
