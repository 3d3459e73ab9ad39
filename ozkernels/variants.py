"""Variants: further kernels for an environment besides its base one (one per Slurm profile)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Wanted:
    """A kernel a sync wants for an environment: the base one or a variant (e.g. Slurm)."""

    variant: str
    spec: dict[str, Any]
    files: dict[str, bytes]
    name: str = ""
