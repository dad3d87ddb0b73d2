"""The base class of every configuration model: frozen, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Frozen, `extra="forbid"`: a typo in a key is reported, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
