"""A third-party discovery source, shaped like a plugin package's: "project envs" are venvs that
hold a `.project-env` file, in the dirs of `ProjectSource.roots`. Nothing in ozkernels names it."""

from __future__ import annotations

import os

from traitlets import List, Unicode

from ozkernels.environment import Environment, short_version
from ozkernels.layout import has_ipykernel, read_pyvenv_cfg
from ozkernels.sources import Context, Source

ENTRY_POINT = "projects = ozktest.plugin_source:ProjectSource"


class ProjectSource(Source):
    """Project envs: venvs marked by a `.project-env` file, one level below each root."""

    kind = "project"
    noun = "a project env"
    marker = ".project-env"
    activation = "venv"
    uses_modules = True
    roots = List(Unicode(), default_value=[], help="Dirs whose subdirs may be project envs."
                 ).tag(config=True)

    def find(self, context: Context) -> list[Environment]:
        """Every marked venv below the roots, with the module chain of its base Python."""
        found = []
        for root in self.roots:
            try:
                entries = sorted(os.scandir(root), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if not self.owns(entry.path):
                    continue
                cfg = read_pyvenv_cfg(os.path.join(entry.path, "pyvenv.cfg"))
                home = cfg.get("home", "")
                module = context.modules.for_bin_dir(home)
                version = short_version(cfg.get("version", ""))
                base = os.path.dirname(home.rstrip("/"))
                found.append(Environment(
                    kind=self.kind, prefix=os.path.realpath(entry.path), name=entry.name,
                    python=os.path.join(entry.path, "bin", "python"), version=version,
                    modules=module.chain if module else (), path=entry.path,
                    has_ipykernel=has_ipykernel(entry.path, version) or has_ipykernel(
                        base, version)))
        return found

    def watch_paths(self, context: Context) -> list[str]:
        """The roots: a new project env changes their mtime."""
        return list(self.roots)


def install(where: str) -> str:
    """Make `where` a sys.path entry that holds this plugin's distribution; return it."""
    dist = os.path.join(where, "ozk_project_source-1.0.dist-info")
    os.makedirs(dist, exist_ok=True)
    with open(os.path.join(dist, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: ozk-project-source\nVersion: 1.0\n")
    with open(os.path.join(dist, "entry_points.txt"), "w") as f:
        f.write(f"[ozkernels.sources]\n{ENTRY_POINT}\n")
    return where
