"""Configuration of the lifecycle rules: `rules:` (stuck, overdue, failure streaks, recovered).

`RulesSettings` holds the thresholds: how long a job may stay in `starting` or `recovering`
before it is `stuck`, absolute run-time limits per job-name regex, and the factor over a job
name's own p95 duration beyond which a run is `overdue`. Streaks and `recovered` need no knobs.

What does not live here: evaluating the rules (`monitor.rules`) and their persisted state
(`monitor.store`).
"""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import ConfigModel
from monitor.config.fields import Duration, PositiveDuration
from monitor.config.routing import Regex


class OverdueLimit(ConfigModel):
    """An absolute run-time limit for the jobs whose whole name matches a regex."""

    job_name: Regex = Field(description="Regex the whole job name must match, e.g. nightly_.*.")
    max_runtime: PositiveDuration = Field(
        description="A matching job running longer than this is overdue, e.g. 2h."
    )


class RulesSettings(ConfigModel):
    """Lifecycle rules: events beyond a state change (stuck, overdue, streaks, recovered)."""

    stuck_starting_after: Duration = Field(
        default=900.0, description="A job in starting longer than this is stuck; 0 = off."
    )
    stuck_recovering_after: Duration = Field(
        default=1800.0, description="A job in recovering longer than this is stuck; 0 = off."
    )
    overdue: list[OverdueLimit] = Field(
        default_factory=list,
        description="Absolute run-time limits by job name; the first matching entry applies.",
    )
    overdue_factor: float = Field(
        default=3.0,
        ge=0,
        description="Overdue beyond this many times the name's p95 successful duration; 0 = off.",
    )
    overdue_min_runs: int = Field(
        default=5, ge=1, description="Successful runs of a name needed before its p95 is used."
    )
