"""Module Pythons: modules (Lmod or Environment Modules) whose names match patterns."""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any

from traitlets import List, Unicode

from .. import fixes
from ..environment import Environment, short_version
from ..kernelspecs import find_kernelspecs, spec_watch_paths
from ..layout import has_ipykernel, version_from_lib
from ..moduleinfo import ModuleInfo
from . import Context, Source


def module_python(module: ModuleInfo) -> str:
    """The interpreter a module puts on PATH, or '' (a stat or two)."""
    for bin_dir in module.bin_dirs:
        for exe in ("python3", "python"):
            path = os.path.join(bin_dir, exe)
            if os.path.exists(path):
                return path
    return ""


def _full_version(module_version: str, version: str) -> str:
    """'3.11.7' from a module version such as '3.11.7-GCCcore-13.2.0' (EasyBuild's), or ''."""
    m = re.match(r"\d+(\.\d+)+", module_version)
    return m.group(0) if m and version and m.group(0).startswith(version + ".") else ""


class ModuleSource(Source):
    """Finds Python interpreters provided by modules."""

    kind = "module"
    noun = "a module Python"
    shared = True
    uses_modules = True
    patterns = List(
        Unicode(), default_value=["python/*", "Python/*"],
        help="fnmatch patterns of module full names that provide a Python (case-sensitive; "
        "'Python/*' is EasyBuild's name).",
    ).tag(config=True)
    exclude = List(
        Unicode(), default_value=[], help="fnmatch patterns of module full names to leave out."
    ).tag(config=True)
    kernelspec_patterns = List(
        Unicode(), default_value=[],
        help="fnmatch patterns of other modules (e.g. 'r/*') whose install prefix may ship "
        "kernelspecs in share/jupyter/kernels (IRkernel installed site-wide); each gets a "
        "kernel per kernelspec in a --system sync.",
    ).tag(config=True)

    def matches(self, module: ModuleInfo) -> bool:
        """Whether a module is a module Python by the configured patterns."""
        name = module.full_name
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.exclude
        )

    def watches_module(self, module: ModuleInfo) -> bool:
        """Module Pythons' modulefiles: their prefix and parents are read from them."""
        return self.matches(module)

    def location(self, env: Environment) -> str:
        """The prefix (the env's path is its modulefile)."""
        return env.prefix

    def gone(self, owner: dict[str, Any], context: Context) -> str:
        """The prefix is gone, or the module system no longer knows the module."""
        why = super().gone(owner, context)
        index = context.modules
        if not why and index.modules and not any(
                m.full_name == owner.get("env_name") for m in index.modules):
            why = f"module {owner.get('env_name')} no longer exists"
        return why

    def watch_paths(self, context: Context) -> list[str]:
        """MODULEPATH dirs and the dirs holding module Pythons' modulefiles."""
        modulepath = context.modules.modulepath or context.modulepath or \
            os.environ.get("MODULEPATH", "")
        paths = [p for p in modulepath.split(":") if p]
        for module in context.modules.modules:
            if self.matches(module):
                paths += [os.path.dirname(module.path), module.mpath]
            # Dirs a modulefile adds to MODULEPATH (Environment Modules' hierarchy): a first
            # Python in one changes only its mtime; the modulefile itself says which dirs.
            if module.uses:
                paths += [module.path, *module.uses]
        return [p for p in paths if p]

    def ships_kernelspecs(self, module: ModuleInfo) -> bool:
        """Whether a module that is not a Python is searched for kernelspecs."""
        name = module.full_name
        return any(fnmatch.fnmatchcase(name, p) for p in self.kernelspec_patterns) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.exclude
        )

    def looked_in(self, context: Context) -> str:
        """The module system's MODULEPATH and the name patterns."""
        index = context.modules
        if not index.modules:
            return f"module Pythons: {index.skipped or 'no modules on MODULEPATH'}"
        return (f"module Pythons named {', '.join(self.patterns)} (c.ModuleSource.patterns) "
                f"among {len(index.modules)} modules on MODULEPATH={index.modulepath}")

    def find(self, context: Context) -> list[Environment]:
        """An Environment per module Python, and per configured module with kernelspecs."""
        found = []
        for module in context.modules.modules:
            if not self.matches(module):
                if self.ships_kernelspecs(module):
                    env = self.kernelspec_module(module)
                    if env:
                        found.append(env)
                continue
            python = module_python(module)
            if not python:
                self.log.debug("module %s puts no python on PATH; skipped", module.full_name)
                continue
            prefix = os.path.dirname(os.path.dirname(python))
            version = short_version(module.version) if module.version[:1].isdigit() else ""
            if not version or not os.path.isdir(os.path.join(prefix, "lib", f"python{version}")):
                version = version_from_lib(prefix)
            # A module may ship ipykernel on the PYTHONPATH it sets (Environment Modules
            # shows that; Lmod's spider does not record PYTHONPATH).
            ipk = has_ipykernel(prefix, version) or any(
                os.path.exists(os.path.join(d, "ipykernel_launcher.py"))
                for d in module.python_dirs)
            real = os.path.realpath(prefix)
            specs = find_kernelspecs(real)
            found.append(
                Environment(
                    kind=self.kind, prefix=real, python=python,
                    name=module.full_name, version=version, modules=module.chain,
                    has_ipykernel=ipk, path=module.path, origin=module.mpath,
                    full_version=_full_version(module.version, version),
                    fix="" if ipk else fixes.module_ipykernel(python, module.chain,
                                                               module.full_name,
                                                               site=context.site),
                    kernelspecs=specs, watch=spec_watch_paths(real, specs),
                )
            )
        return found

    def kernelspec_module(self, module: ModuleInfo) -> Environment | None:
        """An Environment for a non-Python module whose prefix ships kernelspecs, else None."""
        version = short_version(module.version) if module.version[:1].isdigit() else ""
        for bin_dir in module.bin_dirs:
            prefix = os.path.realpath(os.path.dirname(bin_dir.rstrip("/")))
            specs = find_kernelspecs(prefix, lambda _language: version)
            if specs:
                return Environment(
                    kind="module", prefix=prefix, python="", name=module.full_name,
                    version=version, modules=module.chain, path=module.path,
                    origin=module.mpath, kernelspecs=specs, watch=spec_watch_paths(prefix, specs))
        self.log.debug("module %s ships no kernelspecs; skipped", module.full_name)
        return None
