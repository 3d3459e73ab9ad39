"""Every kernel written on the test sites starts through jupyter_client and is right inside.

Each test runs on the Lmod site and on the Environment Modules (Tcl) site, the latter with Lmod
hidden, so a pass cannot come from the other module system.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SYSTEMS, shell_reply
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

PROBE = """
import json, os, sys
print(json.dumps({"prefix": sys.prefix, "loaded": os.environ.get("LOADEDMODULES", ""),
    "path": os.environ["PATH"], "lmod": os.path.exists("/usr/share/lmod/lmod"),
    "modules_cmd": os.environ.get("MODULES_CMD"), "lmod_vars": sorted(
        k for k in os.environ if k.startswith(("LMOD_", "_ModuleTable"))),
    "venv": os.environ.get("VIRTUAL_ENV"), "conda": os.environ.get("CONDA_PREFIX"),
    "conda_env": os.environ.get("CONDA_DEFAULT_ENV"), "path0": os.environ["PATH"].split(":")[0],
    "state": os.environ.get("OZK_STATE_VAR"), "envvars_d": os.environ.get("OZK_ENVVARS_D"),
    "activated": os.environ.get("ASTRO_ACTIVATED"), "seen": os.environ.get("ASTRO_SEEN_PREFIX"),
    "pythonpath": os.environ.get("PYTHONPATH"), "pid": os.getpid()}))
"""


@pytest.fixture(scope="module", params=SYSTEMS)
def synced_site(request, hide_lmod, tmp_path_factory):
    """Each module system's site synced once into a kernels dir of this module's own."""
    site = request.getfixturevalue(f"{request.param}_site")
    data = tmp_path_factory.mktemp("kernels-data")
    env = site.environ(JUPYTER_DATA_DIR=str(data))
    with hide_lmod(site):
        subprocess.run([sys.executable, "-m", "ozkernels", "sync"], env=env, check=True,
                       timeout=120, capture_output=True)
    kdir = data / "kernels"
    names = {}
    for d in kdir.glob("*/"):
        spec = json.loads((d / "kernel.json").read_text())
        names[spec["metadata"]["ozkernels"]["prefix"]] = d.name
    return site, kdir, names


@pytest.fixture
def synced(synced_site, hide_lmod):
    """(kernels dir, kernel names by prefix) of the synced site, Lmod hidden for a Tcl site."""
    site, kdir, names = synced_site
    with hide_lmod(site):
        yield kdir, names


@pytest.fixture
def ksite(synced_site):
    """The site the synced kernels belong to."""
    return synced_site[0]


def run_in_kernel(kdir: Path, name: str, code: str, env: dict | None = None):
    """Start a kernel, run code, return (parsed json output, km pid) after graceful shutdown."""
    km = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(kdir)]))
    km.start_kernel(env=env) if env is not None else km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out = []
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = km.provisioner.process.pid
    finally:
        kc.stop_channels()
        t0 = time.perf_counter()
        km.shutdown_kernel(now=False)
        shutdown = time.perf_counter() - t0
    assert shutdown < 3, f"graceful shutdown took {shutdown:.1f}s"
    assert not km.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return json.loads("".join(out)), pid


def leaky_env(site=None):
    """A server environment with everything that should not reach a kernel.

    With a site: the server also has the site's tools module loaded (and no `module` function).
    """
    env = site.module_environ(site.names["tools"]) if site else dict(os.environ)
    env.update(PYTHONPATH="/leak/pythonpath", VIRTUAL_ENV="/leak/venv", CONDA_PREFIX="/leak/conda",
               CONDA_DEFAULT_ENV="leak", PATH="/leak/venv/bin:" + env["PATH"])
    return env


def assert_own_module_system(site, got):
    """The kernel's modules came from the site's module system and no other."""
    if site.system == "tmod":
        assert not got["lmod"] and got["lmod_vars"] == []  # Lmod is unreachable, not just unused
        assert got["modules_cmd"] == site.modules_cmd
    else:
        assert got["lmod"]


@pytest.mark.parametrize("label", ["analysis", "bare-ipk", "hostile", "unicode"])
def test_venv_kernels_on_module_pythons(synced, ksite, label):
    kdir, names = synced
    prefix = str(ksite.venvs[label])
    server = leaky_env(ksite)
    tools = str(ksite.modules[ksite.names["tools"]] / "bin")
    assert server["LOADEDMODULES"] == ksite.names["tools"] and tools in server["PATH"]
    got, pid = run_in_kernel(kdir, names[prefix], PROBE, env=server)
    assert got["prefix"] == prefix and got["venv"] == prefix
    assert got["path0"] == f"{prefix}/bin"
    module = ksite.names["bare" if label == "bare-ipk" else "python"]
    assert got["loaded"].split(":") == [ksite.names["gcc"], module]
    assert tools not in got["path"].split(":")  # the server's modules were purged
    assert got["pythonpath"] is None and got["conda"] is None
    assert got["pid"] == pid  # the launcher exec'd: no process in between
    assert_own_module_system(ksite, got)
    assert not list(ksite.root.rglob("PWNED"))


def test_plain_venv_kernel(synced, ksite):
    kdir, names = synced
    prefix = str(ksite.venvs["plain"])
    got, _ = run_in_kernel(kdir, names[prefix], PROBE)
    assert got["prefix"] == prefix and got["loaded"] == ""


def test_conda_kernel_fully_activated(synced, ksite):
    kdir, names = synced
    prefix = os.path.realpath(ksite.conda_envs["astro"])
    got, _ = run_in_kernel(kdir, names[prefix], PROBE, env=leaky_env())
    assert got["prefix"] == prefix and got["conda"] == prefix
    assert got["conda_env"] == "astro" and got["path0"] == f"{prefix}/bin"
    assert got["state"] == "from-state" and got["envvars_d"] == "from-env-vars-d"
    assert got["activated"] == "yes" and got["seen"] == prefix
    assert got["venv"] is None and got["pythonpath"] is None


def test_conda_kernel_with_space_in_path(synced, ksite):
    kdir, names = synced
    prefix = os.path.realpath(ksite.conda_envs["ml"])
    got, _ = run_in_kernel(kdir, names[prefix], PROBE)
    assert got["prefix"] == prefix and got["conda_env"] == "ml tools"


def test_plain_ipykernel_spec_dies_where_ozkernels_starts(synced, ksite, tmp_path):
    """The problem ozkernels solves: a spec straight at the venv's python cannot start."""
    kdir, names = synced
    plain = tmp_path / "kernels" / "plain-analysis"
    plain.mkdir(parents=True)
    python = str(ksite.venvs["analysis"] / "bin" / "python")
    (plain / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "plain", "language": "python"}))
    km = KernelManager(kernel_name="plain-analysis", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(tmp_path / "kernels")]))
    with open(tmp_path / "err", "w") as err:
        km.start_kernel(stderr=err)
    kc = km.client()
    kc.start_channels()
    with pytest.raises(RuntimeError):
        kc.wait_for_ready(timeout=20)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    assert "libpython3.11" in (tmp_path / "err").read_text()


def test_interrupt_reaches_the_kernel(synced, ksite):
    kdir, names = synced
    km = KernelManager(kernel_name=names[str(ksite.venvs["analysis"])],
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kdir)]))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time; time.sleep(30)")
        time.sleep(1.0)
        t0 = time.perf_counter()
        km.interrupt_kernel()
        reply = shell_reply(kc, msg_id, timeout=10)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.perf_counter() - t0 < 5
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_check_command_passes_every_kernel(run_ozk, msite, msite_env):
    run_ozk("sync", env=msite_env)
    data = json.loads(run_ozk("check", "--json", env=msite_env, timeout=300).stdout)
    results = data["results"]
    assert len(results) >= 7 and all(r["ok"] for r in results), results
    assert all(0 < r["start_seconds"] < 30 for r in results)
    # Each kernel is probed in its own language: R and bash report their activation too.
    by_name = {r["name"]: r for r in results}
    r_kernel, bash = by_name["conda-rstats-ir"], by_name["venv-tools-bash"]
    assert r_kernel["language"] == "R" and r_kernel["probe"]["value"] == "42"
    assert r_kernel["probe"]["conda_prefix"].endswith("/.conda/envs/rstats")
    assert bash["language"] == "bash" and bash["probe"]["virtual_env"].endswith("/venvs/tools")
    assert bash["probe"]["loaded"].split(":") == [msite.names["gcc"], msite.names["python"]]
    assert by_name["venv-analysis"]["language"] == "python"
    proc = run_ozk("check", "venv-analysis", env=msite_env)
    assert "pass" in proc.stdout and "venv-analysis" in proc.stdout


def test_check_reports_the_launchers_reason(run_ozk, own_msite, tmp_path):
    own_site = own_msite
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run_ozk("sync", env=env)
    bare = own_site.names["bare"]
    own_site.modulefiles[bare].rename(tmp_path / "removed-modulefile")
    shutil.rmtree(own_site.conda_envs["ml"])
    proc = run_ozk("check", "--json", "venv-bare-ipk", "conda-ml-tools", env=env, check=False,
                   timeout=300)
    assert proc.returncode == 1
    results = {r["name"]: r for r in json.loads(proc.stdout)["results"]}
    assert not results["venv-bare-ipk"]["ok"]
    assert bare in results["venv-bare-ipk"]["error"]
    assert "ozkernels sync" in results["venv-bare-ipk"]["error"]
    assert "no longer exists" in results["conda-ml-tools"]["error"]
    unknown = run_ozk("check", "nope", env=env, check=False)
    assert unknown.returncode == 1 and "no ozkernels kernel named nope" in unknown.stderr



def test_conda_kernel_loads_the_conda_module(run_ozk, msite, msite_env, tmp_path):
    """CondaSource.conda_module: the conda env's kernel loads the site's conda module first."""
    config = tmp_path / "config"
    config.mkdir()
    conda = msite.names["conda"]
    (config / "jupyter_ozkernels_config.json").write_text(
        json.dumps({"CondaSource": {"conda_module": conda}}))
    env = {**msite_env, "JUPYTER_CONFIG_DIR": str(config)}
    run_ozk("sync", env=env)
    kdir = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    prefix = os.path.realpath(msite.conda_envs["astro"])
    got, _ = run_in_kernel(kdir, "conda-astro", PROBE, env=leaky_env(msite))
    assert got["loaded"] == conda and got["conda"] == prefix and got["prefix"] == prefix
    path = got["path"].split(":")
    assert path[0] == f"{prefix}/bin"
    assert str(msite.modules[conda] / "bin") in path  # the module's conda, never run
    assert_own_module_system(msite, got)
