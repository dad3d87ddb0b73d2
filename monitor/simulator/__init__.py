"""A faithful fake of Huawei Cloud DLI's Spark batch API, for demos, tests and benchmarks.

`World` holds the jobs (mutable between test steps) and `world.faults` the misbehaviour plan;
`make_app`/`serve` put DLI's HTTP API (paging, filters, error bodies, AK/SK checks) in front of
it; a `Scenario` driven by `ScenarioDriver` makes jobs start, run, die and succeed over time.
Any DLI client can be pointed at it: ours, the official SDK, curl.
"""

from monitor.simulator.faults import Faults
from monitor.simulator.records import RecordedRequest, SimJob
from monitor.simulator.scenario import (
    Scenario,
    ScenarioDriver,
    ScenarioError,
    default_scenario,
    load_scenario,
)
from monitor.simulator.server import make_app, serve
from monitor.simulator.world import World

__all__ = [
    "Faults",
    "RecordedRequest",
    "Scenario",
    "ScenarioDriver",
    "ScenarioError",
    "SimJob",
    "World",
    "default_scenario",
    "load_scenario",
    "make_app",
    "serve",
]
