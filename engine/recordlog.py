"""`RecordLog`: the session's newest records in memory, bounded.

A session used to keep every record it yielded in a list for as long as it lived; a long run
grew it without end (about 1-3 KB a logged step). The run folder's metrics.jsonl holds every
record; in memory the dashboard needs only what it has not read yet. Positions stay those of the
whole run: `len(log)` counts every record appended, and `log[i:]` gives the kept records from
position i on, so a reader that remembers how many it has seen (the exploding-gradients panel)
reads each record once while it keeps up, as with a list.
"""

from __future__ import annotations

import threading
from collections import deque

KEEP = 10_000          # records kept: 100,000 steps at the default log interval of 10


class RecordLog:
    """Append-only from the training thread; readers on other threads slice or iterate."""

    def __init__(self, capacity: int = KEEP):
        self._kept: deque = deque(maxlen=capacity)
        self.total = 0
        self._lock = threading.Lock()

    def append(self, record) -> None:
        with self._lock:
            self._kept.append(record)
            self.total += 1

    def _snapshot(self) -> tuple[list, int]:
        """(the kept records, the position of the first), taken together."""
        with self._lock:
            return list(self._kept), self.total - len(self._kept)

    @property
    def dropped(self) -> int:
        """Records no longer kept (the oldest)."""
        return self.total - len(self._kept)

    def __len__(self) -> int:
        return self.total

    def __bool__(self) -> bool:
        return self.total > 0

    def __iter__(self):
        return iter(self._snapshot()[0])   # a snapshot: the training thread may append meanwhile

    def __getitem__(self, index):
        kept, first = self._snapshot()
        total = first + len(kept)
        if isinstance(index, slice):
            start, stop, step = index.indices(total)
            if step != 1:
                raise ValueError("RecordLog slices take no step")
            return kept[max(start, first) - first:max(stop, first) - first]
        i = index + total if index < 0 else index
        if not first <= i < total:
            raise IndexError(f"record {index} is not kept (kept: {first}..{total - 1})")
        return kept[i - first]
