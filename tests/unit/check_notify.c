/*
 * check_notify.c - unit tests for daemon/notify.c: the sd_notify datagram
 * protocol on a fake NOTIFY_SOCKET (path and abstract namespace), the
 * watchdog interval, and socket activation with fake LISTEN_* variables.
 *
 * Socket-activation cases run in a forked child that dup2()s sockets onto
 * fds 3.. (check's own descriptors in the test process may sit there); the
 * child reports through its exit status which check failed.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

#define RECV_TIMEOUT_MS 2000

/* ---- Fixture: a fake NOTIFY_SOCKET ---------------------------------------- */

static char tmpdir[64];
static char sockpath[100]; /* fits sun_path */
static int rx = -1;        /* the receiving datagram socket */

static void clear_env(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

static void setup(void)
{
    clear_env();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/check_notify.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    sockpath[0] = '\0';
    rx = -1;
}

static void teardown(void)
{
    if (rx >= 0) close(rx);
    rx = -1;
    if (sockpath[0] != '\0') unlink(sockpath);
    rmdir(tmpdir);
    clear_env();
    notify_init(); /* forget the fake socket */
}

/* Bind rx to a filesystem path in tmpdir and point NOTIFY_SOCKET at it. */
static void listen_path(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sockpath, sizeof sockpath, "%s/notify.sock", tmpdir);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
    rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(rx, 0);
    ck_assert_int_eq(bind(rx, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", sockpath, 1), 0);
}

/* Bind rx to an abstract name and set NOTIFY_SOCKET to "@name". */
static void listen_abstract(char *env, size_t envlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char name[64];
    snprintf(name, sizeof name, "redlockd-check-notify-%ld-%ld", (long)getpid(), (long)time(NULL));
    size_t len = strlen(name);
    memcpy(sa.sun_path + 1, name, len); /* sun_path[0] = '\0': abstract */
    rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(rx, 0);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    ck_assert_int_eq(bind(rx, (struct sockaddr *)&sa, salen), 0);
    snprintf(env, envlen, "@%s", name);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", env, 1), 0);
}

/* Receive one datagram into buf (NUL-terminated), waiting up to RECV_TIMEOUT_MS. */
static size_t recv_msg(char *buf, size_t buflen)
{
    struct pollfd p = {.fd = rx, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, RECV_TIMEOUT_MS) == 1, "no notification within %d ms", RECV_TIMEOUT_MS);
    ssize_t n = recv(rx, buf, buflen - 1, MSG_DONTWAIT);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return (size_t)n;
}

static unsigned long long monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

/* True when no datagram is waiting. */
static bool rx_empty(void)
{
    struct pollfd p = {.fd = rx, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* ---- Not under systemd ---------------------------------------------------- */

START_TEST(no_env_is_noop)
{
    ck_assert_int_eq(notify_init(), 0);
    ck_assert_int_eq(notify_send("READY=1"), 0);
    ck_assert_int_eq(notify_reloading(), 0);
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 0);
    struct notify_listen_fd fds[2];
    ck_assert_int_eq(notify_listen_fds(fds, 2), 0);
}
END_TEST

START_TEST(empty_env_is_noop)
{
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(notify_init(), 0);
    ck_assert_int_eq(notify_send("READY=1"), 0);
}
END_TEST

START_TEST(malformed_socket_disables)
{
    setenv("NOTIFY_SOCKET", "relative/path.sock", 1);
    errno = 0;
    ck_assert_int_eq(notify_init(), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(notify_send("READY=1"), 0);

    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    errno = 0;
    ck_assert_int_eq(notify_init(), -1);
    ck_assert_int_eq(errno, ENAMETOOLONG);

    setenv("NOTIFY_SOCKET", "@", 1);
    ck_assert_int_eq(notify_init(), -1);
    ck_assert_int_eq(notify_send("READY=1"), 0);
}
END_TEST

/* ---- Sending -------------------------------------------------------------- */

START_TEST(send_path_sequence)
{
    char buf[8192];
    listen_path();
    ck_assert_int_eq(notify_init(), 1);
    ck_assert_int_eq(notify_send("READY=1"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "READY=1");

    ck_assert_int_eq(notify_send("STATUS=%u/%u masters up, quorum %s", 2u, 3u, "ok"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "STATUS=2/3 masters up, quorum ok");

    ck_assert_int_eq(notify_send("WATCHDOG=1"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "WATCHDOG=1");

    ck_assert_int_eq(notify_send("STOPPING=1\nSTATUS=%s", "shutting down"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "STOPPING=1\nSTATUS=shutting down");
    ck_assert(rx_empty());
}
END_TEST

START_TEST(send_abstract)
{
    char env[80], buf[256];
    listen_abstract(env, sizeof env);
    ck_assert_int_eq(notify_init(), 1);
    ck_assert_int_eq(notify_send("READY=1"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "READY=1");
    ck_assert_int_eq(notify_send("STOPPING=1"), 1);
    recv_msg(buf, sizeof buf);
    ck_assert_str_eq(buf, "STOPPING=1");
}
END_TEST

START_TEST(send_reloading)
{
    char buf[256];
    listen_path();
    ck_assert_int_eq(notify_init(), 1);
    unsigned long long before = monotonic_usec();
    ck_assert_int_eq(notify_reloading(), 1);
    unsigned long long after = monotonic_usec();
    recv_msg(buf, sizeof buf);
    const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";
    ck_assert_int_eq(strncmp(buf, prefix, strlen(prefix)), 0);
    char *end;
    unsigned long long usec = strtoull(buf + strlen(prefix), &end, 10);
    ck_assert_int_eq(*end, '\0');
    ck_assert(usec >= before && usec <= after);
}
END_TEST

START_TEST(send_long_message_is_cut)
{
    static char big[6000], buf[8192];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    listen_path();
    ck_assert_int_eq(notify_init(), 1);
    ck_assert_int_eq(notify_send("STATUS=%s", big), 1);
    size_t n = recv_msg(buf, sizeof buf);
    ck_assert_uint_eq(n, 4095);
    ck_assert_int_eq(strncmp(buf, "STATUS=aaa", 10), 0);
}
END_TEST

START_TEST(send_nobody_listening)
{
    char path[100];
    snprintf(path, sizeof path, "%s/absent.sock", tmpdir);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(notify_init(), 1);
    errno = 0;
    ck_assert_int_eq(notify_send("READY=1"), -1);
    ck_assert(errno == ENOENT || errno == ECONNREFUSED);
}
END_TEST

START_TEST(send_comes_from_this_pid)
{
    char buf[256], cbuf[CMSG_SPACE(sizeof(struct ucred))];
    listen_path();
    int one = 1;
    ck_assert_int_eq(setsockopt(rx, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
    ck_assert_int_eq(notify_init(), 1);
    ck_assert_int_eq(notify_send("READY=1"), 1);
    struct pollfd p = {.fd = rx, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, RECV_TIMEOUT_MS), 1);
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(rx, &mh, 0);
    ck_assert_int_eq(n, 7);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    ck_assert_ptr_nonnull(cm);
    ck_assert_int_eq(cm->cmsg_type, SCM_CREDENTIALS);
    struct ucred cred;
    memcpy(&cred, CMSG_DATA(cm), sizeof cred);
    ck_assert_int_eq(cred.pid, getpid()); /* systemd's NotifyAccess=main checks this */
}
END_TEST

/* ---- Watchdog ------------------------------------------------------------- */

START_TEST(watchdog_interval)
{
    char pid[32];
    listen_path();
    ck_assert_int_eq(notify_init(), 1);
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 0); /* no WATCHDOG_USEC */

    setenv("WATCHDOG_USEC", "10000000", 1);
    notify_init();
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 5000000);

    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    notify_init();
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 5000000);

    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    notify_init();
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 0); /* another process's watchdog */
    unsetenv("WATCHDOG_PID");

    const char *bad[] = {"0", "-5", "abc", "10s", " 100", "", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("WATCHDOG_USEC", bad[i], 1);
        notify_init();
        ck_assert_msg(notify_watchdog_interval_usec() == 0, "WATCHDOG_USEC=\"%s\"", bad[i]);
    }

    /* A watchdog with nowhere to send keep-alives is no watchdog. */
    setenv("WATCHDOG_USEC", "10000000", 1);
    unsetenv("NOTIFY_SOCKET");
    notify_init();
    ck_assert_uint_eq(notify_watchdog_interval_usec(), 0);
}
END_TEST

/* ---- Socket activation ---------------------------------------------------- */

static int tcp_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static int unix_listener(const char path[100])
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) return -1;
    return fd;
}

/* In the child: fail with a message and exit status line. */
#define CHILD_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "check_notify child: line %d: %s\n", __LINE__, #cond); \
            _exit(1); \
        } \
    } while (0)

/* Run fn in a forked child and assert it exits 0. */
static void in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status %d)", status);
}

static void set_listen_env(long pid, const char *nfds, const char *names)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", pid);
    setenv("LISTEN_PID", buf, 1);
    setenv("LISTEN_FDS", nfds, 1);
    if (names) setenv("LISTEN_FDNAMES", names, 1);
}

static bool listen_env_gone(void)
{
    return getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL && getenv("LISTEN_FDNAMES") == NULL;
}

static void child_activation(void)
{
    char path[100];
    int port = 0;
    snprintf(path, sizeof path, "%s/listen.sock", tmpdir);
    int tcp = tcp_listener(&port);
    int un = unix_listener(path);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    CHILD_CHECK(tcp >= 0 && un >= 0 && udp >= 0);
    /* Move them above 10 first so dup2 onto 3..5 never clobbers one of them. */
    int t = fcntl(tcp, F_DUPFD, 10), u = fcntl(un, F_DUPFD, 10), d = fcntl(udp, F_DUPFD, 10);
    CHILD_CHECK(dup2(t, 3) == 3 && dup2(u, 4) == 4 && dup2(d, 5) == 5);
    close(t), close(u), close(d);
    if (tcp > 5) close(tcp);
    if (un > 5) close(un);
    if (udp > 5) close(udp);

    struct notify_listen_fd fds[4];
    set_listen_env((long)getpid(), "3", "tcp:unix:dgram");
    int n = notify_listen_fds(fds, 4);
    CHILD_CHECK(n == 3);
    CHILD_CHECK(listen_env_gone());

    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CHILD_CHECK(fds[0].fd == 3 && fds[0].kind == NOTIFY_SOCK_TCP);
    CHILD_CHECK(strcmp(fds[0].name, "tcp") == 0 && strcmp(fds[0].addr, want) == 0);
    CHILD_CHECK(fds[1].fd == 4 && fds[1].kind == NOTIFY_SOCK_UNIX);
    CHILD_CHECK(strcmp(fds[1].name, "unix") == 0 && strcmp(fds[1].addr, path) == 0);
    CHILD_CHECK(fds[2].fd == 5 && fds[2].kind == NOTIFY_SOCK_OTHER); /* a datagram socket */
    CHILD_CHECK(strcmp(fds[2].name, "dgram") == 0);
    for (int fd = 3; fd <= 5; fd++) {
        CHILD_CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        CHILD_CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    }
    CHILD_CHECK(strcmp(notify_sock_kind_name(fds[0].kind), "tcp") == 0);
    CHILD_CHECK(strcmp(notify_sock_kind_name(fds[1].kind), "unix") == 0);
    CHILD_CHECK(strcmp(notify_sock_kind_name(fds[2].kind), "other") == 0);

    /* Consumed: a second call finds nothing. */
    CHILD_CHECK(notify_listen_fds(fds, 4) == 0);

    /* Without LISTEN_FDNAMES, or with fewer names than fds, names are "". */
    set_listen_env((long)getpid(), "2", "only-one");
    CHILD_CHECK(notify_listen_fds(fds, 4) == 2);
    CHILD_CHECK(strcmp(fds[0].name, "only-one") == 0 && fds[1].name[0] == '\0');
    set_listen_env((long)getpid(), "1", NULL);
    CHILD_CHECK(notify_listen_fds(fds, 4) == 1 && fds[0].name[0] == '\0');

    /* More fds than the caller has room for. */
    set_listen_env((long)getpid(), "3", NULL);
    errno = 0;
    CHILD_CHECK(notify_listen_fds(fds, 2) == -1 && errno == E2BIG);
    CHILD_CHECK(listen_env_gone());

    /* A passed fd that is not open. */
    close(5);
    set_listen_env((long)getpid(), "3", NULL);
    errno = 0;
    CHILD_CHECK(notify_listen_fds(fds, 4) == -1 && errno == EBADF);
    unlink(path);
}

START_TEST(listen_fds_activation)
{
    in_child(child_activation);
}
END_TEST

static void child_foreign_and_malformed(void)
{
    struct notify_listen_fd fds[2];
    /* Meant for another process (e.g. inherited from a parent): ignored, unset. */
    set_listen_env((long)getpid() + 1, "2", "a:b");
    CHILD_CHECK(notify_listen_fds(fds, 2) == 0);
    CHILD_CHECK(listen_env_gone());

    const char *bad_pid[] = {"", "abc", "-1", "12x"};
    for (size_t i = 0; i < sizeof bad_pid / sizeof bad_pid[0]; i++) {
        setenv("LISTEN_PID", bad_pid[i], 1);
        setenv("LISTEN_FDS", "1", 1);
        errno = 0;
        CHILD_CHECK(notify_listen_fds(fds, 2) == -1 && errno == EINVAL);
        CHILD_CHECK(listen_env_gone());
    }
    const char *bad_n[] = {"", "x", "-1", "1 ", "99999999999"};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        set_listen_env((long)getpid(), bad_n[i], NULL);
        errno = 0;
        CHILD_CHECK(notify_listen_fds(fds, 2) == -1 && errno == EINVAL);
        CHILD_CHECK(listen_env_gone());
    }
    /* LISTEN_FDS=0: nothing passed. LISTEN_PID without LISTEN_FDS: the same. */
    set_listen_env((long)getpid(), "0", NULL);
    CHILD_CHECK(notify_listen_fds(fds, 2) == 0);
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", (long)getpid());
    setenv("LISTEN_PID", buf, 1);
    CHILD_CHECK(notify_listen_fds(fds, 2) == 0);
    CHILD_CHECK(listen_env_gone());
}

START_TEST(listen_fds_foreign_and_malformed)
{
    in_child(child_foreign_and_malformed);
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");

    TCase *tc = tcase_create("send");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, no_env_is_noop);
    tcase_add_test(tc, empty_env_is_noop);
    tcase_add_test(tc, malformed_socket_disables);
    tcase_add_test(tc, send_path_sequence);
    tcase_add_test(tc, send_abstract);
    tcase_add_test(tc, send_reloading);
    tcase_add_test(tc, send_long_message_is_cut);
    tcase_add_test(tc, send_nobody_listening);
    tcase_add_test(tc, send_comes_from_this_pid);
    suite_add_tcase(s, tc);

    tc = tcase_create("watchdog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, watchdog_interval);
    suite_add_tcase(s, tc);

    tc = tcase_create("listen_fds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, listen_fds_activation);
    tcase_add_test(tc, listen_fds_foreign_and_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(notify_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
