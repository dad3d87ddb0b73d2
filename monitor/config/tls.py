"""TLS settings of one HTTP endpoint (DLI, IAM, a sink): a private CA, or no verification.

Verification is on by default everywhere. `ca_file` trusts a private CA (PEM bundle) in
addition to nothing else: the bundle replaces the system's for that endpoint. Turning
verification off must be said per endpoint (`verify: false`) and is warned about at start.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from monitor.config.base import ConfigModel


class TlsSettings(ConfigModel):
    """How one endpoint's certificate is checked."""

    ca_file: Path | None = Field(
        default=None,
        description="PEM bundle of the CAs to trust for this endpoint (a private CA); none ="
        " the system's.",
    )
    verify: bool = Field(
        default=True,
        description="Check the endpoint's certificate; false turns that off for this endpoint"
        " only (warned about at start).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.ca_file is not None and not self.verify:
            raise ValueError("give ca_file or verify: false, not both")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} is not a readable file")
        return self
