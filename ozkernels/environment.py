"""Value objects: an environment that may get kernels, and the kernelspecs it ships."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WrappedSpec:
    """One foreign kernelspec inside an environment; holds data only."""

    name: str
    resource_dir: str
    spec_json: str = "{}"
    resources: tuple[str, ...] = ()
    language_version: str = ""
    problem: str = ""

    @property
    def spec(self) -> dict[str, Any]:
        """The kernel.json dict as the environment ships it."""
        return json.loads(self.spec_json)

    @property
    def language(self) -> str:
        """The spec's language ('' when unreadable)."""
        return str(self.spec.get("language", ""))

    @property
    def display_name(self) -> str:
        """The spec's own display name, or its dir name."""
        return str(self.spec.get("display_name") or self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"name": self.name, "resource_dir": self.resource_dir, "language": self.language,
                "display_name": self.display_name, "language_version": self.language_version,
                "argv": self.spec.get("argv", []), "problem": self.problem}


@dataclass(frozen=True)
class Environment:
    """A discovered environment (with a Python or only other kernels); data only, no I/O."""

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
    kernelspecs: tuple[WrappedSpec, ...] = ()

    @property
    def broken(self) -> bool:
        """Whether the environment cannot start as it is."""
        return bool(self.problem)

    @property
    def wraps(self) -> bool:
        """Whether it ships kernelspecs besides its Python one (IRkernel, bash_kernel, ...)."""
        return bool(self.kernelspecs)

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
        data["kernelspecs"] = [k.to_dict() for k in self.kernelspecs]
        return data


def short_version(version: str) -> str:
    """'3.11.7' -> '3.11'; anything unparsable is returned as is."""
    parts = version.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return version
