"""ModuleInfo: one modulefile as a module system's listing describes it (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModuleInfo:
    """One modulefile as Lmod's spider or Environment Modules' listing sees it."""

    full_name: str
    version: str
    path: str
    bin_dirs: tuple[str, ...] = ()
    lib_dirs: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    mpath: str = ""
    hidden: bool = False
    python_dirs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()

    @property
    def chain(self) -> tuple[str, ...]:
        """The modules to load, parents first, to get this one."""
        return (*self.parents, self.full_name)
