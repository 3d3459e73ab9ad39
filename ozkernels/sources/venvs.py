"""venvs (and virtualenv/uv envs) under configurable roots, plus explicitly added ones."""

from __future__ import annotations

import os

from traitlets import Int, List, Unicode

from .. import fixes
from ..environment import Environment, short_version
from ..kernelspecs import find_kernelspecs, spec_watch_paths
from ..layout import has_ipykernel, has_pip, path_problem, read_pyvenv_cfg, version_from_lib
from . import Context, Source

GENERIC_NAMES = {"venv", ".venv", "env", ".env", "virtualenv", ".virtualenv"}


def venv_name(prefix: str) -> str:
    """A readable name: the dir name, or parent/name for generic names like .venv."""
    base = os.path.basename(prefix.rstrip("/"))
    if base in GENERIC_NAMES:
        return f"{os.path.basename(os.path.dirname(prefix.rstrip('/')))}/{base}"
    return base


class VenvSource(Source):
    """Finds venvs by their pyvenv.cfg, without running them."""

    kind = "venv"
    noun = "a venv"
    marker = "pyvenv.cfg"
    activation = "venv"
    uses_modules = True
    roots = List(
        Unicode(),
        default_value=["~/venvs", "~/.venvs", "~/.virtualenvs", "~/envs"],
        help="Directories searched for venvs ('~' and $VARS expanded; symlinks followed).",
    ).tag(config=True)
    max_depth = Int(
        2, help="How many directory levels below each root are searched for a pyvenv.cfg."
    ).tag(config=True)
    paths = List(
        Unicode(), default_value=[], help="Extra venvs to include, wherever they are."
    ).tag(config=True)

    def find(self, context: Context) -> list[Environment]:
        """Every venv under the roots and every added one, once per real path."""
        seen: set[str] = set()
        found: list[Environment] = []
        bases: dict[tuple[str, str], bool] = {}
        explicit = [] if context.site else [
            os.path.expanduser(os.path.expandvars(p)) for p in self.paths]
        for path in [*explicit, *context.registry.added(self.kind)]:
            real = os.path.realpath(path)
            if real not in seen and os.path.isdir(path):
                seen.add(real)
                cfg = _try_cfg(path)
                env = self.inspect(path, real, context, bases, origin="added", cfg=cfg)
                if env:
                    found.append(env)
        for root in [] if context.site else self.roots:
            root = os.path.expanduser(os.path.expandvars(root))
            for path, real, cfg in self.walk(root, seen):
                env = self.inspect(path, real, context, bases, origin=root, cfg=cfg)
                if env:
                    found.append(env)
        return found

    def walk(self, root: str, seen: set[str], searched: list[str] | None = None):
        """(path, realpath, cfg) of dirs holding a pyvenv.cfg, up to max_depth below root.

        `searched`, when given, gets root and every other dir whose pyvenv.cfg was looked for.
        """
        if searched is not None:
            searched.append(root)
        if not os.path.isdir(root):
            return
        visited: set[str] = set()
        stack = [(root, os.path.realpath(root), 0)]
        while stack:
            path, real, depth = stack.pop()
            if real in visited:
                continue
            visited.add(real)
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name, reverse=True)
            except OSError as e:
                if searched is None:  # the sync's own walk has said so already
                    self.log.warning("cannot read %s (%s); skipped", path, e.strerror)
                continue
            for entry in entries:
                try:
                    if not entry.is_dir():
                        continue
                    link = entry.is_symlink()
                except OSError:
                    continue
                child_real = (os.path.realpath(entry.path) if link
                              else os.path.join(real, entry.name))
                if child_real in seen or child_real in visited:
                    continue
                cfg = _try_cfg(entry.path)
                if cfg is not None:
                    seen.add(child_real)
                    yield entry.path, child_real, cfg
                    continue
                if searched is not None:
                    # A dir that is not a venv yet may become one: its own mtime changes then.
                    searched.append(entry.path)
                if depth + 1 < self.max_depth:
                    stack.append((entry.path, child_real, depth + 1))

    def watch_paths(self, context: Context) -> list[str]:
        """The roots, every dir searched below them, and the listed venvs and their parents."""
        paths: list[str] = []
        for root in [] if context.site else self.roots:
            for _ in self.walk(os.path.expanduser(os.path.expandvars(root)), set(), paths):
                pass
        explicit = [] if context.site else [
            os.path.expanduser(os.path.expandvars(p)) for p in self.paths]
        for path in [*explicit, *context.registry.added(self.kind)]:
            paths += [path, os.path.dirname(path.rstrip("/"))]
        return paths

    def looked_in(self, context: Context) -> str:
        """The roots and their depth (c.VenvSource.roots / max_depth)."""
        if context.site:
            return "venvs: only KernelsManager.site_envs in a site run"
        roots = ", ".join(self.roots) or "no roots"
        return (f"venvs (pyvenv.cfg) in {roots}, {self.max_depth} level(s) deep "
                "(c.VenvSource.roots)")

    def inspect(self, path, real, context: Context, bases, origin="", cfg=None):
        """An Environment for one venv dir; broken ones say why."""
        name = venv_name(path)
        python = os.path.join(path, "bin", "python")
        common = {"kind": self.kind, "prefix": real, "name": name, "path": path, "origin": origin}
        if cfg is None:
            return Environment(python=python, problem=f"{path} is not a venv any more "
                               "(no pyvenv.cfg)", fix=fixes.remove(path), **common)
        if isinstance(cfg, OSError):
            fix = fixes.readable(os.path.join(path, "pyvenv.cfg")) if isinstance(
                cfg, PermissionError) else ""
            return Environment(python=python, problem=f"cannot read pyvenv.cfg: {cfg.strerror}",
                               fix=fix, **common)
        if isinstance(cfg, ValueError):
            self.log.warning("%s; the venv is listed as broken", cfg)
            return Environment(python=python, problem=f"damaged pyvenv.cfg: {cfg}",
                               fix=fixes.recreate_venv(path, (), system_site=False), **common)
        home = cfg.get("home", "")
        system_site = cfg.get("include-system-site-packages", "").lower() == "true"
        full = cfg.get("version") or cfg.get("version_info") or ""
        version = short_version(full)
        if not version[:1].isdigit():
            version = version_from_lib(path)
        if path_problem(home):
            cfg_path = os.path.join(path, "pyvenv.cfg")
            why = f"its home line cannot be a path ({path_problem(home)})"
            self.log.warning("%s: %s; the venv is listed as broken", cfg_path, why)
            rebuild = context.modules.python_module(version)
            return Environment(python=python, problem=f"damaged pyvenv.cfg: {why}",
                               fix=fixes.recreate_venv(path, rebuild.chain if rebuild else (),
                                                       system_site=system_site), **common)
        if not home:
            rebuild = context.modules.python_module(version)
            return Environment(python=python, problem="pyvenv.cfg has no 'home' line "
                               "(not made by venv/virtualenv/uv, or damaged)",
                               fix=fixes.recreate_venv(path, rebuild.chain if rebuild else (),
                                                       system_site=system_site), **common)
        specs = find_kernelspecs(real)
        common.update(kernelspecs=specs, watch=spec_watch_paths(real, specs))
        module = context.modules.for_bin_dir(home)
        base_chain = module.chain if module else ()
        modules = context.recorded_modules(real, base_chain)
        # What tells two venvs on the same Python apart in a display name.
        common.update(full_version=full if full.startswith(version + ".") else "",
                      extra_modules=tuple(m for m in modules if m not in base_chain))
        if not os.path.exists(python):
            why = f"its interpreter {python} points to {home}, which is gone"
            if module is None and context.modules.modules:
                why += " (was its module removed?)"
            rebuild = module or context.modules.python_module(version)
            fix = fixes.recreate_venv(path, rebuild.chain if rebuild else (),
                                      system_site=system_site, dangling=True)
            return Environment(python=python, version=version, modules=modules, problem=why,
                               fix=fix, **common)
        ipk = has_ipykernel(path, version)
        base_prefix = os.path.dirname(home.rstrip("/"))
        if not ipk and system_site:
            key = (base_prefix, version)
            if key not in bases:
                bases[key] = has_ipykernel(base_prefix, version)
            ipk = bases[key]
        fix = ""
        if not ipk:
            pip = has_pip(path, version) or (system_site and has_pip(base_prefix, version))
            fix = fixes.venv_ipykernel(python, modules, pip=pip, uv="uv" in cfg)
        return Environment(python=python, version=version, modules=modules, has_ipykernel=ipk,
                           fix=fix, **common)


def _try_cfg(path: str) -> dict[str, str] | OSError | ValueError | None:
    """The parsed pyvenv.cfg of a dir, None when there is none, or the error reading it."""
    cfg = os.path.join(path, "pyvenv.cfg")
    try:
        return read_pyvenv_cfg(cfg)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as e:
        # A dir we may not search does not say whether it is a venv: the walk reports it.
        try:
            os.stat(cfg)
        except OSError:
            return None
        return e
    except (OSError, ValueError) as e:  # ValueError: DamagedFileError
        return e
