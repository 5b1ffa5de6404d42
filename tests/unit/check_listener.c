/* check_listener.c - socket options the listener sets on accepted sockets,
 * read back with getsockopt on a real loopback TCP pair. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"

/* An accepted loopback TCP socket (its peer in *peer, the listener closed). */
static int accepted_pair(int *peer)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    *peer = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(*peer, (struct sockaddr *)&sa, sizeof sa), 0);
    int fd = accept(l, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    close(l);
    return fd;
}

static int opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

START_TEST(keepalive_intervals)
{
    static const struct {
        unsigned idle, intvl;
    } cases[] = {{15, 5}, {1, 1}, {2, 1}, {300, 100}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int peer, fd = accepted_pair(&peer);
        ck_assert_int_eq(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0); /* Linux's default: off */
        ck_assert_int_eq(listener_set_keepalive(fd, cases[i].idle), 0);
        ck_assert_int_eq(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
        ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), (int)cases[i].idle);
        ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), (int)cases[i].intvl);
        ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPCNT), LISTENER_KEEPALIVE_PROBES);
        close(fd);
        close(peer);
    }
}
END_TEST

START_TEST(keepalive_off)
{
    int peer, fd = accepted_pair(&peer);
    ck_assert_int_eq(listener_set_keepalive(fd, 15), 0);
    ck_assert_int_eq(listener_set_keepalive(fd, 0), 0);
    ck_assert_int_eq(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    close(fd);
    close(peer);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listener");
    TCase *tc = tcase_create("sockopts");
    tcase_add_test(tc, keepalive_intervals);
    tcase_add_test(tc, keepalive_off);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
