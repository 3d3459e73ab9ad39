"""Slurm kernels: profiles from the config, the variant provider, the wrapper's status line."""

from ..kernel_files import SLURM_LAUNCHER_NAME
from .profiles import Profile, SlurmProfileError, time_label, time_minutes
from .provider import SlurmProfiles, slurm_variant
from .status import STATUS_PREFIX, parse_status

__all__ = [
    "SLURM_LAUNCHER_NAME", "STATUS_PREFIX", "Profile", "SlurmProfileError", "SlurmProfiles",
    "parse_status", "slurm_variant", "time_label", "time_minutes",
]
