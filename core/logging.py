"""structlog JSON logs to stdout. Standard-library records (Temporal's `workflow.logger`, uvicorn) render the same way."""

from __future__ import annotations

import logging
import sys

import structlog

_shared: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _temporal_extra(
    _: structlog.types.WrappedLogger, __: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Lift the workflow/activity info Temporal's loggers attach to records into top-level keys."""
    record = event.get("_record")
    if record is not None:
        for key in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, key, None)
            if isinstance(info, dict):
                for name in ("workflow_id", "run_id", "workflow_type", "activity_type", "activity_id", "attempt"):
                    if name in info:
                        event.setdefault(name if name != "activity_type" else "activity", info[name])
    return event


def configure_logging(level: str = "INFO") -> None:
    """Our own log lines go straight from structlog to stdout: through the standard library's machinery the API's
    access line cost twice as much, on every request. Records of the standard library's loggers render the same way."""
    render: list[structlog.types.Processor] = [
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(ensure_ascii=False),
    ]
    structlog.configure(
        processors=[*_shared, *render],
        logger_factory=structlog.WriteLoggerFactory(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared, _temporal_extra],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
