"""How the node's log lines look: one line per event, text for people or JSON for machines.

An event is logged with the standard library: the message is the event's name ("session
opened") and its details are fields, passed as `extra=fields(user=..., device=...)`:

    2026-11-23T12:00:00.123Z INFO chatnode.ws session opened user=u_1 device=d_2 codec=json
    {"ts": "2026-11-23T12:00:00.123Z", "level": "INFO", "logger": "chatnode.ws",
     "event": "session opened", "user": "u_1", "device": "d_2", "codec": "json"}  (one line)

Every record becomes exactly one line, whatever it holds: a traceback is an `exc` field, and
text that could break a line (a newline in a username, a U+2028) is escaped, so a log shipper
or `grep` never sees half an event and nobody can forge a line. Third-party loggers (hypercorn,
Python's warnings) go through the same formatter.

Nothing here decides what is logged. The rule that message bodies, passwords and tokens never
reach a log is kept by the callers, which pass ids, counts and codes only.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

_FIELDS = "chatnode_fields"
# Characters that end a line for str.splitlines() and that json.dumps(ensure_ascii=False)
# leaves as they are.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_NEEDS_QUOTES = frozenset(' "=\\')

log = logging.getLogger("chatnode")


def fields(**values: Any) -> dict[str, Any]:
    """The `extra` of a log call: the event's fields, in the order given."""
    return {_FIELDS: values}


def _timestamp(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_LINE_BREAKS)


def _text_value(value: Any) -> str:
    text = "-" if value is None else str(value)
    if text and text.isprintable() and not _NEEDS_QUOTES.intersection(text):
        return text
    return _quoted(text)


def _one_line(text: str) -> str:
    # isprintable() is False for every line break (and any other control character).
    return text if text.isprintable() else _quoted(text)[1:-1]


class _EventFormatter(logging.Formatter):
    def _parts(self, record: logging.LogRecord) -> tuple[str, dict[str, Any], str | None]:
        """(event, fields, traceback or None)."""
        trace = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            trace = record.exc_text
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            trace = stack if trace is None else f"{trace}\n{stack}"
        return record.getMessage(), getattr(record, _FIELDS, {}), trace


class TextFormatter(_EventFormatter):
    """`TIMESTAMP LEVEL LOGGER event key=value ...`; values with spaces, quotes or line breaks
    are JSON strings."""

    def format(self, record: logging.LogRecord) -> str:
        event, values, trace = self._parts(record)
        line = [_timestamp(record.created), record.levelname, record.name, _one_line(event)]
        line.extend(f"{key}={_text_value(value)}" for key, value in values.items())
        if trace is not None:
            line.append(f"exc={_quoted(trace)}")
        return " ".join(line)


class JsonFormatter(_EventFormatter):
    """One JSON object per line: ts, level, logger, event, then the event's fields (and `exc`
    for a traceback). A field never replaces one of the fixed keys."""

    def format(self, record: logging.LogRecord) -> str:
        event, values, trace = self._parts(record)
        entry: dict[str, Any] = {"ts": _timestamp(record.created), "level": record.levelname,
                                 "logger": record.name, "event": event}
        for key, value in values.items():
            entry.setdefault(key, value)
        if trace is not None:
            entry["exc"] = trace
        return json.dumps(entry, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stderr) through one formatter. Warnings and
    errors no one caught (in the main thread or the store's writer thread) are logged there
    too, rather than printed as a multi-line traceback."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request's URL at info, and a push endpoint's URL is as good as a
    # password to whoever reads it: only their warnings and errors.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException,
                  traceback: TracebackType | None) -> None:
    log.critical("unhandled error", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else None
    log.critical("unhandled error in thread", extra=fields(thread=thread),
                 exc_info=(args.exc_type, args.exc_value or args.exc_type(),
                           args.exc_traceback))
