"""The files ozkernels copies into kernel dirs: the bash launcher and the Slurm wrapper."""

from __future__ import annotations

from importlib.resources import files

LAUNCHER_NAME = "ozkernels-launch"
SLURM_LAUNCHER_NAME = "ozkernels-slurm"
# What the launcher's --kind understands: how it activates an env, and the variable that then
# names the prefix inside the kernel ('module': the modules only, nothing to activate).
ACTIVATIONS = {"venv": "VIRTUAL_ENV", "conda": "CONDA_PREFIX", "module": ""}
# Name in a kernel dir -> file in this folder.
SOURCES = {LAUNCHER_NAME: "launcher.sh", SLURM_LAUNCHER_NAME: "slurm-launch.sh"}


def source_path(name: str) -> str:
    """The path in the installed package of the file a kernel dir gets as `name`."""
    return str(files(__name__).joinpath(SOURCES[name]))


def read(name: str) -> bytes:
    """The bytes a kernel dir gets as `name`."""
    return files(__name__).joinpath(SOURCES[name]).read_bytes()
