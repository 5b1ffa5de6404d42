"""Type-checked by scripts/test-clients.sh with `mypy --strict` against the
pip-installed package: its hints (py.typed) must accept this program. It is
not a test to run (unittest does not collect it: the name does not start with
"test")."""

from __future__ import annotations

from typing import Optional, Union

import redlock_client
from redlock_client import BusyError, Client, Lock, LostError, RedlockError, Signal


def on_lost(lock_id: str, reason: str) -> None:
    print("lost", lock_id, reason)


def main(addr: str = redlock_client.DEFAULT_ADDR) -> int:
    token: str = redlock_client.read_token_file("/etc/redlockd/token")
    with Client(addr, timeout=1.5, token=token, on_lost=on_lost) as client:
        alive: bool = client.ping()
        lock: Lock = client.acquire(["a", "b"], ttl_ms=1000, wait_ms=0, autoextend=True)
        fence: Optional[int] = lock.fence
        left: int = lock.remaining_ms()
        lock = client.extend(lock, 2000)
        client.release(lock.id)
        with client.lock("r", ttl_ms=1000, wait_ms=100, detach=False) as held:
            names: tuple[str, ...] = held.resources
        with client.using("r", ttl_ms=5000) as signal:
            s: Signal = signal
            if signal.aborted and signal.error is not None:
                print(signal.error.reason, s.reason)
            signal.check()
            lost: bool = signal.wait(0.1)
        stats: dict[str, Union[int, str]] = client.info()
        try:
            client.acquire("x", wait_ms=0).release()
        except BusyError as e:
            return len(e.code)
        except LostError as e:
            return len(e.reason)
        except RedlockError as e:
            return len(e.text)
        print(alive, fence, left, names, lost, stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
