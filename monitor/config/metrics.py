"""Configuration of `metrics:`: how many per-job series the exporter keeps, and for which jobs.

Per-job series (`dli_batch_job_state`, `dli_batch_job_info`, ...) exist for active jobs and for
ended ones during `job_series_ttl`, at most `max_job_series` jobs, filtered by job-name regexes;
`histogram_job_names` picks the job names that get their own run-duration histogram series.
Regexes are compiled here, at load time, so a bad one is reported with its key path.

What does not live here: building the series (`monitor.metrics`, `monitor.metrics_jobs`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from monitor.config.base import ConfigModel
from monitor.config.fields import Duration, Kind


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


NameRegex = Annotated[str, Field(min_length=1), AfterValidator(_regex), Kind("regex")]
"""A regular expression that must match a whole job name."""


class MetricsSettings(ConfigModel):
    """Per-job metric series: their lifetime after a job ends, their number, and their jobs."""

    job_series_ttl: Duration = Field(
        default=3600.0,
        description="How long an ended job keeps its per-job series (0 = only while active).",
    )
    max_job_series: int = Field(
        default=2000,
        ge=0,
        description="Most jobs with per-job series; active jobs first, newest first; 0 = none.",
    )
    job_name_allow: list[NameRegex] = Field(
        default_factory=list,
        description="Only jobs whose whole name matches one of these get per-job series; [] = all.",
    )
    job_name_deny: list[NameRegex] = Field(
        default_factory=list,
        description="Jobs whose whole name matches one of these get no per-job series.",
    )
    histogram_job_names: list[NameRegex] = Field(
        default_factory=list,
        description='Job names with their own run-duration histogram; others are job_name="other".',
    )
