/*
 * fakemaster.h - a hostile Redis master for integration tests.
 *
 * A thread in the test process listens on 127.0.0.1:<free port> and speaks
 * just enough RESP to pass redlockd's handshake (AUTH, SCRIPT LOAD answered
 * with the script's real SHA1, INFO server with a run_id, PING), then
 * misbehaves as told: an unsolicited reply after the handshake, a refused
 * AUTH, a wrong sha, an endless bulk reply. Commands it does not know (the
 * lock scripts, SET, ...) get "-ERR fakemaster ...". It is not a Redis mock
 * for lock tests: use real redis-servers for the majority and this for the
 * one master that lies.
 *
 * fm_start() and fm_stop() belong to the test's main thread; the counters
 * may be read at any time. fm_stop() closes every socket and joins the
 * thread, so nothing outlives the test.
 */
#ifndef REDLOCK_FAKEMASTER_H
#define REDLOCK_FAKEMASTER_H

#include <stdbool.h>
#include <stdint.h>

struct fm_opts {
    /* AUTH is answered "-<auth_error>" (e.g. "WRONGPASS invalid username-password
     * pair"); NULL: "+OK". */
    const char *auth_error;
    /* SCRIPT LOAD is answered with a sha that is not the script's SHA1. */
    bool wrong_sha;
    /* Sent once per connection, 100 ms after INFO was answered, when every
     * command read so far is answered (e.g. "+OK\r\n": an unsolicited reply).
     * NULL: nothing. */
    const char *after_handshake;
    /* The reply to this command (e.g. "INFO", "PING") is "$1000000000\r\n"
     * followed by stream_bytes bytes of 'x', written as fast as the peer
     * reads. NULL: none. */
    const char *stream_on;
    uint64_t stream_bytes;
    /* Close each connection this long after INFO was answered (the master
     * keeps reconnecting). 0: never. */
    unsigned close_after_ms;
};

struct fakemaster;

/* Start listening and serving. o is copied (strings must outlive the fake
 * master). Returns NULL (why on stderr) on failure. */
struct fakemaster *fm_start(const struct fm_opts *o);

/* The port it listens on (127.0.0.1). */
int fm_port(const struct fakemaster *f);

/* Connections accepted so far. */
unsigned fm_connections(const struct fakemaster *f);
/* INFO replies sent so far (handshakes answered). */
unsigned fm_handshakes(const struct fakemaster *f);
/* after_handshake bytes sent so far (connections that got them). */
unsigned fm_injected(const struct fakemaster *f);
/* The most stream bytes one connection took before it closed or ended. */
uint64_t fm_max_streamed(const struct fakemaster *f);

/* Stop the thread, close every socket, free f. NULL is a no-op. */
void fm_stop(struct fakemaster *f);

#endif
