"""redlock_client - Python client of redlockd, the Redlock lock manager daemon.

One module, standard library only, Python 3.9+, typed (PEP 561). Speaks the line protocol of
protocol/PROTOCOL.md over TCP ("host:port", "[v6addr]:port") or a Unix socket
(a path: anything containing '/').

    from redlock_client import Client, BusyError

    with Client("127.0.0.1:7379") as client:
        with client.lock("orders:42", ttl_ms=10000, wait_ms=5000) as lock:
            ...                               # held for lock.validity_ms at least
        with client.using("report", ttl_ms=5000) as signal:
            for step in work:                 # extended by the daemon until the block ends
                signal.check()                # raises LostError once EVENT LOST arrived
                step()

Threads: a Client is one connection and is thread-safe. Any number of threads
may call it at once; each request is written whole and replies are matched to
requests in the order they were sent (the daemon answers in request order). A
single background thread reads the connection: it hands each reply to the
thread waiting for it and applies pushed events (EVENT LOST) to locks and
signals at once, so `signal.aborted` is current without any polling. Because
replies are in order, an ACQUIRE that WAITs delays the replies to every later
request on the same Client: give each thread that waits for locks its own
Client. Callbacks (on_lost) run on the reader thread; keep them short and do
not call the Client from them.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union, cast

__all__ = [
    "Client", "Lock", "Signal", "RedlockError", "BusyError", "NoQuorumError",
    "NotHeldError", "BadRequestError", "TooLongError", "LimitError", "AuthError",
    "ShutdownError", "InternalError", "LostError", "ConnectionLostError",
    "ProtocolError", "RedlockTimeoutError", "DEFAULT_ADDR",
]

__version__ = "0.1.0"

DEFAULT_ADDR = "/run/redlockd/redlockd.sock"
TOKEN_FILE_ENV = "REDLOCK_TOKEN_FILE"   # a file whose first line is the AUTH token
_MAX_MS = 2147483647
_MAX_LINE = 1 << 20          # longest line accepted from the daemon
_LOST_MEMORY = 4096          # how many lost lock ids are remembered (events before replies)


# ---- Errors -----------------------------------------------------------------

class RedlockError(Exception):
    """Any failure. .code is the daemon's error code ("BUSY", "NOQUORUM", ...)
    or one of this library's: "LOST", "CONNECTION", "PROTOCOL", "TIMEOUT".
    .text is the human-readable rest."""

    def __init__(self, code: str, text: str = "") -> None:
        self.code = code
        self.text = text
        super().__init__(code + (" " + text if text else ""))


class BusyError(RedlockError):
    """ERR BUSY: the lock is held by someone else (after the retries or the WAIT)."""


class NoQuorumError(RedlockError):
    """ERR NOQUORUM: too few Redis masters answered (or granted in time)."""


class NotHeldError(RedlockError):
    """ERR NOTHELD: unknown, released, expired or lost lock id."""


class BadRequestError(RedlockError):
    """ERR BADREQ: the daemon refused the request."""


class TooLongError(RedlockError):
    """ERR TOOLONG: request line too long; the daemon closes the connection."""


class LimitError(RedlockError):
    """ERR LIMIT: a daemon limit was reached."""


class AuthError(RedlockError):
    """ERR AUTH: authentication required or failed."""


class ShutdownError(RedlockError):
    """ERR SHUTDOWN: the daemon is shutting down."""


class InternalError(RedlockError):
    """ERR INTERNAL: the daemon failed internally."""


class LostError(RedlockError):
    """A held lock was lost: EVENT LOST <id> <reason> arrived, or the connection
    that owned it closed (reason "DISCONNECTED"). .lock_id, .reason."""

    def __init__(self, lock_id: str, reason: str) -> None:
        self.lock_id = lock_id
        self.reason = reason
        super().__init__("LOST", "lock %s: %s" % (lock_id, reason))


class ConnectionLostError(RedlockError, ConnectionError):
    """The connection to redlockd could not be made, or closed."""

    def __init__(self, text: str) -> None:
        super().__init__("CONNECTION", text)


class ProtocolError(RedlockError):
    """The daemon sent something this library cannot parse."""

    def __init__(self, text: str) -> None:
        super().__init__("PROTOCOL", text)


class RedlockTimeoutError(RedlockError, TimeoutError):
    """No reply within the Client's timeout. The connection stays usable; the
    late reply is discarded (a late-granted lock is released at once)."""

    def __init__(self, text: str) -> None:
        super().__init__("TIMEOUT", text)


_ERRORS: dict[str, type[RedlockError]] = {
    "BUSY": BusyError, "NOQUORUM": NoQuorumError, "NOTHELD": NotHeldError,
    "BADREQ": BadRequestError, "TOOLONG": TooLongError, "LIMIT": LimitError,
    "AUTH": AuthError, "SHUTDOWN": ShutdownError, "INTERNAL": InternalError,
}


def _daemon_error(line: str) -> RedlockError:
    parts = line.split(None, 2)
    code = parts[1] if len(parts) > 1 else "INTERNAL"
    text = parts[2] if len(parts) > 2 else ""
    return _ERRORS.get(code, RedlockError)(code, text)


# ---- Argument checks (nothing the caller passes can inject a request) --------

def _ms(name: str, value: object, low: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int (milliseconds), not %r" % (name, value))
    if not low <= value <= _MAX_MS:
        raise ValueError("%s must be in %d..%d, not %d" % (name, low, _MAX_MS, value))
    return str(value)


def read_token_file(path: Union[str, os.PathLike[str]]) -> str:
    """The AUTH token in the first line of the file at path (the format of the
    daemon's auth_token_file). Raises OSError, or ValueError when it is empty."""
    with open(path, "rb") as f:
        first = f.read(4096).split(b"\n", 1)[0].split(b"\r", 1)[0]
    if not first:
        raise ValueError("%s: the token file's first line is empty" % path)
    return first.decode("ascii", "replace")


def _printable(s: str) -> bool:
    return all(0x21 <= ord(ch) <= 0x7E for ch in s)


def _resources(resources: Union[str, Iterable[str]]) -> tuple[str, ...]:
    if isinstance(resources, str):
        names = resources.split(",")
    else:
        names = list(resources)
    if not names:
        raise ValueError("no resources")
    seen = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError("resource names must be str, not %r" % (name,))
        if not 1 <= len(name) <= 512 or "," in name or not _printable(name):
            raise ValueError("bad resource name %r: want 1..512 printable ASCII "
                             "characters, no ',' or spaces" % (name,))
        if name in seen:
            raise ValueError("resource %r named twice" % (name,))
        seen.add(name)
    return tuple(names)


def _lock_id(lock_or_id: Union[Lock, str]) -> str:
    lid = lock_or_id.id if isinstance(lock_or_id, Lock) else lock_or_id
    if (not isinstance(lid, str) or len(lid) != 32
            or any(ch not in "0123456789abcdef" for ch in lid)):
        raise ValueError("not a lock id (32 lowercase hex digits): %r" % (lid,))
    return lid


def _parse_addr(addr: str) -> tuple[Optional[socket.AddressFamily], Union[str, tuple[str, int]]]:
    # family None: either IP version (socket.create_connection); a str target: a Unix path
    family: Optional[socket.AddressFamily]
    if not isinstance(addr, str):
        raise TypeError("addr must be a str, not %r" % (addr,))
    if "/" in addr:
        return socket.AF_UNIX, addr
    if addr.startswith("["):
        host, sep, port = addr[1:].partition("]:")
        family = socket.AF_INET6
    else:
        host, sep, port = addr.rpartition(":")
        family = None
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad address %r: want host:port, [v6addr]:port or a path "
                         "containing '/'" % (addr,))
    return family, (host, int(port))


def _int_or_str(value: str) -> Union[int, str]:
    return int(value) if value.isdigit() else value


# ---- Locks and signals --------------------------------------------------------

class Lock:
    """A lock granted by the daemon.

    id           the lock id (32 hex digits; a capability: whoever has it may
                 EXTEND or RELEASE the lock)
    validity_ms  how long the lock is guaranteed, counted from valid_from
    fence        the fencing token (int), or None if the daemon sent none
    ttl_ms       the ttl asked for at ACQUIRE (None: the daemon's default);
                 EXTEND without a ttl uses it
    resources    tuple of the resource names
    valid_from   time.monotonic() when the request was sent (the safe side), or,
                 for an ACQUIRE with wait_ms, when its reply was read (the send may
                 be the whole wait earlier; PROTOCOL.md 8.2)
    lost         None, or the reason of the EVENT LOST that ended it
    """

    __slots__ = ("id", "validity_ms", "fence", "resources", "ttl_ms", "autoextend",
                 "detach", "valid_from", "lost", "_client", "__weakref__")

    id: str
    validity_ms: int
    fence: Optional[int]
    resources: tuple[str, ...]
    ttl_ms: Optional[int]
    autoextend: bool
    detach: bool
    valid_from: float
    lost: Optional[str]
    _client: Client

    def __init__(self, client: Client, lock_id: str, validity_ms: int, fence: Optional[int],
                 resources: tuple[str, ...], ttl_ms: Optional[int] = None,
                 autoextend: bool = False, detach: bool = False,
                 valid_from: Optional[float] = None) -> None:
        self._client = client
        self.id = lock_id
        self.validity_ms = validity_ms
        self.fence = fence
        self.resources = resources
        self.ttl_ms = ttl_ms
        self.autoextend = autoextend
        self.detach = detach
        self.valid_from = time.monotonic() if valid_from is None else valid_from
        self.lost = None

    def remaining_ms(self) -> int:
        """Milliseconds left of validity_ms (not counting AUTOEXTEND renewals,
        which the daemon does not report: watch `lost` / a Signal instead)."""
        left = self.validity_ms - (time.monotonic() - self.valid_from) * 1000.0
        return max(0, int(left))

    def extend(self, ttl_ms: Optional[int] = None) -> Lock:
        """Client.extend(self, ttl_ms)."""
        return self._client.extend(self, ttl_ms)

    def release(self) -> None:
        """Client.release(self)."""
        self._client.release(self)

    def __repr__(self) -> str:
        return "Lock(id=%r, validity_ms=%r, fence=%r, resources=%r%s)" % (
            self.id, self.validity_ms, self.fence, self.resources,
            ", lost=%r" % self.lost if self.lost else "")


class Signal:
    """The abort signal of Client.using(), like the seeds' AbortSignal.

    aborted  True once the lock is lost (EVENT LOST, or the connection closed)
    error    the LostError then, else None
    reason   the LOST reason ("NOQUORUM", "TAKEN", "MAXHOLD", "SHUTDOWN",
             "DISCONNECTED", ...) or None
    lock     the Lock the block runs under
    """

    def __init__(self, lock: Lock) -> None:
        self.lock = lock
        self.error: Optional[LostError] = None
        self._event = threading.Event()

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> Optional[str]:
        return self.error.reason if self.error else None

    def check(self) -> None:
        """Raise the LostError if the lock was lost."""
        # error is set before the event: set event, non-None error
        if self._event.is_set() and self.error is not None:
            raise self.error

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the lock is lost or timeout seconds pass; True if lost."""
        return self._event.wait(timeout)

    def _abort(self, error: LostError) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()


class _Call:
    __slots__ = ("done", "line", "data", "want", "error", "abandoned", "acquire", "read_at")

    def __init__(self, acquire: bool = False) -> None:
        self.done = threading.Event()
        self.line = ""        # the reply line, set before done (unless error is)
        self.data: Optional[list[str]] = None   # list of lines of a DATA block
        self.want = 0         # DATA lines still to come
        self.error: Optional[BaseException] = None   # exception instead of a reply
        self.abandoned = False
        self.acquire = acquire
        self.read_at = 0.0    # time.monotonic() when the reply line was read


# ---- The client -----------------------------------------------------------------

_C = TypeVar("_C", bound="Client")

class Client:
    """One connection to redlockd.

    addr     "host:port", "[v6addr]:port" or a Unix socket path (contains '/');
             default $REDLOCK_ADDR, then /run/redlockd/redlockd.sock
    timeout  seconds: connect timeout and how long each call waits for its reply
             (an ACQUIRE with wait_ms waits that much longer); None waits for ever
    token    sent with AUTH after connecting; default: the first line of the file
             named by $REDLOCK_TOKEN_FILE, if set (tokens do not belong in code or
             command lines)
    on_lost  callable(lock_id, reason), called on the reader thread for every
             EVENT LOST (also settable later as client.on_lost)
    """

    def __init__(self, addr: Optional[str] = None, timeout: Optional[float] = None, *,
                 token: Optional[str] = None,
                 on_lost: Optional[Callable[[str, str], object]] = None) -> None:
        self.timeout = timeout
        self.on_lost = on_lost
        if token is None and os.environ.get(TOKEN_FILE_ENV):
            token = read_token_file(os.environ[TOKEN_FILE_ENV])
        if addr is None or addr == "":
            addr = os.environ.get("REDLOCK_ADDR") or DEFAULT_ADDR
        family, target = _parse_addr(addr)
        self.addr = addr
        self._mu = threading.Lock()        # state shared with the reader thread
        self._wmu = threading.Lock()       # one writer at a time: send order = queue order
        self._pending: collections.deque[_Call] = collections.deque()
        self._current: Optional[_Call] = None   # the call whose DATA block is being read
        # connection-bound locks by id
        self._locks: weakref.WeakValueDictionary[str, Lock] = weakref.WeakValueDictionary()
        self._signals: dict[str, Signal] = {}
        # recent EVENT LOST: id -> reason
        self._lost: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._closed: Optional[str] = None      # None while open, else the reason
        try:
            if family is None:
                sock = socket.create_connection(cast("tuple[str, int]", target), timeout)
            else:
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(target)
                except BaseException:
                    sock.close()
                    raise
        except OSError as e:
            raise ConnectionLostError("cannot connect to %s: %s" % (self.addr, e)) from e
        sock.settimeout(None)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self._reader = threading.Thread(target=self._read_loop, name="redlock-reader",
                                        daemon=True)
        self._reader.start()
        if token is not None:
            try:
                self.auth(token)
            except BaseException:
                self.close()
                raise

    # -- context manager on the client itself
    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Client(%r%s)" % (self.addr, ", closed" if self._closed else "")

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # ---- requests

    def ping(self) -> bool:
        """PING; returns True."""
        line = self._call("PING")
        if line.split()[:1] != ["PONG"]:
            raise ProtocolError("PING answered %r" % line)
        return True

    def auth(self, token: str) -> None:
        """AUTH <token>."""
        if not isinstance(token, str) or not token or not _printable(token):
            raise ValueError("bad token: want printable ASCII without spaces")
        self._call("AUTH " + token)

    def acquire(self, resources: Union[str, Iterable[str]], ttl_ms: Optional[int] = None,
                wait_ms: Optional[int] = None, autoextend: bool = False, detach: bool = False,
                maxhold_ms: Optional[int] = None, priority: Optional[int] = None,
                owner: Optional[str] = None, shared: bool = False,
                permits: Optional[int] = None) -> Lock:
        """ACQUIRE one lock over all of resources ("a,b" or ["a", "b"]).

        ttl_ms      lock TTL (default: the daemon's default_ttl_ms)
        wait_ms     keep trying that long (0: a single attempt)
        autoextend  the daemon extends the lock until release/close (EVENT LOST if it cannot)
        detach      the lock outlives this connection (release it by id, or it expires)
        maxhold_ms  cap on the total hold of an autoextend lock
        priority, owner  passed through (daemons without them answer BADREQ)
        shared      a reader of a read/write lock: readers hold together, writers wait
        permits     1..1000: one of at most that many holders of one resource (a semaphore)

        Returns a Lock; raises BusyError, NoQuorumError, RedlockError.
        """
        names = _resources(resources)
        line = ["ACQUIRE", ",".join(names)]
        if ttl_ms is not None:
            line.append(_ms("ttl_ms", ttl_ms, 1))
        if wait_ms is not None:
            line += ["WAIT", _ms("wait_ms", wait_ms, 0)]
        if autoextend:
            line.append("AUTOEXTEND")
        if detach:
            line.append("DETACH")
        if maxhold_ms is not None:
            line += ["MAXHOLD", _ms("maxhold_ms", maxhold_ms, 0)]
        if priority is not None:
            line += ["PRIORITY", _ms("priority", priority, 0)]
        if owner is not None:
            if not isinstance(owner, str) or not 1 <= len(owner) <= 128 or not _printable(owner):
                raise ValueError("bad owner id %r" % (owner,))
            line += ["OWNER", owner]
        if shared:
            line.append("SHARED")
        if permits is not None:
            if isinstance(permits, bool) or not isinstance(permits, int) or not 1 <= permits <= 1000:
                raise ValueError("bad permits %r: want 1..1000" % (permits,))
            line += ["PERMITS", str(permits)]
        timeout = self.timeout
        if timeout is not None and wait_ms is not None:
            timeout += wait_ms / 1000.0
        sent = time.monotonic()
        call = self._call_full(" ".join(line), timeout=timeout, acquire=True)
        lid, validity, fence = self._parse_ok_lock(call.line)
        # PROTOCOL.md 8.2: counted from the send, or after a WAIT from the read of the reply.
        lock = Lock(self, lid, validity, fence, names, ttl_ms, bool(autoextend), bool(detach),
                    sent if wait_ms is None else call.read_at)
        if not detach:
            with self._mu:
                self._locks[lid] = lock
                if lid in self._lost:
                    lock.lost = self._lost[lid]
        return lock

    def extend(self, lock_or_id: Union[Lock, str], ttl_ms: Optional[int] = None) -> Lock:
        """EXTEND a lock to expire ttl_ms from now (default: its own TTL).

        Given a Lock, updates its validity_ms and valid_from and returns it;
        given an id, returns a new Lock (resources unknown: ()).
        Raises NotHeldError (expired, lost or taken), NoQuorumError (still held
        with the previous validity: try again), RedlockError."""
        lid = _lock_id(lock_or_id)
        line = "EXTEND " + lid
        if ttl_ms is not None:
            line += " " + _ms("ttl_ms", ttl_ms, 1)
        sent = time.monotonic()
        _, validity, fence = self._parse_ok_lock(self._call(line))
        if isinstance(lock_or_id, Lock):
            lock_or_id.validity_ms = validity
            lock_or_id.valid_from = sent
            return lock_or_id
        return Lock(self, lid, validity, fence, (), ttl_ms, valid_from=sent)

    def release(self, lock_or_id: Union[Lock, str]) -> None:
        """RELEASE a lock (by Lock or id). Raises NotHeldError if it was not held."""
        lid = _lock_id(lock_or_id)
        try:
            self._call("RELEASE " + lid)
        finally:
            with self._mu:
                self._locks.pop(lid, None)

    def info(self) -> dict[str, Union[int, str]]:
        """INFO as a dict; values that are whole numbers are ints."""
        return {k: _int_or_str(v) for k, v in self._data("INFO")}

    def inspect(self, resource: str) -> dict[str, Union[int, str]]:
        """INSPECT <resource>: its state on the masters, as a dict."""
        (name,) = _resources([resource])
        return {k: _int_or_str(v) for k, v in self._data("INSPECT " + name)}

    def close(self) -> None:
        """Close the connection. The daemon releases every lock this connection
        holds (DETACHed locks stay). Pending calls fail with ConnectionLostError.
        Safe to call more than once."""
        self._shutdown("closed by the client")
        if self._reader is not threading.current_thread():
            self._reader.join(5)

    # ---- context managers

    @contextlib.contextmanager
    def lock(self, resources: Union[str, Iterable[str]], ttl_ms: Optional[int] = None,
             wait_ms: Optional[int] = None, **options: Any) -> Iterator[Lock]:
        """with client.lock("a,b", ttl_ms=..., wait_ms=...) as lock: ...

        Acquires (options as acquire()), yields the Lock, releases on exit,
        also when the block raises. If the block finished normally but the lock
        was no longer held at release (it expired or was lost), exit raises
        NotHeldError: the block was not protected throughout."""
        lock = self.acquire(resources, ttl_ms=ttl_ms, wait_ms=wait_ms, **options)
        try:
            yield lock
        except BaseException:
            self._release_quietly(lock.id)
            raise
        self.release(lock)

    @contextlib.contextmanager
    def using(self, resources: Union[str, Iterable[str]], ttl_ms: Optional[int] = None,
              wait_ms: Optional[int] = None,
              maxhold_ms: Optional[int] = None) -> Iterator[Signal]:
        """with client.using("res", ttl_ms=..., wait_ms=...) as signal: ...

        Runs the block under an AUTOEXTEND lock (the seeds' using()): the daemon
        keeps extending it until the block ends. The yielded Signal is aborted
        as soon as the lock is lost (EVENT LOST, or this connection closed):
        check signal.aborted / signal.check() between steps. On exit the lock
        is released; if it was lost and the block did not raise, exit raises
        the LostError (the work was not protected throughout)."""
        lock = self.acquire(resources, ttl_ms=ttl_ms, wait_ms=wait_ms, autoextend=True,
                            maxhold_ms=maxhold_ms)
        signal = Signal(lock)
        with self._mu:
            self._signals[lock.id] = signal
            reason = lock.lost or (self._closed and "DISCONNECTED")
        if reason:
            signal._abort(LostError(lock.id, reason))
        try:
            yield signal
        except BaseException:
            self._end_using(signal, quiet=True)
            raise
        self._end_using(signal, quiet=False)

    def _end_using(self, signal: Signal, quiet: bool) -> None:
        lid = signal.lock.id
        with self._mu:
            self._signals.pop(lid, None)
        if not signal.aborted:
            try:
                self.release(lid)
            except NotHeldError:
                # Lost between the last event and the release (an EVENT LOST,
                # if any, was read before this reply).
                signal._abort(LostError(lid, signal.lock.lost or "NOTHELD"))
            except RedlockError:
                if not quiet and not signal.aborted:
                    raise
        if not quiet and signal.aborted and signal.error is not None:
            raise signal.error

    def _release_quietly(self, lid: str) -> None:
        try:
            self.release(lid)
        except RedlockError:
            pass

    # ---- plumbing

    @staticmethod
    def _parse_ok_lock(line: str) -> tuple[str, int, Optional[int]]:
        parts = line.split()
        try:
            if parts[0] != "OK" or len(parts[1]) != 32:
                raise ValueError
            fence = int(parts[3]) if len(parts) > 3 else None
            return parts[1], int(parts[2]), fence
        except (IndexError, ValueError):
            raise ProtocolError("unexpected reply %r" % line) from None

    def _data(self, request: str) -> list[tuple[str, str]]:
        call = self._send(request)
        self._wait(call, self.timeout)
        if call.data is None:
            raise ProtocolError("%s answered %r" % (request.split()[0], call.line))
        out = []
        for item in call.data:
            key, _, value = item.partition(" ")
            out.append((key, value))
        return out

    def _call(self, line: str, timeout: Optional[float] = None, acquire: bool = False) -> str:
        return self._call_full(line, timeout, acquire).line

    def _call_full(self, line: str, timeout: Optional[float] = None, acquire: bool = False) -> _Call:
        call = self._send(line, acquire)
        self._wait(call, self.timeout if timeout is None else timeout)
        if call.data is not None:
            raise ProtocolError("unexpected DATA block in reply to %s" % line.split()[0])
        return call

    def _send(self, line: str, acquire: bool = False) -> _Call:
        call = _Call(acquire)
        data = (line + "\r\n").encode("ascii")
        with self._wmu:
            with self._mu:
                if self._closed:
                    raise ConnectionLostError("connection to %s %s" % (self.addr, self._closed))
                self._pending.append(call)
            try:
                self._sock.sendall(data)
            except OSError as e:
                self._shutdown("failed: %s" % e)
        return call

    def _wait(self, call: _Call, timeout: Optional[float]) -> None:
        if not call.done.wait(timeout):            # (never with timeout None)
            with self._mu:
                if not call.done.is_set():
                    call.abandoned = True
                    raise RedlockTimeoutError("no reply from %s within %.3f s"
                                              % (self.addr, timeout or 0.0))
        if call.error is not None:
            raise call.error
        if call.line.startswith("ERR"):
            raise _daemon_error(call.line)

    def _read_loop(self) -> None:
        why = "closed by the daemon"
        try:
            while True:
                raw = self._rfile.readline(_MAX_LINE)
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    if len(raw) >= _MAX_LINE:
                        why = "failed: reply line over %d bytes" % _MAX_LINE
                    break
                line = raw.rstrip(b"\r\n").decode("latin-1")
                if not self._dispatch(line):
                    why = "failed: unexpected line from the daemon: %r" % line[:100]
                    break
        except (OSError, ValueError) as e:
            why = "failed: %s" % e
        self._shutdown(why)
        with self._wmu:            # no sendall() in progress on the fd being closed
            self._rfile.close()

    def _dispatch(self, line: str) -> bool:
        # Events never come inside a DATA block.
        if self._current is None and (line.startswith("EVENT ") or line.startswith("EVENT\t")):
            self._event(line.split())
            return True
        finish = None
        late_lock = False
        with self._mu:
            call = self._current
            if call is not None:
                assert call.data is not None       # a DATA header made it current
                call.data.append(line)
                call.want -= 1
                if call.want == 0:
                    self._current = None
                    finish = call
            else:
                if not self._pending:
                    return False
                call = self._pending.popleft()
                call.line = line
                call.read_at = time.monotonic()
                parts = line.split()
                if parts[:1] == ["DATA"]:
                    if len(parts) < 2 or not parts[1].isdigit():
                        return False
                    call.data = []
                    call.want = int(parts[1])
                    if call.want > 0:
                        self._current = call
                    else:
                        finish = call
                else:
                    finish = call
            if finish is not None:
                finish.done.set()
                late_lock = (finish.abandoned and finish.acquire and line.startswith("OK ")
                             and len(line.split()) > 1)
        if late_lock:
            # Its caller timed out: nobody knows about this lock; let it go.
            lid = line.split()[1]
            threading.Thread(target=self._release_quietly, args=(lid,), daemon=True).start()
        return True

    def _event(self, parts: list[str]) -> None:
        if len(parts) < 3 or parts[1] != "LOST":
            return                         # unknown events are ignored
        lid = parts[2]
        reason = parts[3] if len(parts) > 3 else "UNKNOWN"
        with self._mu:
            self._lost[lid] = reason
            while len(self._lost) > _LOST_MEMORY:
                self._lost.popitem(last=False)
            lock = self._locks.pop(lid, None)
            signal = self._signals.get(lid)
        if lock is not None:
            lock.lost = reason
        if signal is not None:
            signal._abort(LostError(lid, reason))
        callback = self.on_lost
        if callback is not None:
            try:
                callback(lid, reason)
            except Exception:              # a callback must not kill the reader
                pass

    def _shutdown(self, why: str) -> None:
        with self._mu:
            if self._closed:
                return
            self._closed = why
            pending = list(self._pending)
            self._pending.clear()
            if self._current is not None and self._current not in pending:
                pending.insert(0, self._current)
            self._current = None
            locks = list(self._locks.values())
            self._locks.clear()
            signals = list(self._signals.values())
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        error = ConnectionLostError("connection to %s %s" % (self.addr, why))
        for call in pending:
            call.error = error
            call.done.set()
        # The daemon releases a connection's locks when it closes.
        for lock in locks:
            if lock.lost is None:
                lock.lost = "DISCONNECTED"
        for signal in signals:
            signal._abort(LostError(signal.lock.id, "DISCONNECTED"))
