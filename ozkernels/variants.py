"""Variants: further kernels for an environment besides its base one (one per Slurm profile).

A provider is a configurable class in `Syncer.variant_providers`. The syncer asks it which
variants an environment gets, names each (keeping the name a variant's spec already has), then
asks it to build the variant from the base kernel and the variant's kernel dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traitlets.config import LoggingConfigurable

from .environment import Environment


@dataclass
class Wanted:
    """A kernel a sync wants for an environment: the base one or a variant (e.g. Slurm)."""

    variant: str
    spec: dict[str, Any]
    files: dict[str, bytes]
    name: str = ""


@dataclass(frozen=True)
class VariantRequest:
    """A variant a provider offers for an env: its stable id and what its kernel name adds."""

    variant: str
    suffix: str


class VariantProvider(LoggingConfigurable):
    """Offers variants of environments' kernels; subclasses are listed in the syncer's config."""

    def requests(self, env: Environment) -> list[VariantRequest]:
        """The variants env gets (none by default)."""
        return []

    def build(self, request: VariantRequest, env: Environment, base: Wanted,
              kernel_dir: str) -> Wanted:
        """The variant's kernel, in kernel_dir (its name is the dir's), made from the base one."""
        raise NotImplementedError
