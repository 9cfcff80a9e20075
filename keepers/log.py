"""Structured logs: one JSON object per line on stderr (`event` plus fields)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class Log:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream  # None: whatever sys.stderr is at each write

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "keeper": self.name, "level": level, "event": event}
        record.update({k: _plain(v) for k, v in fields.items()})
        self.stream.write(json.dumps(record, sort_keys=False) + "\n")
        self.stream.flush()

    def warn(self, event: str, **fields: Any) -> None:
        self(event, level="warning", **fields)

    def error(self, event: str, **fields: Any) -> None:
        self(event, level="error", **fields)


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and abs(value) >= 2**53:
        return str(value)  # exact, not a JSON float
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
