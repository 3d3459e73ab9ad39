"""ozkernels' events on Jupyter Server's event bus (jupyter_events) for JupyterLab."""

from __future__ import annotations

import logging
from typing import Any

SCHEMA_ID = "https://events.ozkernels.org/ozkernels/v1"
KERNELSPECS_CHANGED = "kernelspecs-changed"
START_FAILED = "start-failed"
CHECK_STARTED = "check-started"
CHECK_FINISHED = "check-finished"
ACTIONS = (KERNELSPECS_CHANGED, START_FAILED, CHECK_STARTED, CHECK_FINISHED)

_NAMES = {"type": "array", "items": {"type": "string"}}
SCHEMA: dict[str, Any] = {
    "$id": SCHEMA_ID,
    "version": "1",
    "title": "ozkernels",
    "personal-data": True,
    "description": "Kernel specs that ozkernels (or anyone) changed, kernels that failed to "
    "start, and kernel checks run from the server.",
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"enum": list(ACTIONS), "description": "What happened."},
        "added": {**_NAMES, "description": "Kernel specs that appeared."},
        "removed": {**_NAMES, "description": "Kernel specs that disappeared."},
        "changed": {**_NAMES, "description": "Kernel specs whose kernel.json changed."},
        "kernel": {"type": "string", "description": "The kernel a failure or check is about."},
        "message": {"type": "string", "description": "The launcher's one line, or an error."},
        "connection_file": {"type": "string", "description": "The failed start's file."},
        "when": {"type": "string", "description": "When it failed (ISO 8601)."},
        "ok": {"type": "boolean", "description": "Whether a check passed."},
        "seconds": {"type": "number", "description": "A check's start-to-ready time."},
    },
}


class Announcer:
    """Emits ozkernels' events; call it on the server's event-loop thread."""

    def __init__(self, event_logger: Any, log: logging.Logger):
        self.event_logger = event_logger
        self.log = log
        if event_logger is not None:
            event_logger.register_event_schema(SCHEMA)

    def __call__(self, action: str, **data: Any) -> None:
        """Emit one event (jupyter_events schedules its listeners on the running loop)."""
        if self.event_logger is None:
            return
        try:
            self.event_logger.emit(schema_id=SCHEMA_ID, data={"action": action, **data})
        except Exception as e:  # an event nobody can read must not break a sync or a check
            self.log.warning("ozkernels: could not emit %s event: %s", action, e)
