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

import json
import logging
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
        return json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False)


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-30T09:15:02.123Z``."""
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((created - whole) * 1000):03d}Z"


def configure(log_format: str, level: str) -> None:
    """Every logger of the process to stderr in ``log_format`` at ``level`` and above."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become records, so in JSON they are JSON too
