"""Slurm profiles: extra kernels that run an environment's launcher as a Slurm job."""

from __future__ import annotations

import copy
import fnmatch
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib.resources import files as package_files
from typing import TYPE_CHECKING, Any

from traitlets import Dict, Enum, Float, List, Unicode
from traitlets.config import LoggingConfigurable

from .environment import Environment
from .errors import OzkernelsError
from .specs import LAUNCHER_NAME, seal, slug

if TYPE_CHECKING:
    from .sync import Wanted

SLURM_LAUNCHER_NAME = "ozkernels-slurm"
VARIANT_PREFIX = "slurm:"
STATUS_PREFIX = "ozkernels-slurm:"
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


def slurm_launcher_bytes() -> bytes:
    """The Slurm wrapper script shipped in the package."""
    return package_files("ozkernels").joinpath("slurm-launch.sh").read_bytes()


def _inner_argv(base_argv: list[str], variant_dir: str, kernel: str) -> list[str]:
    """The base launcher command pointed at the variant dir's own copy and name."""
    argv = [os.path.join(variant_dir, LAUNCHER_NAME), *base_argv[1:]]
    end = argv.index("--") if "--" in argv else len(argv)
    for i in range(1, end - 1):
        if argv[i] == "--kernel":
            argv[i + 1] = kernel
    return argv


def slurm_variant(profile: Profile, env: Environment, base_spec: dict[str, Any],
                  base_files: dict[str, bytes], variant_dir: str, *,
                  pending_limit: float = 300.0, remote: str = "auto", node_address: str = "",
                  relay_python: str = "", srun: str = "srun",
                  display_template: str = "{base} - Slurm {label}") -> Wanted:
    """The Wanted kernel that runs env's launcher through srun with profile's resources."""
    from .sync import Wanted

    kernel = os.path.basename(os.path.normpath(variant_dir))
    limit = profile.pending_limit if profile.pending_limit is not None else pending_limit
    remote = profile.remote or remote
    argv = [os.path.join(variant_dir, SLURM_LAUNCHER_NAME), "--kernel", kernel,
            "--connection-file", "{connection_file}", "--pending-limit", str(math.ceil(limit)),
            "--remote", remote, "--srun", srun]
    if node_address:
        argv += ["--address", node_address]
    if relay_python and remote != "never":
        argv += ["--relay-python", relay_python]
    for arg in profile.srun_args():
        argv += ["--srun-arg", arg]
    argv += ["--", *_inner_argv(base_spec["argv"], variant_dir, kernel)]
    spec = copy.deepcopy(base_spec)
    spec["argv"] = argv
    fields = {"base": base_spec["display_name"], "label": profile.display_label(),
              "name": profile.name}
    try:
        spec["display_name"] = display_template.format(**fields)
    except (KeyError, IndexError, ValueError):
        spec["display_name"] = "{base} - Slurm {label}".format(**fields)
    # srun takes one SIGINT as a status request: interrupts go over the control channel.
    spec["interrupt_mode"] = "message"
    owner = spec["metadata"]["ozkernels"]
    owner["variant"] = profile.variant
    owner["slurm"] = profile.to_dict()
    files = {**base_files, SLURM_LAUNCHER_NAME: slurm_launcher_bytes()}
    return Wanted(variant=profile.variant, spec=seal(spec, files), files=files, name=kernel)


def parse_status(text: str) -> dict[str, str]:
    """The fields of the last 'ozkernels-slurm: job=... queue_wait=...' line in text, or {}."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(STATUS_PREFIX)]
    if not lines:
        return {}
    words = lines[-1][len(STATUS_PREFIX):].split()
    return dict(w.split("=", 1) for w in words if "=" in w)


class SlurmProfiles(LoggingConfigurable):
    """Site and user Slurm profiles, and which of them get kernels."""

    profiles = Dict(
        help="Slurm profiles by name, e.g. {'cpu4-2h': {'cpus': 4, 'time': '2:00:00', "
        "'partition': 'work'}}. Keys: label partition account qos time cpus mem gpus gres "
        "extra (srun options) pending_limit remote envs (patterns for env name, kind:name or "
        "prefix). "
        "Add to a site's profiles with c.SlurmProfiles.profiles.update({...}).",
    ).tag(config=True)
    enabled = List(
        Unicode(), default_value=[],
        help="Names of the profiles that get a kernel per matching environment ('*': all).",
    ).tag(config=True)
    pending_limit = Float(
        300.0, help="Seconds a job may wait in the queue before the kernel gives up (0: never)."
    ).tag(config=True)
    remote = Enum(
        list(REMOTE_MODES), default_value="auto",
        help="Whether the kernel listens on the node's address and the login side relays its "
        "ports: 'auto' when the job's node is not the login host.",
    ).tag(config=True)
    node_address = Unicode(
        "", help="Address or interface (e.g. ib0) kernels on compute nodes listen on; '': the "
        "first non-loopback address of the node's name.",
    ).tag(config=True)
    relay_python = Unicode(
        "",
        help="Python (3.7+) on the login host that relays a remote kernel's ports; '': python3 "
        "on the Jupyter server's PATH when the kernel starts.",
    ).tag(config=True)
    srun = Unicode(
        "srun", help="srun command (looked up on the Jupyter server's PATH unless absolute)."
    ).tag(config=True)
    display_template = Unicode(
        "{base} - Slurm {label}",
        help="Display name of a Slurm kernel; fields {base} {label} {name}.",
    ).tag(config=True)

    @cached_property
    def active(self) -> list[Profile]:
        """The enabled, valid profiles (bad ones are logged and skipped)."""
        wanted = list(self.profiles) if "*" in self.enabled else list(self.enabled)
        found = []
        for name in wanted:
            if name not in self.profiles:
                self.log.warning("Slurm profile %r is enabled but not defined; skipped", name)
                continue
            try:
                found.append(Profile.from_config(name, self.profiles[name]))
            except SlurmProfileError as e:
                self.log.warning("%s; skipped", e)
        return found

    def variants(self, env: Environment, base_spec: dict[str, Any], base_files: dict[str, bytes],
                 dir_for: Callable[[str, str], str]) -> list[Wanted]:
        """A Slurm kernel per active profile matching env; dir_for(variant, suffix) is its dir."""
        return [
            slurm_variant(p, env, base_spec, base_files, dir_for(p.variant, p.suffix),
                          pending_limit=self.pending_limit, remote=self.remote,
                          node_address=self.node_address, relay_python=self.relay_python,
                          srun=self.srun, display_template=self.display_template)
            for p in self.active if p.matches(env)
        ]
