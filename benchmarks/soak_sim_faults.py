"""The simulator process's side of the fault soak: `SimFaults` arms DLI faults and counts them.

It lives in the simulator process (`scale_sim`, commands ``fault {json}`` and ``hold {json}``):
it arms the DLI faults on the world and counts what really fired (a rule armed while the daemon
is down or stalled may never fire: answer rules expire after `RULE_TTL_INTERVALS` poll
intervals); an inserted job is written to the ground truth and given a normal life by the
driver. The seeded schedule of which fault comes when is the harness's (`soak_faults`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.soak_faults import RULE_TTL_INTERVALS


class SimFaults:
    """The simulator's side: arms DLI faults on the world and counts the ones that fired.

    `project` and `driver` are `benchmarks.scale_sim_activity`'s `Project` and `Driver`; `announce`
    prints a JSON line (the moment a listing is held, for the harness to SIGKILL the daemon).
    """

    def __init__(
        self, project: Any, driver: Any, announce: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.project = project
        self.driver = driver
        self.announce = announce or (lambda line: print(json.dumps(line), flush=True))
        self.armed: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        self.hold_spec: dict[str, Any] | None = None
        self.holds = 0
        self.revoke_armed = False
        self.expired: Counter[str] = Counter()
        self._armed: list[tuple[float, Any]] = []
        """(when, rule) of the answer rules armed and maybe not used up yet."""
        world = project.world
        self._take_response = world.faults.take_response
        self._take_delay = world.faults.take_delay
        self._token_revoked = world.faults.token_revoked
        self._apply_drift = world.apply_drift
        world.faults.take_response = self.take_response
        world.faults.take_delay = self.take_delay
        world.faults.token_revoked = self.token_revoked
        world.apply_drift = self.apply_drift

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm one fault (``{"kind": ..., params}``) or ``{"kind": "clear"}``; the ack's extra."""
        faults, kind = self.project.world.faults, spec["kind"]
        self._expire()
        rules = len(faults.rules)
        if kind == "clear":
            faults.clear()
            self.revoke_armed = False
        elif kind == "dli_5xx":
            faults.fail("any", status=spec["status"], count=spec["count"])
        elif kind == "dli_429":
            faults.rate_limit("any", retry_after=spec["retry_after"], count=spec["count"])
        elif kind == "dli_slow":
            faults.delay("any", spec["seconds"], count=spec["count"])
        elif kind == "dli_malformed":
            faults.malformed("any", spec["body"], count=spec["count"])
        elif kind == "dli_insert":
            queue = self.project.rng.choice(self.project.queues)
            self.project.made += 1
            job = {
                "queue": queue,
                "name": f"{queue}-inserted-{self.project.made:07d}",
                "owner": "inserter",
                "job_id": self.project.new_id(),
            }
            faults.insert_during_paging(job, after_offset=spec["offset"])
        elif kind == "dli_reset":
            faults.reset("any", count=spec["count"])
        elif kind == "revoke_tokens":
            self.revoke_armed = True  # fires in the daemon's next listing: mid-cycle
        else:
            return {"error": f"unknown fault kind {kind!r}"}
        if len(faults.rules) > rules:
            self._armed.append((time.monotonic(), faults.rules[-1]))
        self.armed[kind] += 1
        return {"kind": kind}

    def _expire(self) -> None:
        """Disarm the rules armed `RULE_TTL_INTERVALS` poll intervals ago and not used up."""
        if not self._armed:
            return
        limit = time.monotonic() - RULE_TTL_INTERVALS * self.driver.interval
        stale = {id(rule): rule for at, rule in self._armed if at < limit and rule.remaining > 0}
        if stale:
            faults = self.project.world.faults
            faults.rules = [rule for rule in faults.rules if id(rule) not in stale]
            self.expired.update(rule.kind for rule in stale.values())
        self._armed = [(at, rule) for at, rule in self._armed if at >= limit and rule.remaining]

    def take_response(self, operation: str, offset: int | None, queue: str | None) -> Any:
        """The world's own rule lookup, counted."""
        self._expire()
        rule = self._take_response(operation, offset, queue)
        if rule is not None:
            names = {"fail": "dli_5xx", "rate_limit": "dli_429", "reset": "dli_reset"}
            name = names.get(rule.kind, "dli_malformed")
            self.fired[name] += 1
        return rule

    def take_delay(self, operation: str, offset: int | None, queue: str | None) -> float:
        """The world's own delay lookup, counted."""
        self._expire()
        seconds = self._take_delay(operation, offset, queue)
        if seconds > 0:
            self.fired["dli_slow"] += 1
        if self.revoke_armed and operation == "list_batches":
            self.revoke_armed = False  # this request passed; the cycle's next ones get 401
            self.project.world.faults.revoke_tokens()
        spec = self.hold_spec
        if spec and operation == "list_batches" and (offset or 0) >= spec.get("min_offset", 0):
            self.hold_spec, self.holds = None, self.holds + 1
            self.announce({"held": operation, "offset": offset, "queue": queue, "t": time.time()})
            seconds += float(spec["seconds"])
        return float(seconds)

    def hold(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Hold the next listing at offset >= ``min_offset`` for ``seconds``; ``{}`` disarms."""
        self.hold_spec = dict(spec) if spec.get("seconds") else None
        return {"armed": self.hold_spec is not None, "holds": self.holds}

    def token_revoked(self, epoch: int) -> bool:
        """The world's own revocation check, counted when it refuses a token."""
        revoked = bool(self._token_revoked(epoch))
        if revoked:
            self.fired["revoke_tokens"] += 1
        return revoked

    def apply_drift(self, offset: int, queue: str | None) -> None:
        """Fire due drift triggers; each inserted job enters the ground truth and the driver."""
        if not self.project.world.faults.drifts:
            return  # the common case: nothing armed, and no copy of 100,000 job ids
        before = set(self.project.world.jobs)
        self._apply_drift(offset, queue)
        for job_id in set(self.project.world.jobs) - before:
            job = self.project.world.get(job_id)
            self.project.record(job_id, job.queue, None, job.state, job.create_ms, "insert")
            self.fired["dli_insert"] += 1
            self.driver.starting.add(job_id)
            self.driver.schedule(self.driver.rng.uniform(0.5, 2.5), job_id, "run")
        self.project.truth.flush()
