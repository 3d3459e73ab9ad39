"""Slurm kernels against a real single-node Slurm cluster: lifecycle, queue, relay, no orphans."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from ozktest.slurm_cluster import Cluster, start_cluster

from ozkernels.demosite import Site
from ozkernels.environment import Environment
from ozkernels.failures import StartFailure, read_failure
from ozkernels.kernel_files import SLURM_FILES
from ozkernels.slurm import SLURM_LAUNCHER_NAME, SlurmProfiles, parse_status
from ozkernels.specs import LAUNCHER_NAME, fingerprint
from ozkernels.variants import Wanted

pytestmark = pytest.mark.slurm

BASE = "venv-analysis"
PROBE = (
    "import json, os, sys; print(json.dumps({'job': os.environ.get('SLURM_JOB_ID', ''),"
    " 'prefix': sys.prefix, 'loaded': os.environ.get('LOADEDMODULES', ''),"
    " 'venv': os.environ.get('VIRTUAL_ENV', ''), 'pid': os.getpid()}))"
)
ONLY = ["venv:analysis"]
# Profiles for the analysis venv (a venv on the module Python that needs its module).
PROFILES: dict[str, dict[str, Any]] = {
    "cpu1": {"cpus": 1, "time": "1:00:00", "envs": ONLY},
    "relay": {"cpus": 1, "label": "relayed", "remote": "always", "envs": ONLY},
    "queued": {"extra": ["--begin=now+3600"], "pending_limit": 2, "envs": ONLY},
    "held": {"extra": ["--begin=now+3600"], "pending_limit": 0, "envs": ONLY},
    # More time than the 'short' partition allows (MaxTime=10): it can never start.
    "toolong": {"partition": "short", "time": "1:00:00", "pending_limit": 300, "envs": ONLY},
}


@dataclass
class Setup:
    """The cluster, the kernels dir with the Slurm kernels, and the kernels' environment."""

    cluster: Cluster
    kernels: Path
    env: dict[str, str]
    venv: str

    def name(self, profile: str) -> str:
        """The Slurm kernel's name for a profile."""
        return f"{BASE}-slurm-{profile}"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A private Slurm cluster for the session; stopping it leaves no daemon."""
    base = Path(tempfile.mkdtemp(prefix="ozs-", dir="/tmp"))
    c = start_cluster(base)
    try:
        yield c
    finally:
        pids = dict(c.pids)
        c.stop()
        left = [p for p in pids.values() if os.path.exists(f"/proc/{p}/cmdline")
                and str(base).encode() in Path(f"/proc/{p}/cmdline").read_bytes()]
        shutil.rmtree(base, ignore_errors=True)
        assert not left


def write_config(config_dir: Path, profiles: dict[str, Any], enabled: list[str]) -> None:
    """A user's jupyter_ozkernels_config.json with these Slurm profiles."""
    config_dir.mkdir(parents=True, exist_ok=True)
    data = {"SlurmProfiles": {"profiles": profiles, "enabled": enabled}}
    (config_dir / "jupyter_ozkernels_config.json").write_text(json.dumps(data))


def sync(env: dict[str, str]) -> dict[str, Any]:
    """`ozkernels sync --json` in a subprocess, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "ozkernels", "sync", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def setup(cluster: Cluster, site: Site, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The Slurm kernels of the test profiles, written by a real `ozkernels sync`."""
    data = tmp_path_factory.mktemp("slurm-data")
    config = tmp_path_factory.mktemp("slurm-config")
    write_config(config, PROFILES, ["*"])
    env = cluster.environ(site.environ(JUPYTER_DATA_DIR=str(data),
                                       JUPYTER_CONFIG_DIR=str(config)))
    added = {a["kernel"] for a in sync(env)["actions"] if a["action"] == "add"}
    assert {f"{BASE}-slurm-{p}" for p in PROFILES} < added
    base = json.loads((data / "kernels" / BASE / "kernel.json").read_text())
    return Setup(cluster=cluster, kernels=data / "kernels", env=env,
                 venv=base["metadata"]["ozkernels"]["prefix"])


def _processes(marker: str) -> list[str]:
    """Live processes whose command line mentions marker."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                # Other users' processes may have any bytes in their command lines.
                cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{entry.name}: {cmd}")
    return found


@pytest.fixture(autouse=True)
def no_leftovers(setup: Setup, tmp_path: Path) -> Iterator[None]:
    """After every test: no job in squeue, no wrapper, srun, relay or kernel process."""
    yield
    setup.cluster.wait_empty(5)
    markers = (str(setup.kernels), setup.venv, str(tmp_path))
    deadline = time.monotonic() + 5
    while (left := [p for m in markers for p in _processes(m)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left


@contextmanager
def started(setup: Setup, profile: str, tmp_path: Path,
            ready: bool = True) -> Iterator[tuple[KernelManager, Any, Path]]:
    """A Slurm kernel started through jupyter_client: (manager, client, stderr log)."""
    ksm = KernelSpecManager(kernel_dirs=[str(setup.kernels)])
    km = KernelManager(kernel_name=setup.name(profile), kernel_spec_manager=ksm,
                       connection_file=str(tmp_path / "kernel-test.json"))
    log = tmp_path / "kernel.log"
    with open(log, "w") as err:  # restarts reuse it
        km.start_kernel(env=setup.env, stderr=err)
        kc = km.client()
        kc.start_channels()
        try:
            if ready:
                try:
                    kc.wait_for_ready(timeout=60)
                except RuntimeError as e:
                    why = f"{e}\n--- kernel stderr\n{log.read_text()}\n--- squeue\n"
                    raise AssertionError(why + "\n".join(setup.cluster.jobs())) from e
            yield km, kc, log
        finally:
            kc.stop_channels()
            if km.has_kernel:
                km.shutdown_kernel(now=True)


def probe(kc: Any) -> dict[str, Any]:
    """The kernel's view of itself."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(PROBE, timeout=30, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads("".join(out))


def job_states(setup: Setup) -> dict[str, str]:
    """Job id -> state for every job in squeue."""
    return {line.split()[0]: line.split()[1] for line in setup.cluster.jobs()}


def recorded(setup: Setup, profile: str, log: Path, says: str) -> StartFailure:
    """The kernel's start-failure record, which must hold its last stderr line saying `says`;
    `ozkernels list --json` must show it as the env's last start failure."""
    name = setup.name(profile)
    lines = [line for line in log.read_text().splitlines() if says in line]
    assert lines, log.read_text()
    record = read_failure(str(Path(setup.env["JUPYTER_DATA_DIR"], "ozkernels", "failures")), name)
    assert record is not None, f"no start-failure record for {name}"
    assert f"ozkernels: kernel '{name}': {record.message}" == lines[-1]
    proc = subprocess.run([sys.executable, "-m", "ozkernels", "list", "--json"], env=setup.env,
                          capture_output=True, text=True, timeout=120, check=True)
    env = next(e for e in json.loads(proc.stdout)["environments"] if e["kernel"] == BASE)
    failed = env["last_start_failure"]
    assert failed and (failed["kernel"], failed["message"]) == (name, record.message), failed
    return record


def wait_for(what: str, ready: Any, timeout: float = 10.0) -> float:
    """Seconds until ready() is true."""
    t0 = time.monotonic()
    while not ready():
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_kernel_is_a_job_with_module_and_env(setup: Setup, tmp_path: Path) -> None:
    with started(setup, "cpu1", tmp_path) as (km, kc, log):
        info = probe(kc)
        assert info["job"] and job_states(setup) == {info["job"]: "RUNNING"}
        assert info["prefix"] == setup.venv == info["venv"]
        assert "python/3.11.7" in info["loaded"].split(":")
        status = parse_status(log.read_text())
        assert status["job"] == info["job"] and status["address"] == "local"
        assert 0 <= float(status["queue_wait"]) < 5
        wrapper = km.provisioner.process
        kc.stop_channels()
        t0 = time.monotonic()
        km.shutdown_kernel(now=False)
        took = time.monotonic() - t0
        # Graceful: the kernel exited by itself, srun and the wrapper followed, no SIGTERM.
        assert wrapper.returncode == 0 and took < 2, (wrapper.returncode, took)
        assert not setup.cluster.jobs()


def test_kernel_is_a_job_on_environment_modules(cluster: Cluster, tmod_site: Site, hide_lmod: Any,
                                                tmp_path: Path) -> None:
    """The same Slurm kernel at an Environment Modules site, Lmod hidden (jobs included)."""
    data, config = tmp_path / "data", tmp_path / "config"
    write_config(config, {"cpu1": PROFILES["cpu1"]}, ["cpu1"])
    env = cluster.environ(tmod_site.environ(JUPYTER_DATA_DIR=str(data),
                                            JUPYTER_CONFIG_DIR=str(config)))
    with hide_lmod(tmod_site):
        sync(env)
        job_setup = Setup(cluster=cluster, kernels=data / "kernels", env=env,
                          venv=str(tmod_site.venvs["analysis"]))
        with started(job_setup, "cpu1", tmp_path) as (km, kc, _):
            info = probe(kc)
            out: list[str] = []
            kc.execute_interactive(
                "import os; print(os.path.exists('/usr/share/lmod/lmod'))", timeout=30,
                output_hook=lambda m: out.append(m["content"].get("text", "")))
            assert "".join(out).strip() == "False"  # the job runs where Lmod is hidden too
            assert info["job"] and info["prefix"] == job_setup.venv
            assert info["loaded"].split(":") == [tmod_site.names["gcc"],
                                                  tmod_site.names["python"]]
            kc.stop_channels()
            km.shutdown_kernel(now=False)
        assert not cluster.jobs()


def test_interrupt_message_and_signal(setup: Setup, tmp_path: Path) -> None:
    with started(setup, "cpu1", tmp_path) as (km, kc, _):
        assert km.kernel_spec is not None and km.kernel_spec.interrupt_mode == "message"
        pgid = os.getpgid(km.provisioner.process.pid)
        for how in ("message", "signal"):
            # stop_on_error=False: else the kernel aborts the next request after the interrupt.
            msg_id = kc.execute("import time; print('sleeping', flush=True); time.sleep(60)",
                                stop_on_error=False)
            while True:  # until the kernel is in the sleep
                msg = kc.get_iopub_msg(timeout=10)
                if msg["msg_type"] == "stream" and msg["parent_header"]["msg_id"] == msg_id:
                    break
            t0 = time.monotonic()
            if how == "message":
                km.interrupt_kernel()
            else:  # what a client ignoring interrupt_mode does
                os.killpg(pgid, signal.SIGINT)
            reply = kc.get_shell_msg(timeout=10)
            while reply["parent_header"]["msg_id"] != msg_id:  # a late kernel_info reply
                reply = kc.get_shell_msg(timeout=10)
            assert reply["content"].get("ename") == "KeyboardInterrupt", (how, reply["content"])
            assert time.monotonic() - t0 < 5
        assert probe(kc)["job"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_killed_wrapper_cancels_job(setup: Setup, tmp_path: Path, sig: signal.Signals) -> None:
    with started(setup, "cpu1", tmp_path) as (km, kc, _):
        info = probe(kc)
        wrapper = km.provisioner.process
        t0 = time.monotonic()
        if sig == signal.SIGKILL:
            km.shutdown_kernel(now=True)  # SIGKILL to the wrapper's process group
        else:  # what jupyter_client does when a shutdown request is not answered in time
            os.killpg(os.getpgid(wrapper.pid), sig)
        wait_for("job cancelled", lambda: not setup.cluster.jobs(), timeout=1)
        wait_for("kernel gone", lambda: not os.path.exists(f"/proc/{info['pid']}"), timeout=1)
        wait_for("wrapper gone", lambda: wrapper.poll() is not None, timeout=1)
        assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("now", [False, True], ids=["graceful", "forced"])
def test_restart_gets_fresh_job(setup: Setup, tmp_path: Path, now: bool) -> None:
    with started(setup, "cpu1", tmp_path) as (km, kc, _):
        old = probe(kc)
        km.restart_kernel(now=now)
        kc.wait_for_ready(timeout=60)
        new = probe(kc)
        assert new["job"] != old["job"] and new["pid"] != old["pid"]
        assert not os.path.exists(f"/proc/{old['pid']}")
        assert job_states(setup) == {new["job"]: "RUNNING"}


def test_remote_node_relay(setup: Setup, tmp_path: Path) -> None:
    with started(setup, "relay", tmp_path) as (km, kc, log):
        info = probe(kc)
        cf = json.loads(Path(km.connection_file).read_text())
        node = json.loads(Path(km.connection_file + ".slurm-node").read_text())
        status = parse_status(log.read_text())
        assert cf["ip"] == "127.0.0.1" and node["ip"] == status["address"] != "local"
        assert node["key"] == cf["key"]
        assert all(node[p] for p in ("shell_port", "iopub_port", "hb_port"))
        assert info["job"] and info["prefix"] == setup.venv
        km.interrupt_kernel()
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        assert probe(kc)["job"] != info["job"]
        km.shutdown_kernel(now=False)
        assert not Path(km.connection_file + ".slurm-node").exists()


def test_queue_timeout_gives_reason(setup: Setup, tmp_path: Path) -> None:
    stale = tmp_path / "kernel-old.json.slurm-gave-up"
    stale.write_text(f"{int(time.time()) - 100} gave up long ago\n")
    with started(setup, "queued", tmp_path, ready=False) as (km, _, log):
        took = wait_for("give up", lambda: not km.is_alive(), timeout=15)
        assert not stale.exists() and Path(km.connection_file + ".slurm-gave-up").exists()
        text = log.read_text()
        assert "is waiting in the queue (BeginTime) for 1 s; gives up after 2 s" in text, text
        assert "gave up after 2 s: Slurm job" in text and "pending (BeginTime)" in text, text
        assert 1.5 < took < 6
        assert km.provisioner.process.returncode == 1
        record = recorded(setup, "queued", log, "gave up after 2 s: Slurm job")
        assert record.connection_file == km.connection_file
        # What Jupyter's restarter does next: fail at once instead of queueing again.
        km.restart_kernel(now=True)
        wait_for("fast failure", lambda: not km.is_alive(), timeout=2)
        assert "not queueing again within 30 s: gave up after 2 s" in log.read_text()
        assert km.provisioner.process.returncode == 1
        recorded(setup, "queued", log, "not queueing again within 30 s: gave up after 2 s")


def test_request_that_can_never_start_fails_at_once(setup: Setup, tmp_path: Path) -> None:
    with started(setup, "toolong", tmp_path, ready=False) as (km, _, log):
        took = wait_for("failure", lambda: not km.is_alive(), timeout=15)
        text = log.read_text()
        # Not the 300 s pending_limit: the reason says waiting will not help.
        assert took < 6, text
        assert "can never start (PartitionTimeLimit): change 'time'" in text, text
        assert "of Slurm profile 'toolong'" in text and "gave up after" not in text, text
        assert km.provisioner.process.returncode == 1
        recorded(setup, "toolong", log, "can never start (PartitionTimeLimit)")
        wait_for("job cancelled", lambda: not setup.cluster.jobs(), timeout=5)
        km.restart_kernel(now=True)  # Jupyter's restarter: fails at once, no new job
        wait_for("fast failure", lambda: not km.is_alive(), timeout=2)
        assert "not queueing again within 30 s: Slurm job" in log.read_text()


def test_wrapper_failure_is_recorded_and_fails_the_same_without_a_record(
        setup: Setup, tmp_path: Path) -> None:
    wrapper = setup.kernels / setup.name("cpu1") / SLURM_LAUNCHER_NAME
    cf = str(tmp_path / "kernel-x.json")
    records = tmp_path / "records"
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    runs = []
    # Root ignores permissions: a path under a regular file is one nobody can write.
    for where in (records, blocked / "records"):
        runs.append(subprocess.run(
            [str(wrapper), "--kernel", "k1", "--connection-file", cf, "--srun",
             str(tmp_path / "no-srun"), "--", "true"], env={**setup.env,
             "OZKERNELS_FAILURES_DIR": str(where)}, capture_output=True, text=True, timeout=30,
            check=False))
    first, second = runs
    assert first.returncode == second.returncode == 1
    assert first.stderr == second.stderr and first.stderr.startswith(
        "ozkernels: kernel 'k1': srun not found ("), first.stderr
    assert (records / "k1").read_text() == first.stderr.split(": ", 2)[2] + cf + "\n"
    # The node side (srun runs it in the job) records its failures the same way.
    node = subprocess.run(
        [str(wrapper), "--node", "--kernel", "k2", "--connection-file", cf, "--remote", "always",
         "--address", "127.0.0.1", "--sidecar", cf + ".slurm-node", "--", "true"],
        env={**setup.env, "OZKERNELS_FAILURES_DIR": str(records)}, capture_output=True,
        text=True, timeout=30, check=False)
    assert node.returncode == 1 and "cannot read the connection file" in node.stderr
    said = node.stderr.splitlines()[-1]  # after bash's own line about the missing file
    assert (records / "k2").read_text() == said.split(": ", 2)[2] + "\n" + cf + "\n"
    assert sorted(p.name for p in records.iterdir()) == ["k1", "k2"]


def test_forced_kill_while_pending(setup: Setup, tmp_path: Path) -> None:
    with started(setup, "held", tmp_path, ready=False) as (km, _, _):
        wait_for("job pending", lambda: "PENDING" in job_states(setup).values())
        km.shutdown_kernel(now=True)  # srun ignores SIGTERM while waiting: scancel it is
        wait_for("pending job cancelled", lambda: not setup.cluster.jobs(), timeout=1)


def test_check_reports_job_and_queue_wait(setup: Setup) -> None:
    cmd = [sys.executable, "-m", "ozkernels", "check", setup.name("cpu1"), BASE]
    proc = subprocess.run([*cmd, "--json"], env=setup.env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    slurm, local = json.loads(proc.stdout)["results"]
    assert slurm["ok"] and slurm["start_seconds"] > 0 and slurm["shutdown_seconds"] is not None
    facts = slurm["slurm"]
    assert facts["job"] == slurm["probe"]["slurm_job_id"] and facts["node"] == "localhost"
    assert facts["profile"] == "cpu1" and 0 <= facts["queue_wait"] < 5
    assert local["ok"] and local["slurm"] == {} and not local["probe"]["slurm_job_id"]
    text = subprocess.run(cmd, env=setup.env, capture_output=True, text=True, timeout=120,
                          check=True).stdout
    head, row, plain = (line.split() for line in text.splitlines())
    assert head == ["KERNEL", "LANGUAGE", "RESULT", "START", "SLURM", "JOB", "QUEUE", "WAIT",
                    "ERROR"]
    assert row[:3] == [setup.name("cpu1"), "python", "pass"] and row[4].isdigit()
    assert row[5:7] == ["on", "localhost"] and row[7].endswith("s") and row[8] == "-"
    assert plain[:3] == [BASE, "python", "pass"] and plain[4:] == ["-", "-", "-"]


def test_check_reports_queue_timeout(setup: Setup) -> None:
    proc = subprocess.run([sys.executable, "-m", "ozkernels", "check", setup.name("queued"),
                           setup.name("held"), "--json", "--timeout", "4"], env=setup.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    gave_up, waiting = json.loads(proc.stdout)["results"]
    assert not gave_up["ok"] and "still pending (BeginTime)" in gave_up["error"], gave_up
    assert gave_up["slurm"]["profile"] == "queued" and not gave_up["slurm"]["job"]
    # The check's own timeout: the queue message is the error, and the job is cancelled.
    assert "is waiting in the queue (BeginTime) for 3 s" in waiting["error"], waiting
    assert not waiting["ok"] and waiting["slurm"]["profile"] == "held"


def test_sync_writes_and_removes_profile_kernels(setup: Setup, site: Site,
                                                 tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {**setup.env, "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_CONFIG_DIR": str(config)}
    kernels = tmp_path / "data" / "kernels"
    sync(env)
    base = {d.name for d in kernels.iterdir() if not d.name.startswith(".")}
    venvs = sorted(n for n in base if n.startswith("venv-"))
    profile = {"cpus": 2, "time": "30", "envs": ["venv:*"]}
    write_config(config, {"two": profile, "off": {"cpus": 1}}, ["two"])
    out = sync(env)
    wanted = sorted(f"{v}-slurm-two" for v in venvs)
    assert sorted(a["kernel"] for a in out["actions"]) == wanted
    assert {a["action"] for a in out["actions"]} == {"add"} and out["unchanged"] == len(base)
    for v in venvs:
        spec = json.loads((kernels / f"{v}-slurm-two" / "kernel.json").read_text())
        plain = json.loads((kernels / v / "kernel.json").read_text())
        owner = spec["metadata"]["ozkernels"]
        assert spec["display_name"] == plain["display_name"] + " - Slurm 2 CPU 30m"
        assert owner["variant"] == "slurm:two" and owner["slurm"]["cpus"] == 2
        assert owner["prefix"] == plain["metadata"]["ozkernels"]["prefix"]
        # Besides the logos the plain kernel's dir has too.
        assert [f for f in owner["files"] if not f.startswith("logo-")] == sorted(
            {LAUNCHER_NAME, *SLURM_FILES})
        assert spec["interrupt_mode"] == "message"
        argv = spec["argv"]
        assert argv[0] == str(kernels / f"{v}-slurm-two" / SLURM_LAUNCHER_NAME)
        assert "--cpus-per-task=2" in argv and "--time=30" in argv
        inner = argv[argv.index("--") + 1:]
        assert inner[0] == str(kernels / f"{v}-slurm-two" / LAUNCHER_NAME)
        assert inner[-2:] == ["-f", "{connection_file}"]
        files = {n: (kernels / f"{v}-slurm-two" / n).read_bytes() for n in owner["files"]}
        claimed = owner.pop("fingerprint")
        assert fingerprint(spec, files) == claimed
    # The kernel a sync wrote starts as a job through jupyter_client.
    tp = tmp_path / "run"
    tp.mkdir()
    probe_setup = Setup(cluster=setup.cluster, kernels=kernels, env=env, venv=setup.venv)
    with started(probe_setup, "two", tp) as (_, kc, _):
        info = probe(kc)
        assert info["job"] and info["prefix"] == setup.venv
        assert "python/3.11.7" in info["loaded"].split(":")
    stamp = {p: p.stat().st_mtime_ns for p in kernels.rglob("*")}
    out = sync(env)
    assert out["actions"] == [] and out["unchanged"] == len(base) + len(venvs)
    assert stamp == {p: p.stat().st_mtime_ns for p in kernels.rglob("*")}
    # `ozkernels list` shows each env's Slurm kernels, in JSON and in the table.
    listing = subprocess.run([sys.executable, "-m", "ozkernels", "list", "--json"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    envs = json.loads(listing.stdout)["environments"]
    rows = {r["kernel"]: r for r in envs}
    # An env's other kernels (bash_kernel in the tools venv) are listed under the env.
    kernel_rows = {**{k["kernel"]: k for r in envs for k in r["other_kernels"]}, **rows}
    for v in venvs:
        assert [k["kernel"] for k in kernel_rows[v]["variant_kernels"]] == [f"{v}-slurm-two"]
        assert kernel_rows[v]["variant_kernels"][0]["variant"] == "slurm:two"
    assert all(not r["variant_kernels"] for k, r in rows.items() if not k.startswith("venv-"))
    table = subprocess.run([sys.executable, "-m", "ozkernels", "list"], env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"{BASE}-slurm-two  " in table.split("Slurm kernels:", 1)[1]
    # A changed profile updates its kernels; a disabled one removes them, and nothing else.
    write_config(config, {"two": {**profile, "time": "45"}}, ["two"])
    assert {a["action"] for a in sync(env)["actions"]} == {"update"}
    write_config(config, {"two": profile}, [])
    out = sync(env)
    wanted = sorted(f"{v}-slurm-two" for v in venvs)
    assert sorted(a["kernel"] for a in out["actions"]) == wanted
    assert {a["action"] for a in out["actions"]} == {"remove"}
    assert {d.name for d in kernels.iterdir() if not d.name.startswith(".")} == base
    # `ozkernels remove` of an env takes its Slurm kernels along; of one Slurm kernel, explains.
    write_config(config, {"two": profile}, ["two"])
    sync(env)
    ozk = [sys.executable, "-m", "ozkernels", "remove"]
    proc = subprocess.run([*ozk, f"{BASE}-slurm-two"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1 and "comes from Slurm profile 'two'" in proc.stderr, proc.stderr
    proc = subprocess.run([*ozk, BASE, "--json"], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(proc.stdout)["also_removed"] == [f"{BASE}-slurm-two"]
    assert sync(env)["actions"] == []
    assert not (kernels / BASE).exists() and not (kernels / f"{BASE}-slurm-two").exists()


def test_profiles_config() -> None:
    from traitlets.config import Config

    c = Config()
    c.SlurmProfiles.profiles = {
        "cpu4-2h": {"cpus": 4, "time": "2:00:00", "partition": "work", "envs": ["venv:*"]},
        "gpu": {"gpus": "a100:1", "time": "1-00:00:00", "mem": 16000},
        "bad": {"cpus": 0},
        "bad-remote": {"remote": "sometimes"},
        "bad-extra": {"extra": "--exclusive"},
        "here": {"remote": "never", "pending_limit": 5, "envs": ["conda:*"]},
    }
    c.SlurmProfiles.enabled = ["*"]
    profiles = SlurmProfiles(config=c)
    assert [p.name for p in profiles.active] == ["cpu4-2h", "gpu", "here"]
    venv = Environment(kind="venv", prefix="/p/a", python="/p/a/bin/python", name="analysis")
    conda = Environment(kind="conda", prefix="/p/c", python="/p/c/bin/python", name="ml")
    base = {"argv": ["/k/venv-analysis/ozkernels-launch", "--kernel", "venv-analysis", "--",
                     "-f", "{connection_file}"], "display_name": "Python 3.11 (venv: analysis)",
            "metadata": {"ozkernels": {"variant": ""}}}
    requests = profiles.requests(venv)
    assert [(r.variant, r.suffix) for r in requests] == [
        ("slurm:cpu4-2h", "-slurm-cpu4-2h"), ("slurm:gpu", "-slurm-gpu")]
    wanted = [profiles.build(r, venv, Wanted("", base, {LAUNCHER_NAME: b"x"}, "venv-analysis"),
                             f"/k/venv-analysis{r.suffix}") for r in requests]
    first = wanted[0].spec
    assert first["display_name"] == "Python 3.11 (venv: analysis) - Slurm 4 CPU 2h"
    assert wanted[1].spec["display_name"].endswith("Slurm 1 CPU 1 GPU 1d")
    assert first["argv"][0] == f"/k/venv-analysis-slurm-cpu4-2h/{SLURM_LAUNCHER_NAME}"
    inner = first["argv"][first["argv"].index("--") + 1:]
    assert inner[:3] == ["/k/venv-analysis-slurm-cpu4-2h/ozkernels-launch", "--kernel",
                         "venv-analysis-slurm-cpu4-2h"]
    assert "--partition=work" in first["argv"] and "--mem=16000M" in wanted[1].spec["argv"]
    assert set(wanted[0].files) == {LAUNCHER_NAME, *SLURM_FILES}
    on_conda = [profiles.build(r, conda, Wanted("", base, {}), "/k/x")
                for r in profiles.requests(conda)]
    assert [w.variant for w in on_conda] == ["slurm:gpu", "slurm:here"]
    argv = on_conda[1].spec["argv"]
    assert argv[argv.index("--remote") + 1] == "never" and "--relay-python" not in argv
    assert argv[argv.index("--pending-limit") + 1] == "5"
    assert first["argv"][first["argv"].index("--remote") + 1] == "auto"
    assert base["argv"][0] == "/k/venv-analysis/ozkernels-launch"  # the base spec is untouched


def test_wrapped_kernel_gets_slurm_variant(cluster: Cluster, site: Site, tmp_path: Path) -> None:
    """A kernelspec the env ships (bash_kernel) gets a Slurm variant that runs in its job."""
    config, data = tmp_path / "config", tmp_path / "data"
    write_config(config, {"bash1": {"cpus": 1, "time": "10", "envs": ["venv:tools"]}}, ["*"])
    env = cluster.environ(site.environ(JUPYTER_DATA_DIR=str(data),
                                       JUPYTER_CONFIG_DIR=str(config)))
    added = {a["kernel"] for a in sync(env)["actions"] if a["action"] == "add"}
    name = "venv-tools-bash-slurm-bash1"
    assert {"venv-tools-bash", name, "venv-tools-slurm-bash1"} <= added
    spec = json.loads((data / "kernels" / name / "kernel.json").read_text())
    meta = spec["metadata"]["ozkernels"]
    assert (meta["wraps"], meta["variant"]) == ("bash", "slurm:bash1")
    assert spec["language"] == "bash"
    assert spec["display_name"] == "Bash (venv: tools) - Slurm 1 CPU 10m"
    listing = subprocess.run([sys.executable, "-m", "ozkernels", "list", "--json"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    tools = next(e for e in json.loads(listing.stdout)["environments"] if e["name"] == "tools")
    assert [v["kernel"] for v in tools["other_kernels"][0]["variant_kernels"]] == [name]
    proc = subprocess.run([sys.executable, "-m", "ozkernels", "check", name, "--json"], env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result] = json.loads(proc.stdout)["results"]
    assert result["ok"] and result["language"] == "bash"
    assert result["probe"]["slurm_job_id"] == result["slurm"]["job"] != ""
    assert "python/3.11.7" in result["probe"]["loaded"].split(":")
    assert result["probe"]["virtual_env"] == str(site.venvs["tools"])
    cluster.wait_empty(5)
