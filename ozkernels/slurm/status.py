"""The status line a Slurm kernel's node side prints, and reading it back."""

from __future__ import annotations

STATUS_PREFIX = "ozkernels-slurm:"


def parse_status(text: str) -> dict[str, str]:
    """The fields of the last 'ozkernels-slurm: job=... queue_wait=...' line in text, or {}."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(STATUS_PREFIX)]
    if not lines:
        return {}
    words = lines[-1][len(STATUS_PREFIX):].split()
    return dict(w.split("=", 1) for w in words if "=" in w)
