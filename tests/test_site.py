"""Site-wide kernels: module Pythons for everyone, safe files, no duplicates, a report for cron."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ozkernels.demosite import GCC_VERSION


@pytest.fixture
def site_prefix(tmp_path):
    prefix = tmp_path / "site-kernels"
    prefix.mkdir(mode=0o755)
    os.chmod(prefix, 0o755)
    return prefix


def site_specs(prefix: Path) -> dict[str, dict]:
    kdir = prefix / "share" / "jupyter" / "kernels"
    return {d.name: json.loads((d / "kernel.json").read_text()) for d in kdir.glob("*/")
            if (d / "kernel.json").exists()}


def test_site_sync_writes_module_kernels_only(run_ozk, site_prefix, msite, msite_env):
    n = msite.names
    out = json.loads(run_ozk("sync", "--system", "--prefix", str(site_prefix), "--json",
                             env=msite_env).stdout)
    written = site_specs(site_prefix)
    name = "site-module-" + n["python"].lower().replace("/", "-")
    assert set(written) == {name}  # -bare ships no ipykernel
    assert [a["action"] for a in out["actions"]] == ["add"]
    spec = written[name]
    meta = spec["metadata"]["ozkernels"]
    assert meta["site"] is True and meta["kind"] == "module"
    # The full parent chain (Lmod's hierarchy); a Tcl Python that loads its GCCcore itself alone.
    assert meta["modules"] == ([n["gcc"], n["python"]] if msite.system == "lmod" else
                               [n["python"]])
    assert spec["display_name"] == f"Python 3.11.7 (module: {n['python']})"
    # nobody's home was searched
    assert not any(m["metadata"]["ozkernels"]["kind"] != "module" for m in written.values())
    assert not (Path(msite_env["JUPYTER_DATA_DIR"]) / "kernels").exists()
    # ... and the site kernel starts, with the module system's own modules loaded
    data = json.loads(run_ozk("check", "--system", "--prefix", str(site_prefix), "--json",
                              env=msite_env, timeout=300).stdout)
    result, = data["results"]
    assert result["ok"], result


def test_site_files_are_not_user_writable(run_ozk, site_prefix):
    run_ozk("sync", "--system", "--prefix", str(site_prefix))
    kdir = site_prefix / "share" / "jupyter" / "kernels" / "site-module-python-3.11.7"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [kdir, *kdir.iterdir()]}
    assert modes["kernel.json"] & 0o022 == 0 and modes["kernel.json"] & 0o444 == 0o444
    assert modes["ozkernels-launch"] & 0o022 == 0 and modes["ozkernels-launch"] & 0o111 == 0o111
    assert modes[kdir.name] & 0o022 == 0


def test_refuses_group_writable_dir_without_force(run_ozk, site_prefix):
    os.chmod(site_prefix, 0o777)
    proc = run_ozk("sync", "--system", "--prefix", str(site_prefix), check=False)
    assert proc.returncode == 1
    assert "writable by group or others" in proc.stderr and "--force" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not site_specs(site_prefix)
    run_ozk("sync", "--system", "--prefix", str(site_prefix), "--force")
    assert site_specs(site_prefix)


def test_site_envs_from_config(run_ozk, site_prefix, site, tmp_path):
    cfg = tmp_path / "etc-jupyter"
    cfg.mkdir()
    (cfg / "jupyter_ozkernels_config.json").write_text(json.dumps(
        {"KernelsManager": {"site_envs": [str(site.conda_envs["astro"]), str(tmp_path)]}}))
    env = site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(cfg))
    proc = run_ozk("sync", "--system", "--prefix", str(site_prefix), env=env)
    assert "neither a venv nor a conda env" in proc.stderr
    assert set(site_specs(site_prefix)) == {"site-module-python-3.11.7", "site-conda-astro"}


def test_user_sync_skips_envs_covered_by_site(run_ozk, site_prefix, site, tmp_path):
    cfg = tmp_path / "etc-jupyter"
    cfg.mkdir()
    (cfg / "jupyter_ozkernels_config.json").write_text(json.dumps(
        {"KernelsManager": {"site_envs": [str(site.conda_envs["astro"])]},
         "Syncer": {"module_kernels": True}}))
    env = site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(cfg),
                       JUPYTER_PATH=str(site_prefix / "share" / "jupyter"))
    run_ozk("sync", "--system", "--prefix", str(site_prefix), env=env)
    run_ozk("sync", env=env)
    user = {d.name for d in (tmp_path / "data" / "kernels").glob("*/")}
    assert "conda-astro" not in user and "module-python-3.11.7" not in user
    assert "venv-analysis" in user
    rows = {e["name"]: e for e in json.loads(run_ozk("list", "--json", env=env).stdout)[
        "environments"]}
    assert rows["astro"]["status"] == "site kernel"
    assert rows["astro"]["kernel"] == "site-conda-astro"


def test_check_system_report_and_exit_codes(run_ozk, site_prefix, own_site, tmp_path):
    site = own_site
    env = site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run_ozk("sync", "--system", "--prefix", str(site_prefix), env=env)
    ok = run_ozk("check", "--system", "--prefix", str(site_prefix), "--json", timeout=300,
                 env=env)
    results = json.loads(ok.stdout)["results"]
    assert [(r["name"], r["ok"]) for r in results] == [("site-module-python-3.11.7", True)]
    loaded = results[0]["probe"]["loaded"].split(":")
    assert loaded == [f"gcccore/{GCC_VERSION}", "python/3.11.7"]
    # break the module: the report fails, names the reason, exits 1
    lua = (site.root / "modules" / "Compiler" / "gcccore" / GCC_VERSION / "python" /
           "3.11.7.lua")
    hidden = lua.with_suffix(".off")
    lua.rename(hidden)
    bad = run_ozk("check", "--system", "--prefix", str(site_prefix), check=False, timeout=300,
                  env=env)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout and "python/3.11.7" in bad.stdout


def tree_modes(top: Path) -> dict[str, int]:
    """Mode bits of top and everything below it, by path relative to top."""
    found = {".": stat.S_IMODE(top.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(top))] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.parametrize("umask", [0o002, 0o000])
def test_site_modes_do_not_depend_on_the_umask(site_env, tmp_path, umask):
    import subprocess
    import sys

    prefix = tmp_path / "apps" / "jupyter"  # nothing below tmp_path exists yet
    proc = subprocess.run(
        [sys.executable, "-m", "ozkernels", "sync", "--system", "--prefix", str(prefix)],
        env=site_env, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509 - one thread here
    )
    assert proc.returncode == 0, proc.stderr
    modes = tree_modes(tmp_path / "apps")
    assert site_specs(prefix), "no site kernel written"
    assert {"jupyter", "jupyter/share", "jupyter/share/jupyter",
            "jupyter/share/jupyter/kernels"} <= set(modes)
    for path, mode in modes.items():
        full = tmp_path / "apps" / path
        if full.is_dir():
            assert mode == 0o755, (path, oct(mode))
        else:
            want = 0o755 if full.name.startswith("ozkernels-") else 0o644
            assert mode == want, (path, oct(mode))


@pytest.mark.parametrize("below", ["", "share", "share/jupyter", "share/jupyter/kernels"])
def test_refuses_a_group_writable_dir_on_the_way_down(run_ozk, site_prefix, below):
    run_ozk("sync", "--system", "--prefix", str(site_prefix))
    kdir = site_prefix / "share" / "jupyter" / "kernels"
    before = {p: p.stat().st_mtime_ns for p in kdir.rglob("*")}
    os.chmod(site_prefix / below, 0o775)
    proc = run_ozk("sync", "--system", "--prefix", str(site_prefix), "--json", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{site_prefix / below if below else site_prefix} is writable by group" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in kdir.rglob("*")} == before
