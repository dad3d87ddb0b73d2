"""What /healthz and /readyz answer on a replica that may be the leader or a standby.

`RoleProbes` wraps `Health` (what the cycles record) with the replica's role from
`monitor.leadership`: a standby is alive without ever polling (it is not stale, a restart would
not make it poll) and ready while its database connection answers; a leader is ready after the
first complete cycle of its term, and a new leader is not stale before that first cycle (for at
most the staleness limit). Without a lease (SQLite) the answers are `Health`'s, plus the role.
"""

from __future__ import annotations

from monitor.health import Health
from monitor.leadership import Leadership


class RoleProbes:
    """`Health` as the probes see it on this replica: a standby is alive without cycles."""

    def __init__(self, leadership: Leadership, health: Health) -> None:
        self._leadership = leadership
        self._health = health

    @property
    def ready(self) -> bool:
        """A leader after its first complete cycle of this term, a standby while its database
        connection answers (without a lease: `Health.ready`)."""
        leadership, keeper = self._leadership, self._leadership.keeper
        if keeper is None:
            return self._health.ready
        if leadership.leading:
            return self._health.ready and leadership.settled
        return keeper.reachable

    def snapshot(self) -> dict[str, object]:
        """`Health.snapshot()` with the role; a standby, or a new leader before its first
        cycle (for at most the staleness limit), does not count as stale."""
        leadership, keeper = self._leadership, self._leadership.keeper
        view = {**self._health.snapshot(), **leadership.role_view(), "ready": self.ready}
        if keeper is None:
            return view
        stale_after = view.get("stale_after_s")
        if not leadership.leading:
            view["healthy"] = True
            view["reason"] = "standby: " + (
                "another replica leads" if keeper.reachable else "the database does not answer"
            )
        elif (
            not leadership.settled
            and view.get("state_writable") is True
            and isinstance(stale_after, int | float)
            and leadership.leading_for_s < stale_after
        ):
            view["healthy"] = True
            view["reason"] = "taking over: first cycle as the leader"
        return view
