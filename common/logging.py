"""Logging: structlog configured once, JSON off a terminal, console on one, secrets redacted."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

REDACTED = "[redacted]"
_SENSITIVE = re.compile(
    r"token|secret|password|authorization|api_key|apikey|signature|cookie|code_verifier|^code$",
    re.IGNORECASE,
)


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if _SENSITIVE.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every token-, secret- or signature-like key, nested ones too."""
    for key in list(event_dict):
        if key == "event":
            continue
        if _SENSITIVE.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


class _Stderr:
    """Writes to whatever `sys.stderr` is at each write (it may be replaced after configuration)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    fmt: Literal["json", "console", "auto"] = "auto", level: int = logging.INFO
) -> None:
    """Configure structlog (and the stdlib root logger) once for the whole process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    # Colour only on a terminal: a log written to a file (`make run`'s .run/*.log) stays plain.
    colours = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=colours)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "arq.worker", "arq.jobs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
