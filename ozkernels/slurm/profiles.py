"""Slurm profiles: validated resource requests (partition, time, CPUs, GPUs) from the config."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..environment import Environment
from ..errors import OzkernelsError
from ..specs import slug

VARIANT_PREFIX = "slurm:"
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
REMOTE_MODES = ("auto", "always", "never")
_STRINGS = ("label", "partition", "account", "qos", "mem", "gres")


class SlurmProfileError(OzkernelsError):
    """A Slurm profile in the configuration is not usable."""


def time_minutes(value: str | int) -> int:
    """Minutes in a Slurm time limit ('90', '2:00:00', '1-12', '1-00:30:00')."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _TIME.match(str(value).strip())
    if not m:
        msg = f"time {value!r} is not a Slurm time limit (e.g. '2:00:00', '90', '1-12:00:00')"
        raise SlurmProfileError(msg)
    days, first, second, third = m.groups()
    nums = [int(x) for x in (first, second, third) if x is not None]
    if days is not None:
        hours, minutes, seconds = (nums + [0, 0])[:3]
        total = int(days) * 1440 + hours * 60 + minutes + (seconds > 0)
    elif len(nums) == 3:
        total = nums[0] * 60 + nums[1] + (nums[2] > 0)
    else:
        total = nums[0] + (len(nums) == 2 and nums[1] > 0)
    if total <= 0:
        msg = f"time {value!r} must be longer than zero"
        raise SlurmProfileError(msg)
    return total


def time_label(minutes: int) -> str:
    """A short rendering of minutes: '2h', '1d', '90m' -> '1h30m'."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest}m" if hours and rest else f"{hours}h" if hours else f"{rest}m"


@dataclass(frozen=True)
class Profile:
    """One validated Slurm profile: what to ask Slurm for, and for which environments."""

    name: str
    label: str = ""
    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str = ""
    cpus: int = 1
    mem: str = ""
    gpus: str = ""
    gres: str = ""
    extra: tuple[str, ...] = ()
    pending_limit: float | None = None
    remote: str = ""
    envs: tuple[str, ...] = ("*",)

    @classmethod
    def from_config(cls, name: str, data: Any) -> Profile:
        """Validate one entry of SlurmProfiles.profiles."""
        where = f"Slurm profile {name!r}"
        if not isinstance(data, Mapping):
            msg = f"{where} must be a dict, not {type(data).__name__}"
            raise SlurmProfileError(msg)
        unknown = sorted(set(data) - set(cls.__dataclass_fields__) - {"name"})
        if unknown:
            msg = f"{where}: unknown keys {', '.join(unknown)}"
            raise SlurmProfileError(msg)
        if not slug(name):
            msg = f"{where}: the name needs letters or digits"
            raise SlurmProfileError(msg)
        kw: dict[str, Any] = {"name": name}
        for key in _STRINGS:
            if key in data:
                value = data[key]
                if key == "mem" and isinstance(value, int) and not isinstance(value, bool):
                    value = f"{value}M"
                if not isinstance(value, str):
                    msg = f"{where}: {key} must be a string"
                    raise SlurmProfileError(msg)
                kw[key] = value
        if "time" in data:
            time_minutes(data["time"])
            kw["time"] = str(data["time"])
        cpus = data.get("cpus", 1)
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            msg = f"{where}: cpus must be a whole number of at least 1"
            raise SlurmProfileError(msg)
        kw["cpus"] = cpus
        gpus = data.get("gpus", "")
        if isinstance(gpus, bool) or not isinstance(gpus, (int, str)):
            msg = f"{where}: gpus must be a number or a string such as 'a100:1'"
            raise SlurmProfileError(msg)
        kw["gpus"] = str(gpus) if gpus else ""
        for key in ("extra", "envs"):
            if key in data:
                value = data[key]
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, str) for v in value):
                    msg = f"{where}: {key} must be a list of strings"
                    raise SlurmProfileError(msg)
                kw[key] = tuple(value)
        limit = data.get("pending_limit")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
                msg = f"{where}: pending_limit must be seconds (0: wait forever)"
                raise SlurmProfileError(msg)
            kw["pending_limit"] = float(limit)
        remote = data.get("remote", "")
        if remote not in ("", *REMOTE_MODES):
            msg = f"{where}: remote must be one of {', '.join(REMOTE_MODES)}"
            raise SlurmProfileError(msg)
        kw["remote"] = remote
        return cls(**kw)

    @property
    def variant(self) -> str:
        """The stable variant id stored in the spec's metadata."""
        return VARIANT_PREFIX + self.name

    @property
    def suffix(self) -> str:
        """What the variant's kernel name adds to the base kernel's."""
        return "-slurm-" + slug(self.name)

    def display_label(self) -> str:
        """The label, or one made from the resources: '4 CPU 1 GPU 2h'."""
        if self.label:
            return self.label
        parts = [f"{self.cpus} CPU"]
        if self.gpus:
            count = self.gpus.rsplit(":", 1)[-1]
            parts.append(f"{count} GPU" if count.isdigit() else f"GPU {self.gpus}")
        if self.time:
            parts.append(time_label(time_minutes(self.time)))
        return " ".join(parts)

    def srun_args(self) -> list[str]:
        """srun options for this profile, one word each."""
        args = [f"--{opt}={value}" for opt, value in (
            ("partition", self.partition), ("account", self.account), ("qos", self.qos),
            ("time", self.time), ("mem", self.mem), ("gpus", self.gpus), ("gres", self.gres),
        ) if value]
        return [*args, f"--cpus-per-task={self.cpus}", *self.extra]

    def matches(self, env: Environment) -> bool:
        """Whether the profile applies to env (patterns match name, kind:name or prefix)."""
        keys = (env.name, f"{env.kind}:{env.name}", env.prefix)
        return any(fnmatch.fnmatchcase(k, p) for p in self.envs for k in keys)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the kernel's metadata)."""
        data = asdict(self)
        data["extra"], data["envs"] = list(self.extra), list(self.envs)
        return data
