"""The files ozkernels copies into kernel dirs: the bash launcher, its conda helper, the Slurm
wrapper and its supervisor and relay (standard-library Python run with -I)."""

from __future__ import annotations

import shlex
from functools import lru_cache
from importlib.resources import files

from ..envmodules import STANDARD_MODULES_CMDS
from ..lmod import STANDARD_LMOD_CMDS

LAUNCHER_NAME = "ozkernels-launch"
CONDA_ENV_VARS_NAME = "ozkernels-conda-env-vars.py"
SLURM_LAUNCHER_NAME = "ozkernels-slurm"
SLURM_SUPERVISOR_NAME = "ozkernels-slurm-supervise.py"
SLURM_RELAY_NAME = "ozkernels-slurm-relay.py"
# What the launcher's --kind understands: how it activates an env, and the variable that then
# names the prefix inside the kernel ('module': the modules only, nothing to activate).
ACTIVATIONS = {"venv": "VIRTUAL_ENV", "conda": "CONDA_PREFIX", "module": ""}
# Name in a kernel dir -> file in this folder.
SOURCES = {
    LAUNCHER_NAME: "launcher.sh",
    CONDA_ENV_VARS_NAME: "conda_env_vars.py",
    SLURM_LAUNCHER_NAME: "slurm-launch.sh",
    SLURM_SUPERVISOR_NAME: "slurm_supervisor.py",
    SLURM_RELAY_NAME: "slurm_relay.py",
}
# The files a Slurm kernel's dir gets besides its launcher's.
SLURM_FILES = (SLURM_LAUNCHER_NAME, SLURM_SUPERVISOR_NAME, SLURM_RELAY_NAME)
# The files each activation style needs next to the launcher.
HELPERS = {"conda": (CONDA_ENV_VARS_NAME,)}
# The launcher's lines that get the module systems' standard places (one list each, in Python).
STANDARD_PLACES = {"_ozk_lmod_std": STANDARD_LMOD_CMDS, "_ozk_tmod_std": STANDARD_MODULES_CMDS}


def source_path(name: str) -> str:
    """The path in the installed package of the file a kernel dir gets as `name`."""
    return str(files(__name__).joinpath(SOURCES[name]))


# A sync plans hundreds of kernels from the same few files: read each once per process.
@lru_cache(maxsize=None)
def read(name: str) -> bytes:
    """The bytes a kernel dir gets as `name` (the launcher with the module systems' places)."""
    data = files(__name__).joinpath(SOURCES[name]).read_bytes()
    if name == LAUNCHER_NAME:
        for var, places in STANDARD_PLACES.items():
            words = " ".join(shlex.quote(p) for p in places)
            data = data.replace(f"\n{var}=()\n".encode(), f"\n{var}=({words})\n".encode(), 1)
    return data


def launcher_files(activation: str = "") -> dict[str, bytes]:
    """The files a kernel dir whose launcher activates this way gets."""
    return {name: read(name) for name in (LAUNCHER_NAME, *HELPERS.get(activation, ()))}
