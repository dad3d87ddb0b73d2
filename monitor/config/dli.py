"""Configuration of the DLI side: one project (`dli:` as a mapping) or several (`dli:` as a list).

`DliSettings` is how one project is reached: endpoint, region, project id, auth, request budget,
retries, TLS. The `dli:` key holds one of them (with the queues at the top level, `queues:`) or a
list of `DliProjectSettings`, each with its own `name` and `queues`: quotas and tokens are per
account and project, so each entry keeps its own request budget and token cache. `DliConfig` is
the annotated type that accepts both and reports problems at their key paths (`dli[1].name`).

`ProjectSettings` is the normalised view the rest of the daemon uses (`Settings.projects`): one
per project, with its region settled (given, else taken from the endpoint's host
`dli.<region>.myhuaweicloud.com`; a single mapping falls back to `local`, a list entry must say)
and its store keys: the single form keeps bare queue names (so existing state files go on), a
list entry's targets are stored as `<name>/<queue>`.

What does not live here: the rest of the file's models (`monitor.config.models`), turning
settings into clients (`monitor.wiring`, `monitor.pipeline`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails

from monitor.config.base import ConfigModel as _Model
from monitor.config.fields import (
    ALL_QUEUES,
    Duration,
    HttpUrl,
    Kind,
    OptionalSecret,
    PositiveDuration,
    ProjectId,
    Queues,
    Secret,
    SecretFile,
    Text,
    problem,
    reraisable,
)
from monitor.config.tls import TlsSettings
from monitor.models import DEFAULT_PROJECT, LOCAL_REGION, ProjectRef

_PROJECT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_DLI_HOST = re.compile(r"dli\.([a-z0-9][a-z0-9-]*)\.myhuaweicloud\.(?:com|eu)")


class AkSkAuthSettings(_Model):
    """AK/SK request signing (recommended by Huawei Cloud)."""

    type: Literal["aksk"] = Field(description="Sign every request with an access key pair.")
    access_key: Secret = Field(description="Access key id (AK).")
    access_key_file: SecretFile = Field(default=None, description="File holding the AK instead.")
    secret_key: Secret = Field(description="Secret access key (SK).")
    secret_key_file: SecretFile = Field(default=None, description="File holding the SK instead.")
    security_token: OptionalSecret = Field(
        default=None, description="Security token of temporary credentials; empty = none."
    )
    security_token_file: SecretFile = Field(
        default=None, description="File holding the security token instead."
    )


class TokenAuthSettings(_Model):
    """An IAM user token, fetched with a password and refreshed before it expires."""

    type: Literal["token"] = Field(description="Authenticate with an IAM token.")
    iam_endpoint: HttpUrl = Field(
        default="https://iam.myhuaweicloud.com", description="IAM endpoint that issues tokens."
    )
    tls: TlsSettings | None = Field(default=None, description="TLS checks of the IAM endpoint.")
    domain_name: Text = Field(description="Account (domain) name the IAM user belongs to.")
    username: Text = Field(description="IAM user name.")
    password: Secret = Field(description="IAM user password.")
    password_file: SecretFile = Field(
        default=None, description="File holding the password instead."
    )


class NoAuthSettings(_Model):
    """No authentication (the simulator, or a trusted proxy that signs for us)."""

    type: Literal["none"] = Field(description="Send requests unauthenticated.")


AuthSettings = Annotated[
    AkSkAuthSettings | TokenAuthSettings | NoAuthSettings, Field(discriminator="type")
]


class RetrySettings(_Model):
    """How a failed DLI request is retried within one cycle."""

    attempts: int = Field(default=4, ge=1, description="Tries per request, the first included.")
    backoff: list[Duration] = Field(
        default=[1.0, 2.0, 4.0], min_length=1, description="Waits between tries; the last repeats."
    )


def _matches(pattern: re.Pattern[str], message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


Region = Annotated[
    str, _matches(_REGION, "must be lowercase letters, digits and '-', e.g. cn-north-4")
]
ProjectName = Annotated[
    str,
    _matches(
        _PROJECT_NAME,
        "must be 1-40 lowercase letters, digits or '-', starting and ending with a letter or digit",
    ),
]


class DliSettings(_Model):
    """Where DLI is and how to talk to it."""

    endpoint: HttpUrl = Field(
        description="DLI endpoint, e.g. https://dli.cn-north-4.myhuaweicloud.com (http: simulator)."
    )
    region: Region | None = Field(
        default=None,
        description="Region id, e.g. cn-north-4; a label on every series and event. Default:"
        " taken from an endpoint dli.<region>.myhuaweicloud.com; else `local` for a single"
        " `dli:` mapping, and required in a list entry.",
    )
    project_id: ProjectId = Field(description="Project id (1-64 letters/digits) in API paths.")
    auth: AuthSettings = Field(description="How requests are authenticated.")
    page_size: int = Field(
        default=100, ge=1, le=1000, description="Jobs per listing page (1-1000)."
    )
    request_timeout: PositiveDuration = Field(
        default=10.0, description="Timeout of one HTTP request."
    )
    max_requests_per_minute: int = Field(
        default=60,
        ge=0,
        description="Request budget against DLI (per project: quotas are per account and"
        " project); 0 = unlimited.",
    )
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Request retries.")
    tls: TlsSettings | None = Field(default=None, description="TLS checks of the DLI endpoint.")
    max_concurrency: int = Field(
        default=4,
        ge=1,
        description="DLI requests in flight at once (listings, pages and state calls).",
    )


class DliProjectSettings(DliSettings):
    """One entry of a `dli:` list: a project with its own name, queues and credentials."""

    name: ProjectName = Field(
        description="Name of the project in labels, messages, routes and state keys"
        " (`<name>/<queue>`); lowercase letters, digits and '-', unique."
    )
    queues: Queues = Field(
        description='Queues of this project to watch: a list of names, or "*" for all jobs.'
    )


def region_from_endpoint(endpoint: str) -> str | None:
    """The region in `https://dli.<region>.myhuaweicloud.com` (or `.eu`), else None."""
    try:
        host = (urlsplit(endpoint).hostname or "").lower()
    except ValueError:
        return None
    match = _DLI_HOST.fullmatch(host)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """One project to poll, normalised from either form of `dli:` (see the module docstring)."""

    name: str
    region: str
    dli: DliSettings
    queues: list[str] | Literal["*"]
    listed: bool
    """True for an entry of a `dli:` list: its targets are stored as `<name>/<queue>`."""
    path: str
    """Where it is configured, for messages: `dli` or `dli[1]`."""

    @property
    def targets(self) -> tuple[str, ...]:
        """The poll targets: each configured queue, or `*` for the whole project."""
        return (ALL_QUEUES,) if self.queues == ALL_QUEUES else tuple(self.queues)

    @property
    def ref(self) -> ProjectRef:
        """The project as the layers below the config see it: labels and store keys."""
        return ProjectRef(self.name, self.region, self.listed)

    def key(self, target: str) -> str:
        """The store key of one target: the bare queue (single form), or `<name>/<queue>`."""
        return self.ref.key(target)


def projects_of(
    dli: DliSettings | list[DliProjectSettings], queues: list[str] | Literal["*"] | None
) -> tuple[ProjectSettings, ...]:
    """Both forms of `dli:` as one tuple of projects (validation has checked the regions)."""
    if isinstance(dli, list):
        return tuple(
            ProjectSettings(
                name=entry.name,
                region=entry.region or region_from_endpoint(entry.endpoint) or LOCAL_REGION,
                dli=entry,
                queues=entry.queues,
                listed=True,
                path=f"dli[{index}]",
            )
            for index, entry in enumerate(dli)
        )
    return (
        ProjectSettings(
            name=DEFAULT_PROJECT,
            region=dli.region or region_from_endpoint(dli.endpoint) or LOCAL_REGION,
            dli=dli,
            queues=queues if queues is not None else [],
            listed=False,
            path="dli",
        ),
    )


_PROJECT_LIST = TypeAdapter(list[DliProjectSettings])
NO_REGION = (
    "required: the endpoint does not name a region (dli.<region>.myhuaweicloud.com);"
    " say which region this project is in"
)


def _one_or_many(value: Any) -> DliSettings | list[DliProjectSettings]:
    """A `dli:` mapping as `DliSettings`, a list as `DliProjectSettings` entries, checked."""
    if isinstance(value, DliSettings):
        return value
    if isinstance(value, dict):
        return DliSettings.model_validate(value)
    if not isinstance(value, list):
        raise ValueError("must be a mapping (one project) or a list of projects")
    if not value:
        raise ValueError("must not be empty: list at least one project")
    problems = _name_problems(value)
    try:
        entries = _PROJECT_LIST.validate_python(value)
    except ValidationError as exc:
        details = [reraisable(error) for error in exc.errors()]
        raise ValidationError.from_exception_data("dli", details + problems) from None
    problems += [
        problem((index, "region"), NO_REGION)
        for index, entry in enumerate(entries)
        if entry.region is None and region_from_endpoint(entry.endpoint) is None
    ]
    if problems:
        raise ValidationError.from_exception_data("dli", problems)
    return entries


def _name_problems(entries: list[Any]) -> list[InitErrorDetails]:
    """Duplicate and reserved project names in the raw list."""
    problems: list[InitErrorDetails] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name == DEFAULT_PROJECT:
            problems.append(
                problem(
                    (index, "name"),
                    f"'{DEFAULT_PROJECT}' is the name of a single `dli:` mapping; choose another",
                )
            )
        elif name in first:
            problems.append(
                problem((index, "name"), f"duplicate project name (also dli[{first[name]}])")
            )
        else:
            first[name] = index
    return problems


DliConfig = Annotated[
    DliSettings | list[DliProjectSettings],
    PlainValidator(_one_or_many),
    Kind("mapping, or list of mappings"),
]
"""The `dli:` key: one project (a mapping) or several (a list of entries with `name`)."""
