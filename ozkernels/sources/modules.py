"""Module Pythons: Lmod modules whose names match configurable patterns."""

from __future__ import annotations

import fnmatch
import os

from traitlets import List, Unicode

from ..environment import Environment, short_version
from ..layout import has_ipykernel, install_ipykernel_hint, version_from_lib
from ..lmod import ModuleInfo
from . import Context, Source


def module_python(module: ModuleInfo) -> str:
    """The interpreter a module puts on PATH, or '' (a stat or two)."""
    for bin_dir in module.bin_dirs:
        for exe in ("python3", "python"):
            path = os.path.join(bin_dir, exe)
            if os.path.exists(path):
                return path
    return ""


class ModuleSource(Source):
    """Finds Python interpreters provided by Lmod modules."""

    kind = "module"
    patterns = List(
        Unicode(), default_value=["python/*"],
        help="fnmatch patterns of module full names that provide a Python (e.g. 'python/*').",
    ).tag(config=True)
    exclude = List(
        Unicode(), default_value=[], help="fnmatch patterns of module full names to leave out."
    ).tag(config=True)

    def matches(self, module: ModuleInfo) -> bool:
        """Whether a module is a module Python by the configured patterns."""
        name = module.full_name
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.exclude
        )

    def find(self, context: Context) -> list[Environment]:
        """An Environment per matching module with an interpreter on its PATH."""
        found = []
        for module in context.modules.modules:
            if not self.matches(module):
                continue
            python = module_python(module)
            if not python:
                self.log.debug("module %s puts no python on PATH; skipped", module.full_name)
                continue
            prefix = os.path.dirname(os.path.dirname(python))
            version = short_version(module.version) if module.version[:1].isdigit() else ""
            if not version or not os.path.isdir(os.path.join(prefix, "lib", f"python{version}")):
                version = version_from_lib(prefix)
            ipk = has_ipykernel(prefix, version)
            found.append(
                Environment(
                    kind="module", prefix=os.path.realpath(prefix), python=python,
                    name=module.full_name, version=version, modules=module.chain,
                    has_ipykernel=ipk, path=module.path, origin=module.mpath,
                    fix="" if ipk else install_ipykernel_hint(python, module.chain),
                )
            )
        return found
