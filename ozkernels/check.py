"""Start kernels through jupyter_client and verify from inside that they are what they claim."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .kernel_files import ACTIVATIONS
from .probes import VALUE, parse_probe, probe_code
from .slurm.status import parse_status
from .specs import ownership

PROBE = (
    "import json, os, sys\n"
    "print('OZK-PROBE ' + json.dumps({'prefix': sys.prefix, 'executable': sys.executable,"
    " 'loaded': os.environ.get('LOADEDMODULES', ''),"
    " 'virtual_env': os.environ.get('VIRTUAL_ENV', ''),"
    " 'conda_prefix': os.environ.get('CONDA_PREFIX', ''),"
    " 'slurm_job_id': os.environ.get('SLURM_JOB_ID', ''), 'pid': os.getpid()}))\n"
)


@dataclass
class CheckResult:
    """The outcome of starting one kernel."""

    name: str
    display_name: str = ""
    language: str = ""
    ok: bool = False
    start_seconds: float | None = None
    shutdown_seconds: float | None = None
    error: str = ""
    probe: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    ozk = [line for line in lines if line.startswith("ozkernels:")]
    return (ozk or lines or [""])[-1]


def verify(owner: dict[str, Any], probe: dict[str, Any]) -> str:
    """What is wrong with a running kernel's probe for the spec's claims, or ''."""
    prefix = owner.get("prefix", "")
    if str(probe.get("value")) != VALUE:
        return f"the probe computed 6 * 7 = {probe.get('value')!r}"
    # Only a Python probe can name its prefix; other languages are judged by the activation.
    if "prefix" in probe and os.path.realpath(probe["prefix"]) != os.path.realpath(prefix):
        return f"kernel runs in {probe.get('prefix')}, not {prefix}"
    loaded = [m for m in probe.get("loaded", "").split(":") if m]
    missing = [m for m in owner.get("modules", []) if m not in loaded]
    if missing:
        return f"modules not loaded in the kernel: {' '.join(missing)}"
    variable = ACTIVATIONS.get(owner.get("activation") or owner.get("kind", ""), "")
    if variable and probe.get(variable.lower()) != prefix:
        return f"{variable} is not set to the env's prefix"
    return ""


def slurm_facts(owner: dict[str, Any], stderr: str) -> dict[str, Any]:
    """For a Slurm kernel: its profile, job, node and queue wait from the launcher's stderr."""
    if not owner.get("slurm"):
        return {}
    status = parse_status(stderr)
    facts: dict[str, Any] = {"profile": owner["slurm"].get("name", ""),
                             "job": status.get("job", ""), "node": status.get("node", ""),
                             "address": status.get("address", ""), "queue_wait": None}
    try:
        facts["queue_wait"] = float(status["queue_wait"])
    except (KeyError, ValueError):
        pass
    return facts


def verify_slurm(facts: dict[str, Any], probe: dict[str, Any]) -> str:
    """What is wrong with a Slurm kernel's job as seen from inside, or ''."""
    inside = probe.get("slurm_job_id", "")
    if not inside:
        return "the kernel does not run in a Slurm job (no SLURM_JOB_ID)"
    if facts.get("job") and facts["job"] != inside:
        return f"the kernel runs in job {inside}, not in job {facts['job']} that was started"
    return ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def self_check(kc: Any, probe: str, owner: dict[str, Any], result: CheckResult,
               timeout: float) -> None:
    """Run the language's probe in a started kernel and judge what it printed."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"].get("text", ""))

    reply = kc.execute_interactive(probe, timeout=timeout, output_hook=hook)
    text = "".join(out)
    fields = parse_probe(text) if reply["content"].get("status") == "ok" else None
    if fields is None:
        detail = text.strip() or reply["content"].get("evalue", "")
        result.error = "the probe did not run: " + str(detail)[-200:]
        return
    result.probe = fields
    result.error = verify(owner, fields) if owner else ""
    result.ok = not result.error


def check_kernel(name: str, kernels_dir: str, timeout: float = 60.0) -> CheckResult:
    """Start one kernel, run the probe, shut it down gracefully; never raises for the kernel."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    ksm = KernelSpecManager(kernel_dirs=[kernels_dir])
    result = CheckResult(name=name)
    try:
        spec = ksm.get_kernel_spec(name)
    except Exception as e:  # noqa: BLE001 - any unreadable spec is a failed check
        result.error = f"cannot read the spec: {e}"
        return result
    result.display_name = spec.display_name
    owner = ownership({"metadata": spec.metadata}) or {}
    # In the runtime dir, as a server does: a kernel on a compute node must be able to read it.
    runtime = jupyter_runtime_dir()
    with contextlib.suppress(OSError):  # else starting fails, and that is the result
        os.makedirs(runtime, mode=0o700, exist_ok=True)
    km = KernelManager(kernel_name=name, kernel_spec_manager=ksm, connection_file=os.path.join(
        runtime, f"kernel-ozkernels-check-{uuid.uuid4()}.json"))
    fd, err_path = tempfile.mkstemp(prefix="ozk-check-", suffix=".log")
    with os.fdopen(fd, "w") as err:
        try:
            t0 = time.perf_counter()
            km.start_kernel(stderr=err)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=timeout)
                result.start_seconds = round(time.perf_counter() - t0, 3)
                info = kc.kernel_info(reply=True, timeout=timeout)["content"]
                result.language = str(info.get("language_info", {}).get("name", ""))
                probe = probe_code(result.language or spec.language)
                if spec.language and result.language.lower() != spec.language.lower():
                    result.error = (f"kernel_info says language {result.language!r}, the spec "
                                    f"says {spec.language!r}")
                elif not probe:
                    result.ok = True
                    result.note = (f"no probe for language {result.language!r}: checked "
                                   "kernel_info only")
                else:
                    self_check(kc, probe, owner, result, timeout)
            finally:
                kc.stop_channels()
        except Exception as e:  # noqa: BLE001 - a kernel that will not start is a result
            err.flush()
            result.error = _last_line(err_path) or f"{type(e).__name__}: {e}"
        finally:
            t1 = time.perf_counter()
            if km.has_kernel:
                km.shutdown_kernel(now=not result.start_seconds)
            if result.start_seconds:
                result.shutdown_seconds = round(time.perf_counter() - t1, 3)
    result.slurm = slurm_facts(owner, _read(err_path))
    os.unlink(err_path)
    if result.ok and result.slurm:
        result.error = verify_slurm(result.slurm, result.probe)
        result.ok = not result.error
    return result
