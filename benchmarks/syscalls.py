"""Section 2: filesystem metadata calls per environment, counted with strace.

A metadata call is one that asks the filesystem about a name, an inode or a directory listing:
every path syscall (open, stat family, access, readlink, mkdir, rename, unlink...), fstat on an
open file, getdents64 and flock.  On Lustre each of them may be a round trip to the metadata
server; read, lseek and close are not counted.  The count of a run against a site with zero
environments (interpreter start-up, imports, Jupyter paths) is subtracted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

TRACED = "%file,getdents64,fstat,fstatfs,flock,fchmod,fchdir"
_LINE = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(\w+)\((.*)$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"^\d+<([^>]*)>")


def available() -> bool:
    """Whether strace is installed."""
    return shutil.which("strace") is not None


def trace(cmd: Sequence[str], env: Mapping[str, str], out: Path,
          cwd: str | None = None) -> Path:
    """Run cmd under strace -f, writing one line per metadata call to out."""
    subprocess.run(["strace", "-f", "-qq", "-y", "-s", "4096", "-e", f"trace={TRACED}",
                    "-o", str(out), *cmd], env=dict(env), cwd=cwd, capture_output=True,
                   text=True, timeout=600, check=True)
    return out


def classify(path: str, root: Path) -> str:
    """Where on the site a path is."""
    r = str(root)
    if path and (r + "/").startswith(path.rstrip("/") + "/"):
        return "the site's parent dirs (realpath walks them)"
    if not path.startswith(r + "/"):
        return "start-up (interpreter, libraries, config)"
    rel = path[len(r) + 1:]
    if rel.startswith("jupyter-data/kernels"):
        return "kernels dir"
    if rel.startswith(("home", "fred")):
        if "/.conda" in rel or "/conda-envs" in rel or rel.endswith(".condarc"):
            return "conda envs"
        return "venvs"
    if rel.startswith("modules"):
        return "module tree"
    if rel.startswith("apps"):
        return "module Python prefixes"
    if rel.startswith("cache"):
        return "spider cache"
    return "Jupyter dirs, registry"


def calls_touching(path: Path, root: Path, needles: Sequence[str]) -> list[tuple[str, str]]:
    """(syscall, path relative to the site) of every metadata call naming one of the needles,
    in order: what the run did for one environment."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m or "resumed>" in line or not any(n in line for n in needles):
            continue
        name, args = m.groups()
        quoted = _QUOTED.search(args)
        fd = _FD_PATH.match(args.split(",", 1)[0].strip())
        target = quoted.group(1) if quoted and quoted.group(1) else (fd.group(1) if fd else "")
        if name == "newfstatat" and "AT_EMPTY_PATH)" in args and '>, "", ' in args:
            name, target = "fstat (open fd)", fd.group(1) if fd else target
        if name == "getdents64" and fd:
            target = fd.group(1)
        found.append((name, target.replace(str(root) + "/", "")))
    return found


def parse(path: Path, root: Path) -> tuple[Counter, Counter]:
    """Counts of metadata calls by syscall and by place on the site."""
    by_call: Counter = Counter()
    by_place: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if "resumed>" in line:
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name, args = m.groups()
        if name == "newfstatat" and "AT_EMPTY_PATH)" in args and '>, "", ' in args:
            name = "fstat (open fd)"
        quoted = _QUOTED.search(args)
        target = quoted.group(1) if quoted and quoted.group(1) else ""
        if not target or not target.startswith("/"):
            fd = _FD_PATH.match(args.split(",", 1)[0].strip())
            base = fd.group(1) if fd else ""
            target = f"{base}/{target}" if target and base else (target or base)
        by_call[name] += 1
        by_place[classify(target, root)] += 1
    return by_call, by_place


def per_env(full: tuple[Counter, Counter], empty: tuple[Counter, Counter],
            envs: int) -> dict:
    """Totals, the empty-site baseline, and the difference per environment."""
    calls, places = full
    base_calls, base_places = empty
    total, base = sum(calls.values()), sum(base_calls.values())
    return {
        "total": total, "baseline": base, "envs": envs,
        "per_env": (total - base) / envs if envs else float("nan"),
        "by_call": {k: [calls[k], base_calls[k]] for k in sorted(calls | base_calls,
                                                               key=lambda k: -calls[k])},
        "by_place": {k: [places[k], base_places[k]] for k in sorted(places | base_places,
                                                                  key=lambda k: -places[k])},
    }
