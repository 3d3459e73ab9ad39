"""A kernel that cannot start: its launcher's one line on stderr, in a record, in `list`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from ozkernels.failures import FailureWatch, parse, read_failures

KERNEL = "venv-analysis"


def start(kernels: Path, env: dict[str, str], stderr_path: Path) -> KernelManager:
    km = KernelManager(kernel_name=KERNEL,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    with stderr_path.open("w") as err:
        km.start_kernel(env=env, stderr=err)
    return km


def test_failed_start_is_recorded_listed_and_cleared_by_a_good_start(
        run_ozk, site_env, own_site, tmp_path) -> None:
    env = own_site.environ(JUPYTER_DATA_DIR=site_env["JUPYTER_DATA_DIR"],
                           JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    run_ozk("sync", env=env)
    kernels = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    records = Path(env["JUPYTER_DATA_DIR"]) / "ozkernels" / "failures"
    lua = next(p for p in own_site.root.rglob("3.11.7.lua") if p.parent.name == "python")
    away = lua.with_name("moved-away")
    lua.rename(away)  # the admins removed the module
    try:
        km = start(kernels, env, tmp_path / "err1")
        deadline = time.monotonic() + 30
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not km.is_alive(), "the launcher did not give up"
        assert km.provisioner is not None and km.provisioner.process is not None
        assert km.provisioner.process.returncode != 0  # other clients rely on the exit status
        km.cleanup_resources()
    finally:
        away.rename(lua)
    lines = [line for line in (tmp_path / "err1").read_text().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"ozkernels: kernel '{KERNEL}': module load ")
    record = read_failures(str(records))[KERNEL]
    assert f"ozkernels: kernel '{KERNEL}': {record.message}" == lines[0]
    assert "run 'ozkernels sync'" in record.message
    assert record.connection_file == km.connection_file
    assert not [p.name for p in records.iterdir() if p.name != KERNEL], "temp files left"

    listed = json.loads(run_ozk("list", "--json", env=env).stdout)["environments"]
    failed = {e["name"]: e["last_start_failure"] for e in listed}
    assert failed["analysis"]["message"] == record.message
    assert failed["analysis"]["kernel"] == KERNEL
    assert failed["astro"] is None
    assert f"kernel {KERNEL}: last start failed " in run_ozk("list", env=env).stdout

    km = start(kernels, env, tmp_path / "err2")  # the module is back
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.stop_channels()
    finally:
        km.shutdown_kernel()
    assert KERNEL not in read_failures(str(records))
    listed = json.loads(run_ozk("list", "--json", env=env).stdout)["environments"]
    assert all(e["last_start_failure"] is None for e in listed)


def put(path: Path, text: str) -> None:
    """Write a record as the launcher does: a temp file renamed over the old one."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def test_watch_tells_each_start_attempt_once(tmp_path) -> None:
    watch = FailureWatch(str(tmp_path / "failures"), since=time.time() - 1)
    assert watch.poll() == []
    (tmp_path / "failures").mkdir()
    record = tmp_path / "failures" / "k1"
    put(record, "module load x failed; run 'ozkernels sync'\n/rt/kernel-a.json\n")
    assert [f.kernel for f in watch.poll()] == ["k1"]
    assert watch.poll() == []
    put(record, "module load x failed; run 'ozkernels sync'\n/rt/kernel-a.json\n")
    put(tmp_path / "failures" / "k2", "\n")  # no message: not a record
    assert watch.poll() == []  # a restart of the same attempt: not news
    put(record, "module load x failed; run 'ozkernels sync'\n/rt/kernel-b.json\n")
    assert [f.connection_file for f in watch.poll()] == ["/rt/kernel-b.json"]
    record.unlink()  # a good start cleared it
    assert watch.poll() == []
    put(record, "module load x failed; run 'ozkernels sync'\n/rt/kernel-b.json\n")
    assert [f.kernel for f in watch.poll()] == ["k1"]
    old = FailureWatch(str(tmp_path / "failures"), since=time.time() + 60)
    assert old.poll() == [] and "k1" in old.current  # from before the server: listed, not told
    assert parse("k", "", 0) is None


def test_other_kernels_start_failure_is_listed(run_ozk, site_env) -> None:
    run_ozk("sync")
    other = "venv-tools-bash"  # bash_kernel in the tools venv (demosite)
    assert (Path(site_env["JUPYTER_DATA_DIR"]) / "kernels" / other / "kernel.json").exists()
    records = Path(site_env["JUPYTER_DATA_DIR"]) / "ozkernels" / "failures"
    records.mkdir(parents=True)
    put(records / other, "module load python/3.11.7 failed: gone; run 'ozkernels sync'\n/k.json\n")
    listed = json.loads(run_ozk("list", "--json").stdout)["environments"]
    tools = next(e for e in listed if e["name"] == "tools")
    assert tools["last_start_failure"]["kernel"] == other
    by_kernel = {k["kernel"]: k for k in tools["other_kernels"]}
    assert by_kernel[other]["last_start_failure"]["message"].startswith("module load python/")
    assert all(e["last_start_failure"] is None for e in listed if e["name"] != "tools")
    assert f"kernel {other}: last start failed " in run_ozk("list").stdout
