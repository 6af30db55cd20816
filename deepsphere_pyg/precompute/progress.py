"""Progress of a precomputation: a tqdm bar when tqdm is installed, else lines on stderr."""

from __future__ import annotations

import sys

__all__ = ["Progress"]


class Progress:
    """tqdm when installed, else a line on stderr every ~10 %."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.total, self.count, self.desc, self.enabled = total, initial, desc, enabled
        self._bar = None
        self._last_print = -1
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._print()
        else:
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="map")

    def _print(self) -> None:
        step = self.count * 10 // max(self.total, 1)
        if step != self._last_print or self.count == self.total:
            self._last_print = step
            print(f"{self.desc}: {self.count}/{self.total} maps", file=sys.stderr, flush=True)

    def set(self, count: int) -> None:
        if count == self.count:
            return
        if self._bar is not None:
            self._bar.update(count - self.count)
        self.count = count
        if self.enabled and self._bar is None:
            self._print()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
