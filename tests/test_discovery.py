"""Discovery on the real test site: what is found, how it is mapped, and that nothing runs."""

from __future__ import annotations

import json
import os
import stat

from conftest import make_venv

from ozkernels.demosite import GCC_VERSION

FULL = "python/3.11.7"
BARE = "python/3.11.7-bare"


def environments(run_ozk, env=None):
    data = json.loads(run_ozk("list", "--json", env=env).stdout)
    return {(e["kind"], e["name"]): e for e in data["environments"]}, data


def test_module_pythons_found_with_parent_chain(run_ozk, site):
    envs, _ = environments(run_ozk)
    full, bare = envs[("module", FULL)], envs[("module", BARE)]
    assert full["modules"] == [f"gcccore/{GCC_VERSION}", FULL]
    assert full["prefix"] == os.path.realpath(site.modules[FULL])
    assert full["has_ipykernel"] is True and full["version"] == "3.11"
    assert bare["has_ipykernel"] is False and bare["status"] == "no ipykernel"
    assert "pip install ipykernel" in bare["fix"] and "module load" in bare["fix"]
    assert not any(k == "module" and not n.startswith("python/") for k, n in envs)


def test_venvs_mapped_to_their_module(run_ozk, site):
    envs, _ = environments(run_ozk)
    analysis = envs[("venv", "analysis")]
    assert analysis["modules"] == [f"gcccore/{GCC_VERSION}", FULL]
    assert analysis["has_ipykernel"] is True  # from the module, via --system-site-packages
    assert envs[("venv", "bare-ipk")]["modules"][-1] == BARE
    assert envs[("venv", "bare-ipk")]["has_ipykernel"] is True
    noipk = envs[("venv", "noipk")]
    assert noipk["has_ipykernel"] is False and noipk["status"] == "no ipykernel"
    assert envs[("venv", "plain")]["modules"] == []  # host Python: no module needed


def test_broken_and_non_venvs(run_ozk, site):
    envs, _ = environments(run_ozk)
    broken = envs[("venv", "broken")]
    assert broken["status"] == "broken" and "home" in broken["detail"]
    names = {n for k, n in envs if k == "venv"}
    assert "not-a-venv" not in names and "dangling" not in names
    assert "too-deep" not in names  # depth 3 > max_depth 2


def test_depth_is_configurable(run_ozk, site_env):
    envs, _ = environments(run_ozk, env=site_env)
    assert ("venv", "too-deep") not in envs
    run_ozk("list", "--VenvSource.max_depth=3")  # accepted on the command line too
    data = json.loads(run_ozk("list", "--json", "--VenvSource.max_depth=3").stdout)
    assert "too-deep" in {e["name"] for e in data["environments"]}


def test_hostile_and_unicode_names(run_ozk, site):
    envs, _ = environments(run_ozk)
    hostile = envs[("venv", site.venvs["hostile"].name)]
    assert hostile["prefix"] == str(site.venvs["hostile"])
    assert envs[("venv", site.venvs["unicode"].name)]["has_ipykernel"] is True
    assert not list(site.root.rglob("PWNED"))


def test_conda_envs_once_through_symlinked_home(run_ozk, site):
    assert (site.home / ".conda").is_symlink()
    envs, _ = environments(run_ozk)
    conda = {n: e for (k, n), e in envs.items() if k == "conda"}
    assert set(conda) == {"astro", "ml tools", "no-kernel", "rstats"}
    astro = conda["astro"]
    assert astro["prefix"] == os.path.realpath(site.conda_envs["astro"])
    assert astro["has_ipykernel"] is True and astro["modules"] == []
    assert conda["no-kernel"]["status"] == "no ipykernel"
    prefixes = [e["prefix"] for e in envs.values()]
    assert len(prefixes) == len(set(prefixes))


def test_conda_module_configurable(run_ozk, site_env, site):
    cfg = os.path.join(site_env["JUPYTER_CONFIG_DIR"], "jupyter_ozkernels_config.json")
    os.makedirs(os.path.dirname(cfg), exist_ok=True)
    env = dict(site_env, JUPYTER_CONFIG_DIR=os.path.dirname(cfg) + "-own")
    os.makedirs(env["JUPYTER_CONFIG_DIR"], exist_ok=True)
    with open(os.path.join(env["JUPYTER_CONFIG_DIR"], "jupyter_ozkernels_config.json"), "w") as f:
        json.dump({"CondaSource": {"conda_module": "conda/latest"}}, f)
    envs, _ = environments(run_ozk, env=env)
    assert envs[("conda", "astro")]["modules"] == ["conda/latest"]


def test_envs_dirs_from_condarc_and_env_var(run_ozk, own_site, tmp_path):
    extra = tmp_path / "more-envs"
    env_dir = extra / "fromvar"
    (env_dir / "conda-meta").mkdir(parents=True)
    (env_dir / "conda-meta" / "history").write_text("==> 2026-11-01 <==\n")
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"), CONDA_ENVS_PATH=str(extra))
    envs, _ = environments(run_ozk, env=env)
    assert ("conda", "fromvar") in envs  # env var
    assert ("conda", "ml tools") in envs  # ~/.condarc envs_dirs
    assert envs[("conda", "fromvar")]["has_ipykernel"] is False


def test_discovery_never_runs_an_interpreter(run_ozk, own_site, tmp_path):
    marker = tmp_path / "ran"
    trap = f"#!/bin/sh\ntouch '{marker}'\nexit 1\n"
    venv = own_site.venvs["analysis"]
    os.unlink(venv / "bin" / "python")
    (venv / "bin" / "python").write_text(trap)
    os.chmod(venv / "bin" / "python", stat.S_IRWXU)
    conda_python = os.path.realpath(own_site.conda_envs["astro"] / "bin" / "python")
    os.unlink(conda_python)
    with open(conda_python, "w") as f:
        f.write(trap)
    os.chmod(conda_python, stat.S_IRWXU)
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run_ozk("list", env=env)
    run_ozk("sync", env=env)
    assert not marker.exists()


def test_symlinked_root_and_loop_survived(run_ozk, own_site, tmp_path):
    project = tmp_path / "fred" / "venvs"
    project.mkdir(parents=True)
    make_venv(own_site, project / "linked")
    os.symlink(project, own_site.home / "envs")
    os.symlink(project, project / "loop")
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    envs, _ = environments(run_ozk, env=env)
    assert envs[("venv", "linked")]["prefix"] == str(project / "linked")
    assert sum(1 for k, n in envs if n == "linked") == 1


def test_venv_reached_twice_is_listed_once(run_ozk, own_site, tmp_path):
    os.symlink(own_site.home / "venvs", own_site.home / ".virtualenvs")
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    envs, data = environments(run_ozk, env=env)
    prefixes = [e["prefix"] for e in data["environments"]]
    assert len(prefixes) == len(set(prefixes))
    assert ("venv", "analysis") in envs


def test_base_module_removed_marks_venv_broken(run_ozk, own_site, tmp_path):
    make_venv(own_site, own_site.home / "venvs" / "orphan", BARE, system=False)
    os.rename(own_site.modules[BARE], str(own_site.modules[BARE]) + ".gone")
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))
    envs, _ = environments(run_ozk, env=env)
    orphan = envs[("venv", "orphan")]
    assert orphan["status"] == "broken" and "gone" in orphan["detail"]


def test_without_lmod_modules_are_skipped_with_one_line(run_ozk, site_env):
    env = {k: v for k, v in site_env.items() if k != "MODULEPATH"}
    env["LMOD_CMD"] = "/nonexistent/lmod"
    proc = run_ozk("list", env=env)
    assert proc.stderr.count("module Pythons skipped") == 1
    assert "analysis" in proc.stdout and "astro" in proc.stdout


def test_spider_cache_sees_new_module(run_ozk, own_site, tmp_path):
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"),
                           XDG_CACHE_HOME=str(tmp_path / "cache"))
    envs, _ = environments(run_ozk, env=env)
    assert ("module", "python/3.12.1") not in envs
    src = own_site.root / "modules" / "Compiler" / "gcccore" / GCC_VERSION / "python"
    new_prefix = tmp_path / "Python-3.12.1"
    (new_prefix / "bin").mkdir(parents=True)
    os.symlink(own_site.modules[FULL] / "bin" / "python3", new_prefix / "bin" / "python3")
    text = (src / "3.11.7.lua").read_text().replace(str(own_site.modules[FULL]), str(new_prefix))
    (src / "3.12.1.lua").write_text(text)
    envs, _ = environments(run_ozk, env=env)
    assert ("module", "python/3.12.1") in envs
