"""The status page's pure parts: safe text, links, the jobs table, windows, sink activity.

The pages themselves, from a running daemon and in a browser, are tested in
`tests/integration/test_status_page.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.ratelimit import budget_for
from monitor.status_markup import MAX_SHOWN, Where, job_link, text
from monitor.status_page import LongRunner, counts
from monitor.status_sinks import SinkActivity, nominal

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("<b>x</b> & 'y' \"z\"", "&lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27; &quot;z&quot;"),
        ("bell\x07 esc\x1b[31m nul\x00", "bell\ufffd esc\ufffd[31m nul\ufffd"),
        ("\u202eevil\u2066x\u2069", "\ufffdevil\ufffdx\ufffd"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
    ],
)
def test_outside_text_is_escaped_and_loses_control_and_bidi_characters(
    raw: str, shown: str
) -> None:
    assert text(raw) == shown


def test_long_outside_text_is_cut_with_an_ellipsis() -> None:
    assert text("x" * 10_000) == "x" * (MAX_SHOWN - 1) + "\u2026"
    assert text("<" * 500, limit=3) == "&lt;&lt;\u2026"


def test_links_quote_the_job_id_and_keep_the_readers_choice_to_stop_reloading() -> None:
    home = Where("", "./", 30.0)
    job = Where("../", "abc", 30.0, paused=True)
    assert job_link(home, 'a/b?c"d', "<x>") == '<a href="jobs/a%2Fb%3Fc%22d">&lt;x&gt;</a>'
    assert job_link(job, "id") == '<a href="../jobs/id?refresh=off">id</a>'
    assert (home.href(""), job.href("")) == ("./", "../?refresh=off")


def test_the_jobs_table_puts_dli_states_first_and_odd_ones_after() -> None:
    table = counts(
        {
            ("p", "r", "etl", "running"): 2,
            ("p", "r", "etl", "unknown"): 1,
            ("p", "r", "adhoc", "dead"): 4,
        }
    )
    assert table.states == ("starting", "running", "recovering", "success", "dead", "unknown")
    assert [(r.queue, r.counts, r.total) for r in table.rows] == [
        ("adhoc", (0, 0, 0, 0, 4, 0), 4),
        ("etl", (0, 2, 0, 0, 0, 1), 3),
    ]
    assert table.total == 7


def test_send_windows_are_shown_at_their_configured_length() -> None:
    lengths = [w.length_s for w in budget_for(1, 20).windows]
    assert [nominal(length) for length in lengths] == [1.0, 60.0]
    assert nominal(300.0) == 300.0


def test_a_sinks_last_failure_kind_lasts_until_it_delivers_again() -> None:
    seen: list[tuple[str, str]] = []
    activity = SinkActivity(lambda: T0)
    outcome = activity.observer(lambda *a: seen.append(a))
    failure = activity.failures(lambda *a: seen.append(a))
    assert activity.last("hook") is None
    failure("hook", "http_5xx")
    outcome("hook", "retry")
    last = activity.last("hook")
    assert last is not None and (last.outcome, last.failure) == ("retry", "http_5xx")
    outcome("hook", "delivered")
    last = activity.last("hook")
    assert last is not None and (last.outcome, last.failure) == ("delivered", "")
    assert seen == [("hook", "http_5xx"), ("hook", "retry"), ("hook", "delivered")]


def test_a_long_runner_counts_from_the_lower_of_its_usual_run_time_and_its_limit() -> None:
    runner = LongRunner("etl", "j", "n", "etl", 700.0, usual_s=600.0, limit_s=1800.0, limit_why="")
    assert (runner.threshold_s, runner.overdue) == (600.0, False)
    late = LongRunner("etl", "j", "n", "etl", 2000.0, usual_s=None, limit_s=1800.0, limit_why="")
    assert (late.threshold_s, late.overdue) == (1800.0, True)
