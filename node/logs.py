"""The node's log lines: plain text (the default) or JSON lines (``log_format = "json"``).

A log call that reports something an operator acts on passes ``extra=event(NAME, ...)``:
the plain format prints its message as it always has, the JSON format one object a line,
``{"ts", "level", "logger", "event", "message", "fields"}``, so a collector can select
on ``event`` and read ``fields`` without parsing prose. A line without an event (a
library's warning, an error's traceback) has event ``"log"``.

Fields are names, heights, rounds, counts, codes and short hash prefixes. Never a key,
a passphrase, a ballot or any other payload: whatever is passed here is written out.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import queue
import time
from typing import Any

LOG_FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def event(what: str, /, **fields: Any) -> dict[str, Any]:
    """The ``extra`` of a log call that names what happened."""
    return {"event": what, "fields": fields}


class JsonLines(logging.Formatter):
    """One JSON object a record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            "fields": getattr(record, "fields", {}),
        }
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted already, where the record was made
            obj["exception"] = record.exc_text
        return json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False)


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-30T09:15:02.123Z``."""
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((created - whole) * 1000):03d}Z"


_writer: logging.handlers.QueueListener | None = None


def close() -> None:
    """Write what is queued and stop the writer thread (at exit, or before reconfiguring)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


atexit.register(close)


def configure(log_format: str, level: str) -> logging.StreamHandler[Any]:
    """Every logger of the process to stderr in ``log_format`` at ``level`` and above;
    the handler that writes them (its stream can be changed).

    Records are written by a thread of their own (a queue between): a write blocks on a
    full or slow disk, and a thread that blocks in a write gives up the interpreter and
    waits its turn to get it back, which the consensus loop must not do for a log line."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        raise ValueError(f"unknown log level {level!r}")
    global _writer
    close()
    writer: logging.StreamHandler[Any] = logging.StreamHandler()
    writer.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _writer = logging.handlers.QueueListener(records, writer)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_Enqueue(records))
    root.setLevel(level_number)
    logging.captureWarnings(True)  # warnings become records, so in JSON they are JSON too
    _writer.start()
    return writer


class _Enqueue(logging.handlers.QueueHandler):
    """Hands the record over as it is: the writer's formatter does all the formatting
    (the stock QueueHandler would merge the message and traceback into one string first)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        if record.exc_info:  # a traceback holds frames; keep only its text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        return record
