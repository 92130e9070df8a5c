"""Progress of a long command for the person watching it: stages, and rows with their rate."""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO

Clock = Callable[[], float]


class Progress:
    """The stages of a command and the rows each one has done; this base reports nothing.

    `stage(name)` starts a stage (ending the previous one); `rows(n)` says how many rows the current
    stage has done so far (it may be called from a database engine's reader thread)."""

    def stage(self, name: str, unit: str = "rows") -> None:
        pass

    def rows(self, n: int) -> None:
        pass

    def done(self) -> None:
        """The command finished its stages (the last one ends)."""


QUIET = Progress()


def rate(n: int, seconds: float, unit: str = "rows") -> str:
    """`410,000 rows/s`: three significant figures, a rate is an estimate."""
    per = n / seconds if seconds > 0 else 0.0
    return f"{_three(per):,} {unit}/s"


def _three(x: float) -> int:
    if x < 1000:
        return round(x)
    digits = len(str(int(x))) - 3
    return int(round(x, -digits))


class _Timed(Progress):
    """Keeps the current stage, its start and its rows; subclasses say how to show them."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._unit = "rows"
        self._start = 0.0
        self._n = 0

    def stage(self, name: str, unit: str = "rows") -> None:
        with self._lock:
            self._end()
            self._stage, self._unit, self._start, self._n = name, unit, self._clock(), 0
            self._started()

    def rows(self, n: int) -> None:
        with self._lock:
            self._n = n
            self._counted()

    def done(self) -> None:
        with self._lock:
            self._end()
            self._stage = None

    def _summary(self) -> str:
        """The stage as it ends: its time, and its rows and rate when it counted any."""
        seconds = self._clock() - self._start
        if not self._n:
            return f"{self._stage}: {seconds:.1f} s"
        return f"{self._stage}: {self._n:,} {self._unit} in {seconds:.1f} s ({rate(self._n, seconds, self._unit)})"

    def _started(self) -> None:
        pass

    def _counted(self) -> None:
        pass

    def _end(self) -> None:
        pass


class LineProgress(_Timed):
    """Plain lines on a stream that is not a terminal (a log, a CI job): one when each stage ends,
    with its time and rate, and one every `every` seconds while rows come in. No line rewrites, no
    colour: each line stands alone in a log file."""

    def __init__(self, stream: TextIO, prefix: str, every: float = 10.0, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self._stream, self._prefix, self._every = stream, prefix, every
        self._last = 0.0

    def _started(self) -> None:
        self._last = self._start

    def _counted(self) -> None:
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            seconds = now - self._start
            self._write(f"{self._stage}: {self._n:,} {self._unit} so far ({rate(self._n, seconds, self._unit)})")

    def _end(self) -> None:
        if self._stage is not None:
            self._write(self._summary())

    def _write(self, text: str) -> None:
        print(f"{self._prefix}: {text}", file=self._stream, flush=True)


class LiveProgress(_Timed):
    """One line rewritten in place on a terminal (`show` is a rich status's update)."""

    def __init__(self, show: Callable[[str], None], prefix: str, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self._show, self._prefix = show, prefix

    def _started(self) -> None:
        self._show(f"{self._prefix}: {self._stage}")

    def _counted(self) -> None:
        seconds = self._clock() - self._start
        self._show(f"{self._prefix}: {self._stage}: {self._n:,} {self._unit} ({rate(self._n, seconds, self._unit)})")
