"""The Slurm variant provider: a kernel per enabled profile that runs the launcher as a job."""

from __future__ import annotations

import copy
import math
import os
from functools import cached_property
from typing import Any

from traitlets import Dict, Enum, Float, List, Unicode

from .. import kernel_files
from ..environment import Environment
from ..kernel_files import LAUNCHER_NAME, SLURM_FILES, SLURM_LAUNCHER_NAME
from ..specs import argv_value, kernel_file, seal
from ..variants import VariantProvider, VariantRequest, Wanted
from .profiles import REMOTE_MODES, Profile, SlurmProfileError


def _inner_argv(base_argv: list[str], variant_dir: str, kernel: str) -> list[str]:
    """The base launcher command pointed at the variant dir's own copy and name."""
    argv = [kernel_file(variant_dir, LAUNCHER_NAME), *base_argv[1:]]
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
    kernel = os.path.basename(os.path.normpath(variant_dir))
    limit = profile.pending_limit if profile.pending_limit is not None else pending_limit
    remote = profile.remote or remote
    argv = [kernel_file(variant_dir, SLURM_LAUNCHER_NAME), "--kernel", kernel,
            "--connection-file", "{connection_file}", "--pending-limit", str(math.ceil(limit)),
            "--remote", remote, "--srun", argv_value(srun), "--profile", argv_value(profile.name)]
    if node_address:
        argv += ["--address", argv_value(node_address)]
    if relay_python:
        argv += ["--relay-python", argv_value(relay_python)]
    for arg in profile.srun_args():
        argv += ["--srun-arg", argv_value(arg)]
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
    files = {**base_files, **{name: kernel_files.read(name) for name in SLURM_FILES}}
    return Wanted(variant=profile.variant, spec=seal(spec, files), files=files, name=kernel)


class SlurmProfiles(VariantProvider):
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
        help="Python (3.7+) on the login host that supervises each Slurm kernel's job and "
        "relays a remote kernel's ports; '': python3 on the Jupyter server's PATH when the "
        "kernel starts.",
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

    def requests(self, env: Environment) -> list[VariantRequest]:
        """A Slurm kernel per active profile matching env."""
        return [VariantRequest(p.variant, p.suffix) for p in self.active if p.matches(env)]

    def build(self, request: VariantRequest, env: Environment, base: Wanted,
              kernel_dir: str) -> Wanted:
        """The kernel that runs env's launcher through srun with the profile's resources."""
        profile = next(p for p in self.active if p.variant == request.variant)
        return slurm_variant(profile, env, base.spec, base.files, kernel_dir,
                             pending_limit=self.pending_limit, remote=self.remote,
                             node_address=self.node_address, relay_python=self.relay_python,
                             srun=self.srun, display_template=self.display_template)
