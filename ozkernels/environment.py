"""The Environment value object: one Python environment that may get a kernel."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Environment:
    """A discovered Python environment; holds data only, does no I/O."""

    kind: str
    prefix: str
    python: str
    name: str
    version: str = ""
    modules: tuple[str, ...] = ()
    has_ipykernel: bool = False
    problem: str = ""
    fix: str = ""
    path: str = ""
    origin: str = ""
    full_version: str = ""
    extra_modules: tuple[str, ...] = ()
    watch: tuple[str, ...] = field(default=(), compare=False)

    @property
    def broken(self) -> bool:
        """Whether the environment cannot start as it is."""
        return bool(self.problem)

    @property
    def kernel_capable(self) -> bool:
        """Whether a kernel can be written for it."""
        return self.has_ipykernel and not self.problem

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        data = asdict(self)
        data["modules"] = list(self.modules)
        data["extra_modules"] = list(self.extra_modules)
        data.pop("watch")
        return data


def short_version(version: str) -> str:
    """'3.11.7' -> '3.11'; anything unparsable is returned as is."""
    parts = version.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return version
