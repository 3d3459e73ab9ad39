"""`ozkernels demo`: what it needs, the site it builds, and how to use a kept one."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .errors import OzkernelsError

STEPS = (["list"], ["sync"], ["list"], ["check"])
#: Variables a kept site needs, besides PATH (which gets this Python's bin dir).
SITE_VARS = ("HOME", "MODULEPATH", "LMOD_EXACT_MATCH", "MODULES_CMD", "MODULESHOME",
             "MODULES_IMPLICIT_DEFAULT", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
             "JUPYTER_RUNTIME_DIR")


def missing(modules: str = "lmod") -> list[tuple[str, str]]:
    """What the demo needs and this machine lacks: (what, the command that installs it)."""
    from .demosite import find_lmod
    from .envmodules import find_modules_cmd

    needs = []
    if find_spec("ipykernel") is None:
        needs.append(("ipykernel", f"{shlex.quote(sys.executable)} -m pip install ipykernel"))
    system = {"lmod": ("lmod", find_lmod), "tmod": ("environment-modules", find_modules_cmd)}
    wanted = [system[modules]] if modules in system else []
    apt = [name for name, ok in (*((n, find()) for n, find in wanted),
                                 ("patchelf", shutil.which("patchelf")))
           if not ok and (wanted or name != "patchelf")]
    if apt:
        needs.append((" and ".join(apt), f"sudo apt-get install -y {' '.join(apt)}"))
    return needs


def requirements_error(needs: list[tuple[str, str]]) -> str:
    """One line: what is missing, what the demo would show with it, the install commands."""
    what = " and ".join(w for w, _ in needs)
    shows = []
    if any(w == "ipykernel" for w, _ in needs):
        shows.append("kernels that start (every kernel needs ipykernel)")
    if any(w != "ipykernel" for w, _ in needs):
        shows.append("Lmod module Pythons, venvs on them that die without their module, and "
                     "kernels that load the modules")
    return (f"the demo needs {what}: without it, it cannot show {' or '.join(shows)}; install: "
            + " && ".join(c for _, c in needs))


@dataclass
class DemoRun:
    """One demo: where its site is and what each step printed and returned."""

    root: str
    environ: dict[str, str]
    steps: list[dict[str, Any]] = field(default_factory=list)
    modules: str = "lmod"

    def build(self) -> None:
        """Build the site (refusing a Python the site cannot be made from)."""
        from .demosite import build_site

        try:
            site = build_site(Path(self.root), modules="" if self.modules == "none" else
                              self.modules, hostile=True)
        except RuntimeError as e:
            raise OzkernelsError(f"cannot build the demo site: {e}") from e
        self.environ = site.environ()

    def keep_lines(self) -> list[str]:
        """Shell lines (copy-paste) that point ozkernels and Jupyter at the kept site."""
        bin_dir = os.path.dirname(sys.executable)
        values = [f"PATH={shlex.quote(bin_dir)}:\"$PATH\""]
        values += [f"{k}={shlex.quote(self.environ[k])}" for k in SITE_VARS if k in self.environ]
        return [
            f"The demo site stays in {self.root}. To use it, in a new shell (this changes HOME):",
            f"  export {' '.join(values)}",
            "  unset VIRTUAL_ENV PYTHONPATH LOADEDMODULES _LMFILES_",
            "  ozkernels list          # or: jupyter lab --no-browser",
            f"Delete it with: rm -rf {shlex.quote(self.root)}",
        ]

    def summary(self, listing: dict[str, Any], seconds: float, kept: bool) -> str:
        """One line: what was found, written and started (from a final `list --json`)."""
        envs = listing.get("environments", [])
        kernels = sum(bool(e.get("kernel")) + len(e.get("variant_kernels", [])) for e in envs
                      if e.get("status") == "up to date")
        # Kernels the envs ship besides the Python one (IRkernel, bash_kernel...).
        kernels += sum(1 for e in envs for k in e.get("other_kernels", [])
                       if k.get("status") == "up to date")
        failed = [s["step"] for s in self.steps if s["exit_code"]]
        check = "every kernel started and checked" if "check" not in failed else \
            "some kernels FAILED to start (see check)"
        verdict = f"FAILED ({', '.join(failed)})" if failed else "passed"
        where = f"site kept in {self.root}" if kept else "site deleted"
        return (f"demo {verdict}: {len(envs)} environments found, {kernels} kernels written, "
                f"{check}, in {seconds:.1f} s; {where}")
