"""Tests of redlock_client against a real redlockd and three real redis-server.

    python3 -m unittest -v test_redlock_client        (from client-lib/python/)

Environment: REDLOCKD_BIN (default ./build/redlockd; a relative path is looked
up from the current directory, then from the repository root), REDIS_SERVER_BIN
(default redis-server), H_KEEP_TMP=1 keeps the temp dir.
REDLOCK_CLIENT_INSTALLED=1 tests the installed package instead of the source
next to this file, and checks that it was imported from the running venv:
scripts/test-clients.sh runs a copy of this file in a temp dir with the python
of a venv the package was pip-installed into (give REDLOCKD_BIN as an absolute
path then: the copy is not in the repository).
Every process is started here and stopped by its pid; nothing waits with a bare
sleep: conditions are polled against deadlines.
"""

import os
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INSTALLED = os.environ.get("REDLOCK_CLIENT_INSTALLED", "0") not in ("", "0")
if not INSTALLED:
    sys.path.insert(0, HERE)

import redlock_client as rc  # noqa: E402


# ---- Harness: redis-server x3 + redlockd, by pid ------------------------------------

def _bin(env, default):
    # A relative path: from the current directory if it is there, else from
    # the repository root.
    path = os.environ.get(env) or default
    if os.sep in path and not os.path.isabs(path):
        path = os.path.abspath(path) if os.path.exists(path) else os.path.join(ROOT, path)
    return path


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _die_with_parent():
    # Children get SIGKILL if the test process dies (Linux); best effort.
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, _signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.01)


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Cluster:
    """Three redis-server masters and one redlockd, in a temp dir."""

    def __init__(self, lock_opts="", redis_opts="master_timeout_ms = 100\n", token=None):
        self.procs = []
        self.token = token
        tmp = os.environ.get("TMPDIR") or "/tmp"
        if len(tmp) > 60:
            tmp = "/tmp"  # Unix socket paths are short
        self.dir = tempfile.mkdtemp(prefix="redlock-py-", dir=tmp)
        self.masters = []   # [(port, Popen)]
        try:
            for i in range(3):
                self.masters.append(self._start_redis(i))
            self._start_daemon(lock_opts, redis_opts)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, argv, log):
        with open(log, "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.procs.append(p)
        return p

    def _start_redis(self, i):
        redis = os.environ.get("REDIS_SERVER_BIN") or "redis-server"
        d = os.path.join(self.dir, "redis%d" % i)
        os.mkdir(d)
        for _ in range(5):
            port = _free_port()
            p = self._spawn([redis, "--save", "", "--appendonly", "no", "--port", str(port),
                             "--bind", "127.0.0.1", "--daemonize", "no", "--dir", d],
                            os.path.join(d, "redis.log"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and p.poll() is None:
                if _redis_ping(port):
                    return port, p
                time.sleep(0.01)
            self._kill(p)   # port taken, or too slow: try another
        raise RuntimeError("redis-server did not start; see %s/redis.log" % d)

    def _start_daemon(self, lock_opts, redis_opts):
        binary = _bin("REDLOCKD_BIN", "./build/redlockd")
        if not os.access(binary, os.X_OK):
            raise RuntimeError("%s is not executable (build it, or set REDLOCKD_BIN)" % binary)
        self.sock = os.path.join(self.dir, "redlockd.sock")
        self.log = os.path.join(self.dir, "redlockd.log")
        ini = os.path.join(self.dir, "redlockd.ini")
        for _ in range(3):
            port = _free_port()
            self.tcp = "127.0.0.1:%d" % port
            server_opts = ""
            if self.token is not None:
                self.token_file = os.path.join(self.dir, "token")
                with open(self.token_file, "w") as f:
                    f.write(self.token + "\n")
                server_opts = "auth_token_file = %s\n" % self.token_file
            with open(ini, "w") as f:
                f.write("[server]\nlisten = %s\nunix_socket = %s\n%s" % (self.tcp, self.sock,
                                                                       server_opts))
                f.write("[redis]\nmasters = %s\n%s" % (
                    ", ".join("127.0.0.1:%d" % port for port, _ in self.masters), redis_opts))
                f.write("[lock]\n%s[log]\nlevel = info\n" % lock_opts)
            p = self._spawn([binary, "-c", ini], self.log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and p.poll() is None:
                if self._daemon_ping():
                    self.daemon = p
                    return
                time.sleep(0.01)
            self._kill(p)
        raise RuntimeError("redlockd did not start:\n" + self.log_tail())

    def _daemon_ping(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.sock)
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                return reply.startswith(b"PONG") or (self.token is not None and
                                                     reply.startswith(b"ERR AUTH"))
        except OSError:
            return False

    def log_tail(self, n=40):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def client(self, unix=True, **kw):
        return rc.Client(self.sock if unix else self.tcp, **kw)

    def pause(self, i):
        port, p = self.masters[i]
        os.kill(p.pid, _signal.SIGSTOP)
        wait_until(lambda: _proc_state(p.pid) in ("T", "t"), 2, "master %d to stop" % i)

    def resume(self, i):
        port, p = self.masters[i]
        os.kill(p.pid, _signal.SIGCONT)
        wait_until(lambda: _proc_state(p.pid) not in ("T", "t"), 2, "master %d to resume" % i)

    @staticmethod
    def _kill(p):
        if p.poll() is None:
            try:
                os.kill(p.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()

    def stop(self):
        for p in reversed(self.procs):
            self._kill(p)
        self.procs = []
        if os.environ.get("H_KEEP_TMP", "0") not in ("", "0"):
            sys.stderr.write("kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


class ClusterTest(unittest.TestCase):
    """One cluster per test class; each test closes the clients it opens."""

    cluster_opts = {}

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(**cls.cluster_opts)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def run(self, result=None):
        # On failure, show the daemon's log.
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            sys.stderr.write("\n---- redlockd log (%s) ----\n%s---- end ----\n"
                             % (self.id(), self.cluster.log_tail()))
        return out

    def client(self, **kw):
        c = self.cluster.client(**kw)
        self.addCleanup(c.close)
        return c

    def res(self, suffix=""):
        return "py:" + self._testMethodName + suffix


# ---- Tests -------------------------------------------------------------------------

class TestPackage(unittest.TestCase):

    @unittest.skipUnless(INSTALLED, "REDLOCK_CLIENT_INSTALLED is not set: testing the source")
    def test_imported_from_installed_package(self):
        # In a venv, sys.prefix is the venv (and differs from base_prefix).
        self.assertNotEqual(sys.prefix, sys.base_prefix, "not running in a venv")
        path = os.path.realpath(rc.__file__)
        venv = os.path.realpath(sys.prefix)
        self.assertTrue(path.startswith(venv + os.sep),
                        "redlock_client imported from %s, not from the venv %s" % (path, venv))
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(path), "py.typed")),
                        "no py.typed next to %s" % path)
        from importlib import metadata
        self.assertEqual(metadata.version("redlockd-client"), rc.__version__)


class TestBasics(ClusterTest):

    def test_ping_unix_and_tcp(self):
        self.assertIs(self.client().ping(), True)
        self.assertIs(self.client(unix=False).ping(), True)

    def test_default_addr_from_env(self):
        old = os.environ.get("REDLOCK_ADDR")
        os.environ["REDLOCK_ADDR"] = self.cluster.tcp
        try:
            c = rc.Client()
            self.addCleanup(c.close)
            self.assertEqual(c.addr, self.cluster.tcp)
            self.assertTrue(c.ping())
        finally:
            if old is None:
                del os.environ["REDLOCK_ADDR"]
            else:
                os.environ["REDLOCK_ADDR"] = old

    def test_connect_refused(self):
        with self.assertRaises(rc.ConnectionLostError) as cm:
            rc.Client("127.0.0.1:%d" % _free_port(), timeout=2)
        self.assertEqual(cm.exception.code, "CONNECTION")
        with self.assertRaises(rc.ConnectionLostError):
            rc.Client(os.path.join(self.cluster.dir, "nothing.sock"))

    def test_acquire_release(self):
        c = self.client()
        lock = c.acquire(self.res("a") + "," + self.res("b"), ttl_ms=10000)
        self.assertRegex(lock.id, r"^[0-9a-f]{32}$")
        self.assertGreater(lock.validity_ms, 0)
        self.assertLessEqual(lock.validity_ms, 10000)
        self.assertTrue(lock.fence is None or isinstance(lock.fence, int))
        self.assertEqual(lock.resources, (self.res("a"), self.res("b")))
        self.assertGreater(lock.remaining_ms(), 9000)
        c.release(lock)
        with self.assertRaises(rc.NotHeldError) as cm:
            c.release(lock.id)
        self.assertEqual(cm.exception.code, "NOTHELD")
        again = c.acquire([self.res("a")], ttl_ms=10000, wait_ms=0)
        again.release()

    def test_wait_counts_validity_from_the_reply(self):
        # PROTOCOL.md 8.2: after a WAIT longer than the lock's TTL the validity
        # counts from the reply, not from the send (which would make a fresh
        # lock look expired). The holder's lock simply expires: no sleep.
        c1, c2 = self.client(), self.client()
        c1.acquire(self.res(), ttl_ms=1500)
        lock = c2.acquire(self.res(), ttl_ms=1000, wait_ms=20000)
        self.assertGreater(lock.remaining_ms(), 500, "validity %d counted from the send" % lock.validity_ms)
        c2.release(lock)
        # Without WAIT it counts from the send (the safe side): never more than the reply's.
        plain = c2.acquire(self.res(), ttl_ms=10000)
        self.assertLessEqual(plain.remaining_ms(), plain.validity_ms)
        c2.release(plain)

    def test_busy_with_second_client(self):
        c1, c2 = self.client(), self.client(unix=False)
        lock = c1.acquire(self.res(), ttl_ms=10000)
        t0 = time.monotonic()
        with self.assertRaises(rc.BusyError) as cm:
            c2.acquire(self.res(), wait_ms=0)
        self.assertEqual(cm.exception.code, "BUSY")
        self.assertIsInstance(cm.exception, rc.RedlockError)
        self.assertTrue(cm.exception.text)
        self.assertLess(time.monotonic() - t0, 1.0)
        c1.release(lock)
        c2.release(c2.acquire(self.res(), wait_ms=0))

    def test_shared_and_permits(self):
        c1, c2 = self.client(), self.client(unix=False)
        r = self.res("rw")
        r1 = c1.acquire(r, ttl_ms=10000, shared=True)
        r2 = c2.acquire(r, ttl_ms=10000, shared=True, wait_ms=0)
        with self.assertRaises(rc.BusyError):
            c2.acquire(r, ttl_ms=10000, wait_ms=0)
        r1.release()
        r2.release()
        c2.acquire(r, ttl_ms=10000, wait_ms=0).release()
        s = self.res("sem")
        p1 = c1.acquire(s, ttl_ms=10000, permits=2)
        p2 = c2.acquire(s, ttl_ms=10000, permits=2, wait_ms=0)
        with self.assertRaises(rc.BusyError):
            c1.acquire(s, ttl_ms=10000, permits=2, wait_ms=0)
        with self.assertRaises(rc.RedlockError) as cm:
            c1.acquire(s, ttl_ms=10000, permits=3, wait_ms=0)
        self.assertEqual(cm.exception.code, "BADREQ")
        self.assertIn("PERMITS 2", cm.exception.text)
        p1.release()
        p2.release()
        for bad in (0, 1001, True, "2"):
            with self.assertRaises(ValueError):
                c1.acquire(s, permits=bad)

    def test_wait_gets_lock_after_release(self):
        c1, c2 = self.client(), self.client()
        lock = c1.acquire(self.res(), ttl_ms=30000)
        got = {}

        def waiter():
            try:
                got["lock"] = c2.acquire(self.res(), ttl_ms=30000, wait_ms=10000)
            except Exception as e:  # reported below
                got["error"] = e
            got["at"] = time.monotonic()

        t = threading.Thread(target=waiter)
        t.start()
        try:
            wait_until(lambda: c1.info()["waiters"] >= 1, 5, "the second ACQUIRE to wait")
            self.assertNotIn("at", got)
            released = time.monotonic()
            c1.release(lock)
        finally:
            t.join(15)
        self.assertNotIn("error", got)
        self.assertLess(got["at"] - released, 1.0, "the waiter was not handed the lock promptly")
        self.assertNotEqual(got["lock"].id, lock.id)
        c2.release(got["lock"])

    def test_wait_times_out_with_busy(self):
        c1, c2 = self.client(), self.client()
        lock = c1.acquire(self.res(), ttl_ms=30000)
        t0 = time.monotonic()
        with self.assertRaises(rc.BusyError):
            c2.acquire(self.res(), wait_ms=300)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 2.0)
        c1.release(lock)

    def test_extend(self):
        c = self.client()
        lock = c.acquire(self.res(), ttl_ms=1000)
        same = c.extend(lock, 20000)
        self.assertIs(same, lock)
        self.assertGreater(lock.validity_ms, 15000)
        self.assertEqual(lock.ttl_ms, 1000)
        by_id = c.extend(lock.id)        # default: the ttl it was acquired with
        self.assertEqual(by_id.id, lock.id)
        self.assertGreater(by_id.validity_ms, 900)
        self.assertLessEqual(by_id.validity_ms, 1000)
        lock.extend(5000)
        self.assertLessEqual(lock.validity_ms, 5000)
        c.release(lock)
        with self.assertRaises(rc.NotHeldError):
            c.extend(lock)
        with self.assertRaises(rc.NotHeldError):
            c.extend("0" * 32)

    def test_extend_after_expiry_is_notheld(self):
        c = self.client()
        res = self.res()
        lock = c.acquire(res, ttl_ms=200)
        wait_until(lambda: lock.remaining_ms() == 0, 2, "the validity to run out")
        # The client counts the validity from its request, a round trip earlier
        # than the daemon does; once the keys are gone from the masters (the TTL
        # outlives the validity) the daemon's validity is surely over too.
        wait_until(lambda: c.inspect(res).get("state") == "free", 2, "the keys to expire")
        with self.assertRaises(rc.NotHeldError):
            c.extend(lock)

    def test_close_releases_connection_locks(self):
        c1, c2 = self.cluster.client(), self.client()
        lock = c1.acquire(self.res(), ttl_ms=30000)
        c1.close()
        self.assertTrue(c1.closed)
        self.assertEqual(lock.lost, "DISCONNECTED")
        t0 = time.monotonic()
        got = c2.acquire(self.res(), ttl_ms=30000, wait_ms=5000)
        self.assertLess(time.monotonic() - t0, 1.0)
        c2.release(got)
        with self.assertRaises(rc.ConnectionLostError):
            c1.ping()
        c1.close()  # twice is fine

    def test_detach_survives_close(self):
        c1 = self.cluster.client()
        lock = c1.acquire(self.res(), ttl_ms=30000, detach=True)
        self.assertTrue(lock.detach)
        c1.close()
        self.assertIsNone(lock.lost)
        c2 = self.client()
        with self.assertRaises(rc.BusyError):
            c2.acquire(self.res(), wait_ms=0)
        ext = c2.extend(lock.id, 30000)        # any connection may extend it by id
        self.assertGreater(ext.validity_ms, 0)
        c2.release(lock.id)                    # ... and release it
        c2.release(c2.acquire(self.res(), wait_ms=0))

    def test_lock_context_manager(self):
        c, other = self.client(), self.client()
        with c.lock(self.res(), ttl_ms=10000, wait_ms=1000) as lock:
            self.assertIsInstance(lock, rc.Lock)
            with self.assertRaises(rc.BusyError):
                other.acquire(self.res(), wait_ms=0)
        other.release(other.acquire(self.res(), wait_ms=0))

    def test_lock_context_manager_releases_on_exception(self):
        c, other = self.client(), self.client()

        class Boom(Exception):
            pass

        with self.assertRaises(Boom):
            with c.lock(self.res(), ttl_ms=10000):
                raise Boom()
        # Released at once (the TTL would take 10 s).
        other.release(other.acquire(self.res(), wait_ms=0))
        self.assertEqual(c.info()["locks_held"], 0)

    def test_lock_context_manager_expired_raises_notheld(self):
        c = self.client()
        res = self.res()
        with self.assertRaises(rc.NotHeldError):
            with c.lock(res, ttl_ms=150) as lock:
                wait_until(lambda: lock.remaining_ms() == 0, 3, "the lock to expire")
                # The daemon's validity ends a round trip after the client's
                # (see test_extend_after_expiry_is_notheld): wait for the keys.
                wait_until(lambda: c.inspect(res).get("state") == "free", 3, "the keys to expire")

    def test_using_keeps_short_lock(self):
        c, other = self.client(), self.client()
        t0 = time.monotonic()
        with c.using(self.res(), ttl_ms=500) as sig:
            self.assertFalse(sig.aborted)
            self.assertIsNone(sig.error)
            while time.monotonic() - t0 < 1.5:   # three TTLs of work, in steps
                sig.check()
                self.assertFalse(sig.wait(0.05))
            with self.assertRaises(rc.BusyError):
                other.acquire(self.res(), wait_ms=0)
            sig.check()
            self.assertTrue(sig.lock.autoextend)
        self.assertFalse(sig.aborted)
        other.release(other.acquire(self.res(), wait_ms=0))

    def test_using_maxhold_aborts_signal_and_calls_on_lost(self):
        events = []
        c = self.client()
        c.on_lost = lambda lid, reason: events.append((lid, reason))
        with self.assertRaises(rc.LostError) as cm:
            with c.using(self.res(), ttl_ms=300, maxhold_ms=600) as sig:
                self.assertTrue(sig.wait(5), "no EVENT LOST MAXHOLD within 5 s")
                self.assertEqual(sig.reason, "MAXHOLD")
                self.assertIsInstance(sig.error, rc.LostError)
                self.assertEqual(sig.lock.lost, "MAXHOLD")
                # the block goes on without checking: exit reports the loss
        self.assertEqual(cm.exception.reason, "MAXHOLD")
        self.assertEqual(cm.exception.code, "LOST")
        self.assertEqual(events, [(sig.lock.id, "MAXHOLD")])
        with self.assertRaises(rc.NotHeldError):
            c.release(sig.lock)

    def test_using_check_raises_in_block(self):
        c = self.client()
        with self.assertRaises(rc.LostError):
            with c.using(self.res(), ttl_ms=300, maxhold_ms=400) as sig:
                wait_until(lambda: sig.aborted, 5, "the signal")
                sig.check()
                self.fail("check() did not raise")

    def test_using_busy_raises_before_block(self):
        c, other = self.client(), self.client()
        lock = c.acquire(self.res(), ttl_ms=10000)
        ran = []
        with self.assertRaises(rc.BusyError):
            with other.using(self.res(), ttl_ms=1000, wait_ms=0):
                ran.append(1)
        self.assertEqual(ran, [])
        c.release(lock)

    def test_daemon_errors(self):
        c = self.client()
        with self.assertRaises(rc.BadRequestError) as cm:
            c.acquire(self.res(), autoextend=True, detach=True)
        self.assertEqual(cm.exception.code, "BADREQ")
        with self.assertRaises(rc.BadRequestError):
            c.acquire(self.res(), maxhold_ms=1000)        # MAXHOLD without AUTOEXTEND
        self.assertTrue(c.ping())                          # the connection is still fine

    def test_argument_checks(self):
        c = self.client()
        for bad in ["", "a,,b", "a b", "a\nPING", "a,a", "x" * 513, ["a", "b,c"], []]:
            with self.assertRaises(ValueError, msg=repr(bad)):
                c.acquire(bad)
        with self.assertRaises(ValueError):
            c.acquire("a", ttl_ms=0)
        with self.assertRaises(TypeError):
            c.acquire("a", ttl_ms="100")
        with self.assertRaises(ValueError):
            c.acquire("a", wait_ms=2 ** 31)
        with self.assertRaises(ValueError):
            c.release("not-a-lock-id")
        with self.assertRaises(ValueError):
            c.extend("A" * 32)
        with self.assertRaises(ValueError):
            rc.Client("no-port-here")
        self.assertTrue(c.ping())

    def test_info(self):
        info = self.client().info()
        self.assertIsInstance(info, dict)
        self.assertIn("version", info)
        self.assertEqual(info["masters"], 3)

    def test_threads_share_one_client(self):
        c = self.client()
        errors = []

        def worker(n):
            try:
                for i in range(20):
                    c.ping()
                    lock = c.acquire(self.res("-%d-%d" % (n, i)), ttl_ms=10000)
                    c.extend(lock, 10000)
                    c.release(lock)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(c.info()["locks_held"], 0)

    def test_close_fails_pending_call(self):
        c1, c2 = self.client(), self.cluster.client()
        lock = c1.acquire(self.res(), ttl_ms=30000)
        box = {}

        def waiter():
            try:
                c2.acquire(self.res(), wait_ms=20000)
            except Exception as e:
                box["error"] = e

        t = threading.Thread(target=waiter)
        t.start()
        wait_until(lambda: c1.info()["waiters"] >= 1, 5, "the ACQUIRE to wait")
        c2.close()
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(box.get("error"), rc.ConnectionLostError)
        wait_until(lambda: c1.info()["waiters"] == 0, 5, "the waiter to leave the queue")
        c1.release(lock)

    def test_timeout_abandons_and_releases_late_lock(self):
        c1 = self.client()
        c2 = self.client(timeout=0.2)
        lock = c1.acquire(self.res(), ttl_ms=30000)
        # Without WAIT, against a local holder, the daemon waits out its
        # retries (about 1.2 s here) before answering: the client gives up first.
        with self.assertRaises(rc.RedlockTimeoutError) as cm:
            c2.acquire(self.res(), ttl_ms=30000)
        self.assertEqual(cm.exception.code, "TIMEOUT")
        c1.release(lock)  # the abandoned ACQUIRE now gets the lock; c2 lets it go
        self.assertTrue(c2.ping())
        wait_until(lambda: c1.info()["locks_held"] == 0, 5, "the late lock to be released")
        c1.release(c1.acquire(self.res(), wait_ms=0))


class TestTokenFile(ClusterTest):
    cluster_opts = {"token": "py-s3cret"}

    def test_token_from_environment(self):
        saved = os.environ.pop(rc.TOKEN_FILE_ENV, None)
        try:
            with self.assertRaises(rc.AuthError):
                self.client().ping()
            os.environ[rc.TOKEN_FILE_ENV] = self.cluster.token_file
            self.assertIs(self.client().ping(), True)
            os.environ[rc.TOKEN_FILE_ENV] = os.path.join(self.cluster.dir, "missing")
            with self.assertRaises(OSError):
                self.client()
        finally:
            if saved is None:
                del os.environ[rc.TOKEN_FILE_ENV]
            else:
                os.environ[rc.TOKEN_FILE_ENV] = saved
        # An explicit token still wins.
        self.assertIs(self.client(token="py-s3cret").ping(), True)


class TestQuorumLoss(ClusterTest):
    """SIGSTOPs two of the three masters: its own cluster."""

    def test_using_signal_aborts_when_two_masters_stop(self):
        c = self.client()
        ttl = 500
        with self.assertRaises(rc.LostError) as cm:
            with c.using(self.res(), ttl_ms=ttl) as sig:
                wait_until(lambda: c.info()["extend_ok"] >= 1, 5, "a first extension")
                self.assertFalse(sig.aborted)
                try:
                    stopped = time.monotonic()
                    self.cluster.pause(1)
                    self.cluster.pause(2)
                    self.assertTrue(sig.wait(5), "no EVENT LOST within 5 s of losing the quorum")
                    lost_after = time.monotonic() - stopped
                finally:
                    self.cluster.resume(1)
                    self.cluster.resume(2)
                self.assertEqual(sig.reason, "NOQUORUM")
                # Before the validity it last promised ran out (<= ttl after the
                # last extension), with some slack for this process's scheduling.
                self.assertLess(lost_after * 1000, ttl + 100,
                                "EVENT LOST %.0f ms after the quorum was lost" % (lost_after * 1000))
                sig.check()
        self.assertEqual(cm.exception.reason, "NOQUORUM")
        self.assertEqual(cm.exception.lock_id, sig.lock.id)
        # The daemon is usable again once the masters are back.
        wait_until(lambda: self._try_lock(c), 10, "a lock after the masters resumed")

    def _try_lock(self, c):
        try:
            c.release(c.acquire(self.res("-after"), ttl_ms=5000, wait_ms=0))
            return True
        except (rc.NoQuorumError, rc.BusyError):
            return False


if __name__ == "__main__":
    unittest.main()
