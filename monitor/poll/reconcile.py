"""Reconciliation: a full listing spread over time, a few pages of history per cycle.

Incremental polling trusts the active listings, the newest-first walk and the ended lookups.
`Reconciler` walks the whole unfiltered listing behind them, paced so that one pass finishes
every `poll.full_resync`, and hands every row it reads to the cycle like any other sighting: a
row whose state differs from what is stored is an event as usual, and a discrepancy, counted.

Offsets move while a pass is under way: each new job pushes every older one a row further down
(the listing is newest first). The cursor therefore advances by the pages read plus the rows
the newest-first walk found since the last step, and steps back `OVERLAP_ROWS` so that pages
overlap a little; a job removed from DLI's history can still make a pass skip a row, which the
next pass covers. The cursor lives in memory: a restart starts a new pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OVERLAP_ROWS = 5
"""Rows each step re-reads from the previous one, against offsets shifting under the walk."""


@dataclass
class PassReport:
    """How a finished pass went, for its log line."""

    pages: int
    rows: int
    seconds: float


@dataclass
class Reconciler:
    """Where the reconciliation walk stands and how fast it must go."""

    full_resync_s: float
    page_size: int
    offset: int = 0
    pages_read: int = 0
    rows_read: int = 0
    started_at: float | None = None
    credit: float = 0.0
    estimated_rows: int = 0
    """Rows of the whole listing as of the last finished pass (0 before the first)."""

    def pages_due(self, interval_s: float) -> int:
        """Pages this cycle should read so a pass takes about `full_resync_s`."""
        if self.full_resync_s <= 0:
            return 0
        rows = max(self.estimated_rows, self.page_size * 10)
        per_cycle = (rows / self.page_size + 1) * interval_s / self.full_resync_s
        self.credit = min(self.credit + per_cycle, max(10.0, per_cycle))
        return math.floor(self.credit)

    def spent(self, pages_read: int) -> None:
        """Take the pages actually read off the credit (unread ones stay due)."""
        self.credit = max(0.0, self.credit - pages_read)

    def shift(self, new_rows: int) -> None:
        """New jobs pushed every row of the listing `new_rows` further down."""
        if self.offset > 0:
            self.offset += new_rows

    def advance(self, rows: int, *, at: float) -> PassReport | None:
        """Record one page read at the cursor; returns the report when the pass finished."""
        if self.started_at is None:
            self.started_at = at
        self.pages_read += 1
        self.rows_read += rows
        if rows < self.page_size:
            report = PassReport(self.pages_read, self.rows_read, at - self.started_at)
            self.estimated_rows = self.rows_read
            self.offset = self.pages_read = self.rows_read = 0
            self.started_at = None
            return report
        self.offset += max(1, rows - OVERLAP_ROWS)
        return None
