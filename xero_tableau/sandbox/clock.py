"""A clock the sandbox runs on: real time by default, or sped up so tests of minute- and day-long
limits finish in seconds.

``speed=60`` makes one virtual minute last one real second. Tests can also jump the clock forward
(``advance``) to cross a token's 30-minute expiry or a refresh token's 60-day idle limit at once.
Everything in the sandbox that depends on time (token lifetimes, rate-limit windows, UpdatedDateUTC
of writes, webhook event times) reads this clock, never ``time.time()`` directly.
"""

import threading
import time
from datetime import UTC, datetime


class SandboxClock:
    """Virtual UTC time: ``start + (real elapsed) * speed + jumps``."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._real0 = time.monotonic()
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        self._virtual0 = start.timestamp()
        self._offset = 0.0

    def time(self) -> float:
        """Virtual POSIX seconds."""
        with self._lock:
            return self._virtual0 + (time.monotonic() - self._real0) * self.speed + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def now_ms(self) -> int:
        return int(self.time() * 1000)

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward (never backward)."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += seconds

    def reset(self, start: datetime) -> None:
        """Set virtual now to ``start`` (possibly backward): for tests that replay many
        histories on one running sandbox, each from the same instant."""
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        with self._lock:
            self._real0 = time.monotonic()
            self._virtual0 = start.timestamp()
            self._offset = 0.0

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long ``virtual_seconds`` of sandbox time last on the wall clock."""
        return virtual_seconds / self.speed

    def sleep(self, virtual_seconds: float) -> None:
        time.sleep(max(0.0, self.real_seconds(virtual_seconds)))
