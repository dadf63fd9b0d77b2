"""The log line formats, on records made here: one line per event whatever it holds."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from chatnode.logs import JsonFormatter, TextFormatter, fields
from chatnode.ratelimit import RateLimiter

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL)"
                       r" \S+ ")


def record(event: str, values: dict[str, object] | None = None, *, exc: bool = False,
           level: int = logging.INFO) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("first line\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("chatnode.test", level, __file__, 1, event, None, exc_info)
    made.__dict__.update(fields(**(values or {})))
    return made


def test_text_line_is_timestamp_level_logger_event_then_fields() -> None:
    line = TextFormatter().format(record("session opened", {
        "user": "u_1", "device": "d_2", "frames": 3, "code": None}))
    assert TEXT_LINE.match(line)
    assert line.endswith(" INFO chatnode.test session opened user=u_1 device=d_2 frames=3"
                         " code=-")


def test_text_traceback_is_one_escaped_field_on_the_same_line() -> None:
    line = TextFormatter().format(record("unhandled error", {"path": "/api/v1/media"}, exc=True))
    assert line.splitlines() == [line]
    assert " path=/api/v1/media exc=\"Traceback (most recent call last):\\n" in line
    assert "ValueError: first line\\nsecond line" in line


@pytest.mark.parametrize("hostile", ["evil\nINFO forged line", "a\rb", "x\u2028y", "p\x85q",
                                     "sp ace", 'quo"te', "eq=ual", ""])
def test_a_value_cannot_break_or_forge_a_line(hostile: str) -> None:
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record("login failed", {"username": hostile}))
        assert line.splitlines() == [line]
    text = TextFormatter().format(record("login failed", {"username": hostile, "after": "x"}))
    assert text.endswith(f" username={json.dumps(hostile, ensure_ascii=False)} after=x"
                         .translate({0x85: "\\u0085", 0x2028: "\\u2028"}))
    assert json.loads(JsonFormatter().format(record("x", {"username": hostile})))["username"] \
        == hostile


def test_an_event_with_a_line_break_stays_on_one_line() -> None:
    line = TextFormatter().format(record("Error in ASGI Framework\nmore"))
    assert line.splitlines() == [line] and "Framework\\nmore" in line


def test_json_has_the_fixed_keys_and_a_field_never_replaces_one() -> None:
    entry = json.loads(JsonFormatter().format(record(
        "member added", {"conversation": "c_1", "seq": 4, "event": "forged", "level": "forged"})))
    assert list(entry)[:4] == ["ts", "level", "logger", "event"]
    assert (entry["level"], entry["logger"], entry["event"]) == ("INFO", "chatnode.test",
                                                                 "member added")
    assert (entry["conversation"], entry["seq"]) == ("c_1", 4)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_json_traceback_is_the_exc_field() -> None:
    line = JsonFormatter().format(record("unhandled error", exc=True, level=logging.ERROR))
    assert line.splitlines() == [line]
    entry = json.loads(line)
    assert entry["exc"].startswith("Traceback (most recent call last):\n")
    assert entry["exc"].endswith("ValueError: first line\nsecond line")


def test_a_third_party_record_with_percent_args_is_formatted() -> None:
    made = logging.LogRecord("hypercorn.error", logging.WARNING, __file__, 1,
                             "Invalid HTTP request from %s", ("1.2.3.4",), None)
    assert TextFormatter().format(made).endswith(
        " WARNING hypercorn.error Invalid HTTP request from 1.2.3.4")
    assert json.loads(JsonFormatter().format(made))["event"] == \
        "Invalid HTTP request from 1.2.3.4"


def test_a_rate_limit_is_logged_once_per_run_of_refusals(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=1, burst=1, clock=lambda: now[0], name="send")
    with caplog.at_level(logging.INFO, logger="chatnode.ratelimit"):
        assert limiter.take("u_1") is None
        assert all(limiter.take("u_1") is not None for _ in range(100))
        now[0] += 1
        assert limiter.take("u_1") is None
        assert limiter.take("u_1") is not None
    hits = [r for r in caplog.records if r.getMessage() == "rate limit hit"]
    assert len(hits) == 2
    assert fields(limit="send", key="u_1") == {"chatnode_fields": hits[0].chatnode_fields}
