"""Sync on the real test site: specs written, kept, updated, removed; never anyone else's."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import make_venv

from ozkernels.demosite import GCC_VERSION
from ozkernels.specs import LAUNCHER_NAME

# The test site's venvs are made from the interpreter running the tests.
HOST_PY = platform.python_version()

NAME_RULE = "abcdefghijklmnopqrstuvwxyz0123456789._-"


def kernels(env) -> Path:
    return Path(env["JUPYTER_DATA_DIR"]) / "kernels"


def specs(env) -> dict[str, dict]:
    found = {}
    for d in sorted(kernels(env).iterdir()) if kernels(env).exists() else []:
        try:
            found[d.name] = json.loads((d / "kernel.json").read_text())
        except (OSError, ValueError):
            continue
    return found


def snapshot(env) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_ino) for p in kernels(env).rglob("*")}


def sync_json(run_ozk, *args, env=None):
    return json.loads(run_ozk("sync", "--json", *args, env=env).stdout)


def test_sync_writes_one_valid_spec_per_capable_env(run_ozk, site_env, site):
    out = sync_json(run_ozk)
    # Kernels of the other kernelspecs envs ship have tests of their own (test_other_kernels).
    written = {n: s for n, s in specs(site_env).items()
               if not s["metadata"]["ozkernels"].get("wraps")}
    by_prefix = {s["metadata"]["ozkernels"]["prefix"]: (n, s) for n, s in written.items()}
    expected = {site.venvs[k] for k in ("analysis", "bare-ipk", "plain", "hostile", "unicode",
                                        "tools")}
    expected |= {Path(os.path.realpath(site.conda_envs[k])) for k in ("astro", "ml")}
    assert {Path(p) for p in by_prefix} == expected
    assert {a["action"] for a in out["actions"]} == {"add"}
    for name, spec in written.items():
        assert set(name) <= set(NAME_RULE) and name != "python3"
        assert spec["language"] == "python"
        assert os.path.isabs(spec["argv"][0]) and os.access(spec["argv"][0], os.X_OK)
        assert spec["argv"][0] == str(kernels(site_env) / name / LAUNCHER_NAME)
        assert spec["argv"][-2:] == ["-f", "{connection_file}"]
        meta = spec["metadata"]["ozkernels"]
        assert meta["kind"] in ("venv", "conda") and meta["fingerprint"]
    name, spec = by_prefix[str(site.venvs["analysis"])]
    assert name == "venv-analysis"
    assert spec["display_name"] == f"Python {HOST_PY} (venv: analysis)"
    assert spec["metadata"]["ozkernels"]["modules"] == [f"gcccore/{GCC_VERSION}",
                                                         "python/3.11.7"]
    assert by_prefix[os.path.realpath(site.conda_envs["astro"])][0] == "conda-astro"


def test_second_sync_writes_nothing(run_ozk, site_env):
    run_ozk("sync")
    before = snapshot(site_env)
    out = sync_json(run_ozk)
    assert out["actions"] == [] and out["unchanged"] >= 7
    assert snapshot(site_env) == before
    assert "0 added, 0 updated, 0 removed" in run_ozk("sync").stdout


def test_dry_run_writes_nothing(run_ozk, site_env):
    out = sync_json(run_ozk, "--dry-run")
    assert out["dry_run"] is True and len(out["actions"]) >= 7
    assert not specs(site_env)
    assert "would add" in run_ozk("sync", "--dry-run").stdout


def test_deleted_env_loses_its_kernel_and_names_stay_stable(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    first = make = own_site.home / "venvs" / "analysis2"
    make_venv(own_site, make)
    run_ozk("sync", env=env)
    names = set(specs(env))
    assert "venv-analysis2" in names
    shutil.rmtree(first)
    out = sync_json(run_ozk, env=env)
    assert [(a["action"], a["kernel"]) for a in out["actions"]] == [("remove", "venv-analysis2")]
    assert set(specs(env)) == names - {"venv-analysis2"}
    # an env of the same name elsewhere later gets a distinct name; the old one keeps its own
    other = own_site.home / "envs" / "analysis"
    make_venv(own_site, other)
    run_ozk("sync", env=env)
    new = {n for n, s in specs(env).items()
           if s["metadata"]["ozkernels"]["prefix"] == str(other)}
    assert len(new) == 1 and (name := new.pop()).startswith("venv-analysis-")
    assert "venv-analysis" in specs(env)
    run_ozk("sync", env=env)
    assert name in specs(env)


def test_changed_env_is_updated_in_place(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run_ozk("sync", env=env)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "jupyter_ozkernels_config.json").write_text(
        json.dumps({"Syncer": {"display_name_template": "{name} on {version}"}}))
    out = sync_json(run_ozk, env=dict(env, JUPYTER_CONFIG_DIR=str(cfg)))
    assert {a["action"] for a in out["actions"]} == {"update"}
    assert specs(env)["venv-analysis"]["display_name"] == "analysis on 3.11"


def test_foreign_specs_are_never_touched(run_ozk, site_env, site):
    foreign = kernels(site_env) / "venv-analysis"
    foreign.mkdir(parents=True)
    body = json.dumps({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "mine", "language": "python"})
    (foreign / "kernel.json").write_text(body)
    (kernels(site_env) / "python3").mkdir()
    (kernels(site_env) / "python3" / "kernel.json").write_text(body)
    (kernels(site_env) / "junk").mkdir()
    (kernels(site_env) / "junk" / "kernel.json").write_text("{not json")
    run_ozk("sync")
    run_ozk("sync")
    assert (foreign / "kernel.json").read_text() == body
    assert (kernels(site_env) / "python3" / "kernel.json").read_text() == body
    analysis = str(site.venvs["analysis"])
    ours = [n for n, s in specs(site_env).items()
            if s.get("metadata", {}).get("ozkernels", {}).get("prefix") == analysis]
    assert len(ours) == 1 and ours[0].startswith("venv-analysis-")
    proc = run_ozk("remove", "venv-analysis", check=False)
    assert proc.returncode == 1 and "not written by ozkernels" in proc.stderr
    assert (foreign / "kernel.json").exists()


def test_env_without_ipykernel_any_more_loses_kernel(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run_ozk("sync", env=env)
    assert "venv-bare-ipk" in specs(env)
    site_packages = own_site.venvs["bare-ipk"] / "lib" / "python3.11" / "site-packages"
    os.unlink(site_packages / "ipykernel_launcher.py")
    out = sync_json(run_ozk, env=env)
    assert ("remove", "venv-bare-ipk") in [(a["action"], a["kernel"]) for a in out["actions"]]


def test_concurrent_syncs_agree(site_env):
    procs = [subprocess.Popen([sys.executable, "-m", "ozkernels", "sync", "--json"], env=site_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    added = [a["kernel"] for out, _ in outs for a in json.loads(out)["actions"]]
    assert sorted(added) == sorted(set(added))  # each kernel added by exactly one sync
    assert len(specs(site_env)) == len(added)
    assert not [p for p in kernels(site_env).iterdir() if p.name.startswith(".ozk-")]


def test_modules_recorded_from_an_activated_env(run_ozk, msite, msite_env):
    site, n = msite, msite.names
    loaded = [n["gcc"], n["python"], n["tools"]]
    env = site.module_environ(*loaded, JUPYTER_DATA_DIR=msite_env["JUPYTER_DATA_DIR"])
    assert env["LOADEDMODULES"].split(":") == loaded
    env["VIRTUAL_ENV"] = str(site.venvs["analysis"])
    proc = run_ozk("sync", env=env)
    assert "recorded modules" in proc.stdout
    meta = specs(msite_env)["venv-analysis"]["metadata"]["ozkernels"]
    assert meta["modules"] == loaded
    # later syncs from a plain shell keep the recorded list
    run_ozk("sync", env=msite_env)
    assert specs(msite_env)["venv-analysis"]["metadata"]["ozkernels"]["modules"] == loaded


def test_add_and_remove(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    hidden = tmp_path / "projects" / "proj" / ".venv"
    make_venv(own_site, hidden)
    run_ozk("sync", env=env)
    assert not any(s["metadata"]["ozkernels"]["prefix"] == str(hidden)
                   for s in specs(env).values())
    run_ozk("add", str(hidden), "--module", f"gcccore/{GCC_VERSION}", "--module",
            "python/3.11.7", "--module", "astro-tools/1.0", env=env)
    spec = specs(env)["venv-proj-.venv"]
    assert spec["metadata"]["ozkernels"]["modules"][-1] == "astro-tools/1.0"
    assert spec["display_name"] == f"Python {HOST_PY} (venv: proj/.venv + astro-tools/1.0)"
    run_ozk("remove", "venv-proj-.venv", env=env)
    assert "venv-proj-.venv" not in specs(env)
    run_ozk("remove", "venv-analysis", env=env)
    run_ozk("sync", env=env)
    assert "venv-analysis" not in specs(env)  # removed kernels are not synced back
    run_ozk("add", str(own_site.venvs["analysis"]), env=env)
    assert "venv-analysis" in specs(env)
    bad = run_ozk("add", str(tmp_path), env=env, check=False)
    assert bad.returncode == 1 and "neither a venv" in bad.stderr
    noipk = run_ozk("add", str(own_site.venvs["noipk"]), env=env, check=False)
    assert noipk.returncode == 1 and "pip install ipykernel" in noipk.stderr


def test_unreadable_dir_costs_no_kernel(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    group = own_site.home / "venvs" / "group"
    group.mkdir()
    make_venv(own_site, group / "inner")
    run_ozk("sync", env=env)
    before = snapshot(env)
    assert specs(env)["venv-inner"]["metadata"]["ozkernels"]["prefix"] == str(group / "inner")
    # Root reads everything; without these capabilities it meets permissions like anyone.
    as_user = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    group.chmod(0)
    try:
        proc = subprocess.run([*as_user, sys.executable, "-m", "ozkernels", "sync", "--json"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        listed = subprocess.run([*as_user, sys.executable, "-m", "ozkernels", "list", "--json"],
                                env=env, capture_output=True, text=True, timeout=120,
                                check=False)
    finally:
        group.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert f"cannot read {group} (Permission denied); skipped" in proc.stderr
    assert json.loads(proc.stdout)["actions"] == []
    assert snapshot(env) == before
    assert listed.returncode == 0, listed.stderr
    assert "venv-inner" not in {r["kernel"] for r in json.loads(listed.stdout)["environments"]}
    # Readable again, it is found again and its kernel is simply up to date.
    assert sync_json(run_ozk, env=env)["actions"] == []
    # A venv whose pyvenv.cfg cannot be read is broken, says why, and keeps its kernel.
    cfg = group / "inner" / "pyvenv.cfg"
    cfg.chmod(0)
    try:
        listed = subprocess.run([*as_user, sys.executable, "-m", "ozkernels", "list", "--json"],
                                env=env, capture_output=True, text=True, timeout=120,
                                check=True)
        synced = subprocess.run([*as_user, sys.executable, "-m", "ozkernels", "sync", "--json"],
                                env=env, capture_output=True, text=True, timeout=120,
                                check=True)
    finally:
        cfg.chmod(0o644)
    row = next(r for r in json.loads(listed.stdout)["environments"] if r["name"] == "inner")
    assert row["status"] == "broken" and "Permission denied" in row["detail"], row
    assert json.loads(synced.stdout)["actions"] == [] and snapshot(env) == before
