"""The simulator's stored records: one batch job (`SimJob`) and one answered request.

Also the epoch-millisecond unit every DLI timestamp uses and the realistic create-request body
(fake credential included) each job carries. No indexes, no listing and no HTTP here: `world`
keeps and lists the jobs, `server` answers requests and records them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

LOG_KEEP = 10
"""How many log lines a job keeps: DLI returns the last 10 in every batch object."""

FINAL_STATES = frozenset({"success", "dead", "killed", "error"})
"""Raw states (compared lower-cased) after which a job never changes again."""

FAKE_SECRET = "SIMULATED-SECRET"
"""The fake credential every job's `req_body` carries, so redaction can be tested."""


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, the unit of every DLI timestamp."""
    return int(moment.timestamp() * 1000)


@dataclass
class SimJob:
    """One Spark batch job as the simulator stores it; `state` is raw (any case, any value)."""

    id: str
    name: str
    queue: str
    owner: str
    state: str
    create_ms: int
    update_ms: int
    app_id: str | None = None
    sc_type: str = "A"
    log: list[str] = field(default_factory=list)
    duration_ms: int = 0
    req_body: str = ""

    @property
    def is_final(self) -> bool:
        """True when the raw state is a terminal one (case-insensitive)."""
        return self.state.strip().lower() in FINAL_STATES

    def add_log(self, line: str) -> None:
        """Append one log line, keeping only the last `LOG_KEEP`."""
        self.log.append(line)
        del self.log[:-LOG_KEEP]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator answered, for tests that count calls."""

    method: str
    path: str
    query: dict[str, str]
    operation: str
    status: int


def create_request_body(name: str, queue: str) -> str:
    """A realistic create-request JSON text, fake credential included."""
    return json.dumps(
        {
            "file": f"obs://sim-bucket/jars/{name}.jar",
            "className": "com.example.sim.Main",
            "name": name,
            "queue": queue,
            "sc_type": "A",
            "conf": {"spark.hadoop.fs.obs.secret.key": FAKE_SECRET},
            "args": [f"spark.hadoop.fs.obs.secret.key={FAKE_SECRET}"],
        }
    )
