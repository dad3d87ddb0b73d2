"""Conversion of jobs and events to and from JSON-able dicts, and the public webhook payload.

Two shapes live here: the internal one (`job_to_dict`/`event_to_dict`, `routing_to_dict` and
their inverses), which the store persists and which round-trips exactly, and the public
generic-webhook JSON (`webhook_payload`, and `digest_payload` wrapping several), whose
documented keys are a contract with receivers. Datetimes are RFC 3339 strings in UTC with a
`Z` suffix. No I/O here, and no knowledge of SQLite or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.models import DEFAULT_PROJECT, Event, EventKind, Job, JobState
from monitor.models_explain import PlannedSink, RoutingRecord, SilenceNote

JsonDict = dict[str, Any]
"""A dict that `json.dumps` accepts as is."""


class CodecError(ValueError):
    """A stored or received dict does not describe a valid job or event."""


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z` suffix; microseconds only when there are any."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CodecError("naive datetime: every time in the monitor must be timezone-aware")
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_time(text: object) -> datetime:
    """Parse an RFC 3339 string (as written by `format_time`) into an aware UTC datetime."""
    if not isinstance(text, str):
        raise CodecError(f"expected an RFC 3339 string, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CodecError(f"not an RFC 3339 time: {text[:40]!r}") from exc
    if moment.tzinfo is None:
        raise CodecError(f"RFC 3339 time without offset: {text[:40]!r}")
    return moment.astimezone(UTC)


def _optional_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _parse_optional_time(value: object) -> datetime | None:
    return None if value is None else parse_time(value)


def _optional_state(state: JobState | None) -> str | None:
    return None if state is None else state.value


def job_to_dict(job: Job) -> JsonDict:
    """Every field of a job, JSON-able; `job_from_dict` gives back an equal `Job`."""
    return {
        "id": job.id,
        "state": job.state.value,
        "queue": job.queue,
        "name": job.name,
        "owner": job.owner,
        "app_id": job.app_id,
        "sc_type": job.sc_type,
        "raw_state": job.raw_state,
        "create_time": _optional_time(job.create_time),
        "update_time": _optional_time(job.update_time),
        "duration_ms": job.duration_ms,
        "log_tail": list(job.log_tail),
        "state_since": _optional_time(job.state_since),
    }


def job_from_dict(data: Mapping[str, Any]) -> Job:
    """Rebuild a `Job` from `job_to_dict` output; raises `CodecError` when it is not one."""
    try:
        duration = data.get("duration_ms")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
            raise CodecError(f"duration_ms must be an integer, got {type(duration).__name__}")
        return Job(
            id=_text(data["id"], "id"),
            state=JobState(data["state"]),
            queue=_text(data["queue"], "queue"),
            name=_text(data.get("name", ""), "name"),
            owner=_text(data.get("owner", ""), "owner"),
            app_id=_text(data.get("app_id", ""), "app_id"),
            sc_type=_text(data.get("sc_type", ""), "sc_type"),
            raw_state=_text(data.get("raw_state", ""), "raw_state"),
            create_time=_parse_optional_time(data.get("create_time")),
            update_time=_parse_optional_time(data.get("update_time")),
            duration_ms=duration,
            log_tail=tuple(_text(line, "log_tail") for line in data.get("log_tail", ())),
            state_since=_parse_optional_time(data.get("state_since")),
        )
    except CodecError:
        raise
    except KeyError as exc:
        raise CodecError(f"job record lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"invalid job record: {exc}") from exc


def event_to_dict(event: Event) -> JsonDict:
    """Every field of an event, JSON-able; `event_from_dict` gives back an equal `Event`."""
    return {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "target": event.target,
        "job": job_to_dict(event.job),
        "from_state": _optional_state(event.from_state),
        "to_state": _optional_state(event.to_state),
        "observed_at": format_time(event.observed_at),
        "streak": event.streak,
        "detail": event.detail,
        "project": event.project,
        "region": event.region,
    }


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild an `Event` from `event_to_dict` output; raises `CodecError` when it is not one."""
    try:
        from_state = data["from_state"]
        to_state = data["to_state"]
        return Event(
            event_id=_text(data["event_id"], "event_id"),
            kind=EventKind(data["kind"]),
            target=_text(data["target"], "target"),
            job=job_from_dict(data["job"]),
            from_state=None if from_state is None else JobState(from_state),
            to_state=None if to_state is None else JobState(to_state),
            observed_at=parse_time(data["observed_at"]),
            streak=_count(data.get("streak", 0), "streak"),
            detail=_text(data.get("detail", ""), "detail"),
            project=_text(data.get("project", DEFAULT_PROJECT), "project"),
            region=_text(data.get("region", ""), "region"),
        )
    except CodecError:
        raise
    except KeyError as exc:
        raise CodecError(f"event record lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"invalid event record: {exc}") from exc


def routing_to_dict(record: RoutingRecord) -> JsonDict:
    """Every field of a routing decision, JSON-able; `routing_from_dict` gives it back equal."""
    silence = record.silence
    return {
        "plan": [
            {
                "sink": planned.sink,
                "at": format_time(planned.at),
                "route": planned.route,
                "quiet_until": _optional_time(planned.quiet_until),
            }
            for planned in record.plan
        ],
        "matched": list(record.matched),
        "default": record.default,
        "silence": None
        if silence is None
        else {"id": silence.id, "until": format_time(silence.until), "what": silence.what},
        "unrouted": record.unrouted,
        "rule": record.rule,
    }


def routing_from_dict(data: Mapping[str, Any]) -> RoutingRecord:
    """Rebuild a `RoutingRecord` from `routing_to_dict` output (`CodecError` when it is not)."""
    try:
        silence = data.get("silence")
        return RoutingRecord(
            plan=tuple(
                PlannedSink(
                    sink=_text(item["sink"], "sink"),
                    at=parse_time(item["at"]),
                    route=None if item.get("route") is None else _count(item["route"], "route"),
                    quiet_until=_parse_optional_time(item.get("quiet_until")),
                )
                for item in data.get("plan", ())
            ),
            matched=tuple(_text(text, "matched") for text in data.get("matched", ())),
            default=bool(data.get("default", False)),
            silence=None
            if silence is None
            else SilenceNote(
                id=_count(silence["id"], "silence id"),
                until=parse_time(silence["until"]),
                what=_text(silence.get("what", ""), "what"),
            ),
            unrouted=_text(data.get("unrouted", ""), "unrouted"),
            rule=_text(data.get("rule", ""), "rule"),
        )
    except CodecError:
        raise
    except KeyError as exc:
        raise CodecError(f"routing record lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"invalid routing record: {exc}") from exc


def webhook_payload(event: Event, project_id: str) -> JsonDict:
    """The public generic-webhook JSON of one event (documented keys, `streak`, `detail`).

    `project_id` is the DLI project id of the event's project (`project` names it)."""
    job = event.job
    return {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "project": event.project,
        "region": event.region,
        "project_id": project_id,
        "queue": job.queue,
        "target": event.target,
        "job": {
            "id": job.id,
            "name": job.name,
            "owner": job.owner,
            "app_id": job.app_id,
            "sc_type": job.sc_type,
            "create_time": _optional_time(job.create_time),
            "update_time": _optional_time(job.update_time),
            "duration_ms": job.duration_ms,
            "log_tail": list(job.log_tail),
            "raw_state": job.raw_state,
        },
        "from_state": _optional_state(event.from_state),
        "to_state": _optional_state(event.to_state),
        "observed_at": format_time(event.observed_at),
        "streak": event.streak,
        "detail": event.detail,
    }


def digest_payload(
    events: Sequence[Event], notification_id: str, project_ids: Callable[[str], str] | str
) -> JsonDict:
    """The generic-webhook JSON of a digest: every event's `webhook_payload`, in order.

    `project_ids` gives the DLI project id of a project name (a string: one id for all). The
    digest's own `project`/`project_id` are the events' when they share one project, else null.
    """
    lookup = project_ids if callable(project_ids) else (lambda _name: project_ids)
    projects = {event.project for event in events}
    shared = next(iter(projects)) if len(projects) == 1 else None
    return {
        "kind": "digest",
        "notification_id": notification_id,
        "project": shared,
        "project_id": lookup(shared) if shared is not None else None,
        "count": len(events),
        "events": [webhook_payload(event, lookup(event.project)) for event in events],
    }


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CodecError(f"{field} must be a non-negative integer")
    return value


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise CodecError(f"{field} must be a string, got {type(value).__name__}")
    return value
