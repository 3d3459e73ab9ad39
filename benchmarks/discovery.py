"""Section 1: discovery and sync as whole processes, ozkernels and nb_venv_kernels interleaved."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common import log, median, p95, timed


@dataclass
class Command:
    """One measured command line, its timings and what it reported finding."""

    label: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    found: int | None = None

    def summary(self) -> dict:
        """Median, p95, runs and environments found."""
        return {"label": self.label, "argv": self.argv, "median": median(self.times),
                "p95": p95(self.times), "runs": len(self.times), "found": self.found,
                "times": self.times}


def reset_ozkernels(root: Path) -> None:
    """Forget everything ozkernels wrote or cached on the site: the next sync is cold."""
    shutil.rmtree(root / "jupyter-data" / "kernels", ignore_errors=True)
    shutil.rmtree(root / "jupyter-data" / "ozkernels", ignore_errors=True)
    shutil.rmtree(root / "cache" / "ozkernels", ignore_errors=True)


def reset_nbvk(home: Path) -> None:
    """Forget nb_venv_kernels' registry and name cache: the next scan registers everything."""
    shutil.rmtree(home / ".venv", ignore_errors=True)
    shutil.rmtree(home / ".uv", ignore_errors=True)
    shutil.rmtree(home / ".local" / "share" / "nb_venv_kernels", ignore_errors=True)


def _sync_counts(out: str) -> tuple[int, int]:
    data = json.loads(out)
    return len(data["actions"]), data["unchanged"]


def run(root: Path, home: Path, env: Mapping[str, str], ozk_python: Path,
        nbvk_python: Path | None, runs: int) -> dict:
    """Interleave every command in each of `runs` rounds; return their summaries."""
    ozk = [str(ozk_python), "-m", "ozkernels"]
    cmds = {
        "cold": Command("ozkernels sync (cold)", [*ozk, "sync", "--json"]),
        "noop": Command("ozkernels sync (no-op)", [*ozk, "sync", "--json"]),
        "list": Command("ozkernels list --json", [*ozk, "list", "--json"]),
        "pass": Command("interpreter start-up (python -c pass)", [str(ozk_python), "-c", "pass"]),
        "import": Command("start-up + imports (python -c 'import ozkernels.app')",
                          [str(ozk_python), "-c", "import ozkernels.app"]),
        "jupyter_core": Command("start-up + a traitlets app reading Jupyter's config path "
                                "(python -c 'import traitlets.config, jupyter_core.paths')",
                                [str(ozk_python), "-c",
                                 "import traitlets.config, jupyter_core.paths"]),
        "kslist": Command("jupyter kernelspec list --json",
                          [str(ozk_python.parent / "jupyter-kernelspec"), "list", "--json"]),
    }
    if nbvk_python:
        nbvk = [str(nbvk_python.parent / "nb_venv_kernels"), "scan", "--path", str(home), "--json"]
        cmds["nbvk_first"] = Command("nb_venv_kernels scan (first)", nbvk)
        cmds["nbvk"] = Command("nb_venv_kernels scan (repeat, no changes)", nbvk)
    added = []
    kernels = 0
    for i in range(runs):
        log(f"discovery round {i + 1}/{runs}")
        reset_ozkernels(root)
        t, proc = timed(cmds["cold"].argv, env)
        cmds["cold"].times.append(t)
        added.append(_sync_counts(proc.stdout)[0])
        t, proc = timed(cmds["list"].argv, env)
        cmds["list"].times.append(t)
        cmds["list"].found = len(json.loads(proc.stdout)["environments"])
        if nbvk_python:
            reset_nbvk(home)
            t, proc = timed(cmds["nbvk_first"].argv, env, cwd=home)
            cmds["nbvk_first"].times.append(t)
            cmds["nbvk_first"].found = len(json.loads(proc.stdout)["environments"])
            t, data = settle_nbvk(cmds["nbvk"].argv, env, home)
            cmds["nbvk"].times.append(t)
            cmds["nbvk"].found = len(data["environments"])
        t, proc = timed(cmds["noop"].argv, env)
        changes, unchanged = _sync_counts(proc.stdout)
        if changes:
            msg = f"a second sync changed {changes} kernels: not a no-op"
            raise RuntimeError(msg)
        cmds["noop"].times.append(t)
        cmds["noop"].found = cmds["cold"].found = cmds["list"].found
        kernels = unchanged
        for key in ("pass", "jupyter_core", "import", "kslist"):
            t, proc = timed(cmds[key].argv, env)
            cmds[key].times.append(t)
        cmds["kslist"].found = len(json.loads(proc.stdout or "{}").get("kernelspecs", {}))
    return {"commands": {k: c.summary() for k, c in cmds.items()}, "added": added,
            "kernels": kernels}


def settle_nbvk(argv: list[str], env: Mapping[str, str], home: Path) -> tuple[float, dict]:
    """Scan until a scan changes nothing; return that scan's time and output.

    nb_venv_kernels' second scan still renames ("updates") what the first registered, so the
    repeat that counts is the first scan with nothing to add, update or remove: its cheapest
    case.
    """
    for _ in range(4):
        t, proc = timed(argv, env, cwd=home)
        data = json.loads(proc.stdout)
        if not any(data["summary"].get(k) for k in ("add", "update", "remove")):
            return t, data
    msg = f"nb_venv_kernels scan never settled: {data['summary']}"
    raise RuntimeError(msg)
