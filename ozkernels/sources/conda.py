"""conda and mamba envs, found the way conda lists them, without running conda."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import stat
from typing import Any

from traitlets import List, Unicode

from .. import fixes
from ..environment import Environment
from ..kernelspecs import conda_versions, find_kernelspecs, spec_watch_paths
from ..layout import (
    has_ipykernel,
    path_problem,
    read_small,
    text_lines,
    version_from_lib,
    version_from_python_link,
)
from . import Context, Source

_KEY = re.compile(r"^(envs_dirs|envs_path)\s*:\s*(.*)$")


def condarc_paths(environ, home: str) -> list[str]:
    """conda's configuration search path, in conda's order."""
    paths = ["/etc/conda/.condarc", "/etc/conda/condarc",
             *sorted(glob.glob("/etc/conda/condarc.d/*.yml")),
             "/var/lib/conda/.condarc", "/var/lib/conda/condarc"]
    if environ.get("CONDA_ROOT"):
        paths.append(os.path.join(environ["CONDA_ROOT"], ".condarc"))
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths += [os.path.join(xdg, "conda", ".condarc"), os.path.join(xdg, "conda", "condarc"),
              os.path.join(home, ".config", "conda", ".condarc"),
              os.path.join(home, ".conda", ".condarc"), os.path.join(home, ".conda", "condarc"),
              os.path.join(home, ".condarc")]
    if environ.get("CONDA_PREFIX"):
        paths.append(os.path.join(environ["CONDA_PREFIX"], ".condarc"))
    if environ.get("CONDARC"):
        paths.append(environ["CONDARC"])
    return list(dict.fromkeys(paths))


def parse_envs_dirs(text: str) -> list[str]:
    """The envs_dirs entries of a condarc (block or flow YAML list), without a YAML parser."""
    dirs: list[str] = []
    lines = text_lines(text)
    for i, line in enumerate(lines):
        m = _KEY.match(line.split(" #")[0].rstrip())
        if not m:
            continue
        rest = m.group(2).strip()
        if rest.startswith("["):
            dirs += [_unquote(v) for v in rest.strip("[]").split(",") if v.strip()]
            continue
        for item in lines[i + 1:]:
            stripped = item.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not item[:1].isspace() and not stripped.startswith("-"):
                break
            if not stripped.startswith("-"):
                break
            dirs.append(_unquote(stripped[1:].split(" #")[0]))
    return [d for d in dirs if d]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def shorten_home(path: str, home: str) -> str:
    """A path with the home dir shown as ~."""
    return "~" + path[len(home):] if home != "/" and path.startswith(home + "/") else path


class CondaSource(Source):
    """Finds conda/mamba envs from environments.txt, condarc envs_dirs and the env vars."""

    kind = "conda"
    noun = "a conda env"
    marker = "conda-meta/history"
    activation = "conda"
    uses_modules = True
    envs_dirs = List(
        Unicode(), default_value=[], help="Extra directories whose subdirs are conda envs."
    ).tag(config=True)
    conda_module = Unicode(
        "", help="Module loaded before a conda env is activated (e.g. 'conda/latest'); "
        "empty for none.",
    ).tag(config=True)

    def candidate_dirs(self, context: Context) -> list[str]:
        """Every envs dir conda would use, in conda's order."""
        env, home = os.environ, context.home
        dirs = [os.path.expanduser(os.path.expandvars(d)) for d in self.envs_dirs]
        for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
            dirs += [d for d in re.split(r"[:,]", env.get(var, "")) if d]
        for rc in condarc_paths(env, home):
            try:
                text = read_small(rc)
            except OSError:
                continue
            except ValueError as damaged:
                self.log.warning("%s; skipped", damaged)
                continue
            dirs += self._usable(rc, [os.path.expanduser(os.path.expandvars(d))
                                      for d in parse_envs_dirs(text)], "envs_dirs entry")
        dirs.append(os.path.join(home, ".conda", "envs"))
        return list(dict.fromkeys(dirs))

    def find(self, context: Context) -> list[Environment]:
        """Every valid conda env, once per real path."""
        listed = [(path, "") for path in context.registry.added(self.kind)]
        scanned: list[tuple[str, str, bool]] = []  # (path, name, is a symlink)
        real_dirs: set[str] = set()
        if not context.site:
            txt = os.path.join(context.home, ".conda", "environments.txt")
            try:
                lines = [line.strip() for line in text_lines(read_small(txt))]
                listed += [(p, "") for p in self._usable(txt, [p for p in lines if p], "line")]
            except OSError:
                pass
            except ValueError as damaged:
                self.log.warning("%s; skipped", damaged)
            for d in self.candidate_dirs(context):
                try:
                    entries = sorted(os.scandir(d), key=lambda e: e.name)
                except OSError:
                    continue
                real_dirs.add(os.path.realpath(d))
                for e in entries:
                    with contextlib.suppress(OSError):
                        scanned.append((e.path, e.name, e.is_symlink()))
        return self._valid(listed, scanned, real_dirs, context)

    def _usable(self, source: str, paths: list[str], what: str) -> list[str]:
        """The paths that can be paths; the others are skipped with one warning naming source."""
        bad = [(i, why) for i, p in enumerate(paths, 1) if (why := path_problem(p))]
        if bad:
            self.log.warning("%s: skipping %d %s(s) that cannot be a path (the first: %s)",
                             source, len(bad), what, bad[0][1])
        return [p for p in paths if not path_problem(p)]

    def _valid(self, listed, scanned, real_dirs, context: Context) -> list[Environment]:
        """Inspect each candidate that is a conda env, once per real path."""
        seen: set[str] = set()
        found: list[Environment] = []
        parents: dict[str, str] = {}

        def via_parent(path: str) -> str:
            parent, base = os.path.split(path.rstrip("/"))
            if parent not in parents:
                parents[parent] = os.path.realpath(parent)
            return os.path.join(parents[parent], base)

        def consider(path: str, real: str, name: str) -> None:
            if real in seen or not self.owns(real):
                return
            seen.add(real)
            if not name:
                parent = os.path.dirname(real)
                name = os.path.basename(real) if parent in real_dirs or \
                    os.path.basename(parent) == "envs" else real
            found.append(self.inspect(path, real, name, context))

        # Envs dirs first: a listed path that one of them already gave costs no extra call.
        for path, name, link in scanned:
            consider(path, os.path.realpath(path) if link else via_parent(path), name)
        for path, name in listed:
            real = via_parent(path)
            if real in seen:
                continue
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    real = os.path.realpath(path)
            except OSError:
                continue
            consider(path, real, name)
        return found

    def watch_paths(self, context: Context) -> list[str]:
        """environments.txt, every condarc, every envs dir and the conda-meta dir of each entry."""
        home = context.home
        paths = [os.path.join(home, ".conda", "environments.txt"),
                 *condarc_paths(os.environ, home)]
        for envs_dir in self.candidate_dirs(context):
            paths.append(envs_dir)
            try:
                entries = [e.path for e in os.scandir(envs_dir)]
            except OSError:
                continue
            # conda writes conda-meta/history last: an env being created is not one yet.
            paths += [p for e in entries for p in (e, os.path.join(e, "conda-meta"))]
        return paths

    def looked_in(self, context: Context) -> str:
        """environments.txt and the envs dirs."""
        dirs = ", ".join(shorten_home(d, context.home) for d in self.candidate_dirs(context))
        return ("conda envs listed in ~/.conda/environments.txt and in envs dirs "
                f"{dirs or '(none)'} (c.CondaSource.envs_dirs)")

    def inspect(self, path: str, real: str, name: str, context: Context) -> Environment:
        """An Environment for one conda env dir."""
        python = os.path.join(real, "bin", "python")
        base = (self.conda_module,) if self.conda_module else ()
        modules = context.recorded_modules(real, base)
        specs = find_kernelspecs(real, conda_versions(real))
        common: dict[str, Any] = {"kind": self.kind, "prefix": real, "name": name, "path": path,
                                  "python": python, "modules": modules, "origin": "conda",
                                  "extra_modules": tuple(m for m in modules if m not in base),
                                  "kernelspecs": specs, "watch": spec_watch_paths(real, specs)}
        version = version_from_python_link(python)
        if not version:
            if not os.path.exists(python):
                # An R-only (or Julia-only) env is valid: it has no Python kernel, only its own.
                common["python"] = ""
                return Environment(fix=fixes.conda_ipykernel(real, self.conda_module,
                                                             python=False), **common)
            version = version_from_lib(real)
        ipk = has_ipykernel(real, version)
        return Environment(version=version, has_ipykernel=ipk, fix="" if ipk else
                           fixes.conda_ipykernel(real, self.conda_module, python=True), **common)
