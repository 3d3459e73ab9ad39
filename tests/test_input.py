"""What users type is checked, and what ozkernels prints says what it did (or would do)."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import make_venv
from hypothesis import given
from hypothesis import strategies as st

from ozkernels.demosite import GCC_VERSION, PY_MODULE_VERSION
from ozkernels.display import middle, table

GCC, PY = f"gcccore/{GCC_VERSION}", f"python/{PY_MODULE_VERSION}"
TILDE = "~/venvs/analysis"  # how notes show the site's venv (HOME is the site's home)


@pytest.fixture
def env(own_site, tmp_path):
    """The private site's environment with a kernels dir of this test's own."""
    return own_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"))


def rows(run_ozk, env) -> dict[str, dict]:
    """`ozkernels list --json` rows by name."""
    data = json.loads(run_ozk("list", "--json", env=env).stdout)
    return {e["name"]: e for e in data["environments"]}


def test_add_refuses_unknown_modules_with_close_matches(own_site, env, run_ozk):
    venv = str(own_site.venvs["analysis"])
    proc = run_ozk("add", venv, "--module", "nosuch/1.0", env=env, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "unknown module nosuch/1.0" in proc.stderr
    assert "--force records it anyway" in proc.stderr
    proc = run_ozk("add", venv, "--module", GCC, "--module", "python/3.11.8", env=env,
                   check=False)
    assert proc.returncode == 1 and f"did you mean {PY}" in proc.stderr
    assert not os.path.exists(os.path.join(env["JUPYTER_DATA_DIR"], "kernels"))
    # The same mistake as JSON for scripts.
    proc = run_ozk("add", venv, "--module", "nosuch/1.0", "--json", env=env, check=False)
    assert proc.returncode == 1 and "unknown module" in json.loads(proc.stdout)["error"]
    # --force records it; the env is then broken, with a fix that names the real modules.
    out = run_ozk("add", venv, "--module", GCC, "--module", PY, "--module", "astro-tools/1.1",
                  "--force", env=env, check=False)
    assert out.returncode == 1 and "has no kernel: broken" in out.stderr
    assert out.stdout.startswith(f"recorded modules for {TILDE}: {GCC} {PY} astro-tools/1.1")
    row = rows(run_ozk, env)["analysis"]
    assert row["status"] == "broken" and "astro-tools/1.1" in row["detail"]
    assert row["fix"] == (f"ozkernels add {venv} --module {GCC} --module {PY} "
                          "--module astro-tools/1.0")
    assert "broken" in run_ozk("list", env=env).stdout


def test_add_says_whether_modules_replace_or_extend(own_site, env, run_ozk):
    venv = str(own_site.venvs["analysis"])
    out = run_ozk("add", venv, "--module", GCC, "--module", PY, env=env).stdout
    assert f"recorded modules for {TILDE}: {GCC} {PY} (none were recorded)" in out
    out = run_ozk("add", venv, "--module", GCC, "--module", PY, "--module", "astro-tools/1.0",
                  env=env).stdout
    assert f"(replacing {GCC} {PY}; added astro-tools/1.0)" in out
    assert re.search(r"updated +venv-analysis +modules added astro-tools/1.0", out)
    out = run_ozk("add", venv, env=env).stdout
    assert f"kept the recorded modules for {TILDE}: {GCC} {PY} astro-tools/1.0" in out
    out = run_ozk("add", venv, "--no-modules", env=env).stdout
    assert f"dropping {GCC} {PY} astro-tools/1.0" in out
    assert rows(run_ozk, env)["analysis"]["modules"] == [GCC, PY]  # the venv's own chain


def test_dry_runs_say_would_and_write_nothing(own_site, env, run_ozk):
    venv = str(own_site.venvs["analysis"])
    kernels = os.path.join(env["JUPYTER_DATA_DIR"], "kernels")
    registry = os.path.join(env["JUPYTER_DATA_DIR"], "ozkernels", "environments.json")
    out = run_ozk("add", venv, "--module", GCC, "--module", PY, "--dry-run", env=env).stdout
    assert f"would record modules for {TILDE}" in out and "would add" in out
    rest = out.replace("none were recorded", "").replace("would stay unchanged", "")
    assert not re.search(r"(?<!would )\b(added|recorded|updated|removed|unchanged)\b", rest)
    assert not os.path.exists(kernels) and not os.path.exists(registry)
    data = json.loads(run_ozk("add", venv, "--dry-run", "--json", env=env).stdout)
    assert data["dry_run"] is True and data["prefix"] == venv
    # sync --dry-run inside an activated env with modules loaded: "would record".
    active = {**env, "VIRTUAL_ENV": venv, "LOADEDMODULES": f"{GCC}:{PY}"}
    out = run_ozk("sync", "--dry-run", env=active).stdout
    assert out.startswith(f"would record modules for {TILDE}: {GCC} {PY}")
    assert "would stay unchanged" in out and not os.path.exists(registry)
    run_ozk("sync", env=env)
    out = run_ozk("remove", "venv-analysis", "--dry-run", env=env).stdout
    assert out.startswith("would remove venv-analysis") and "would bring it back" in out
    assert os.path.isdir(os.path.join(kernels, "venv-analysis"))
    data = json.loads(run_ozk("remove", "venv-analysis", "--dry-run", "--json", env=env).stdout)
    assert data["dry_run"] is True and data["removed"] == "venv-analysis"


def test_sync_says_which_recorded_modules_it_dropped(own_site, env, run_ozk):
    venv = str(own_site.venvs["analysis"])
    loaded = {**env, "VIRTUAL_ENV": venv, "LOADEDMODULES": f"{GCC}:{PY}:astro-tools/1.0"}
    out = run_ozk("sync", env=loaded).stdout
    assert out.startswith(f"recorded modules for {TILDE}: {GCC} {PY} astro-tools/1.0\n")
    fewer = {**env, "VIRTUAL_ENV": venv, "LOADEDMODULES": f"{GCC}:{PY}"}
    out = run_ozk("sync", env=fewer).stdout
    assert out.startswith(f"recorded modules for {TILDE}: {GCC} {PY} (dropped astro-tools/1.0)")
    assert re.search(r"updated +venv-analysis +modules dropped astro-tools/1.0", out)
    data = json.loads(run_ozk("sync", "--json", env=loaded).stdout)
    assert "(added astro-tools/1.0)" in data["notes"][0]
    assert data["actions"][0]["reason"] == "modules added astro-tools/1.0"


def test_list_shows_removed_envs_with_the_command_that_restores_them(own_site, env, run_ozk):
    run_ozk("sync", env=env)
    venv = str(own_site.venvs["analysis"])
    run_ozk("remove", "venv-analysis", env=env)
    row = rows(run_ozk, env)["analysis"]
    assert (row["status"], row["kernel"], row["fix"]) == ("removed", "", f"ozkernels add {venv}")
    text = run_ozk("list", env=env).stdout
    assert re.search(r"venv +analysis +- +python +removed", text)
    assert "venv:analysis: removed: " in text and f"fix: ozkernels add {venv}" in text
    assert "venv-analysis" not in run_ozk("sync", env=env).stdout  # sync leaves it alone
    out = run_ozk("add", venv, env=env).stdout
    assert f"brought back {TILDE}, removed earlier" in out
    assert rows(run_ozk, env)["analysis"]["status"] == "up to date"
    # An env without a kernel is hidden by `remove PATH` too; a dir that is no env is forgotten.
    noipk = str(own_site.venvs["noipk"])
    assert run_ozk("remove", noipk, env=env).stdout.startswith("hid ~/venvs/noipk")
    assert rows(run_ozk, env)["noipk"]["status"] == "removed"
    gone = own_site.home / "venvs" / "gone"
    make_venv(own_site, gone)
    run_ozk("add", str(gone), env=env)
    (gone / "pyvenv.cfg").unlink()
    assert rows(run_ozk, env)["gone"]["fix"] == f"ozkernels remove {gone}"
    assert run_ozk("remove", str(gone), env=env).stdout.startswith("removed venv-gone")
    assert run_ozk("remove", str(gone), env=env).stdout == "forgot ~/venvs/gone\n"
    assert run_ozk("remove", str(gone), env=env, check=False).returncode == 1
    assert "gone" not in rows(run_ozk, env)


def test_empty_results_say_where_ozkernels_looked(tmp_path, run_ozk):
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "JUPYTER_DATA_DIR": str(tmp_path / "d")}
    for cmd in (["list"], ["sync"]):
        out = run_ozk(*cmd, env=env).stdout
        assert "no environments found. ozkernels looked for:" in out
        assert "~/venvs, ~/.venvs" in out and "~/.conda/environments.txt" in out
        assert "MODULEPATH is empty" in out and "'ozkernels add PATH'" in out
    data = json.loads(run_ozk("list", "--json", env=env).stdout)
    assert data["environments"] == [] and len(data["searched"]) == 3
    out = run_ozk("check", env=env).stdout
    assert "no ozkernels kernels to check in" in out and "run 'ozkernels sync' first" in out


cell = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=80)


@given(rows=st.lists(st.lists(cell, min_size=6, max_size=6), min_size=1, max_size=8),
       width=st.integers(60, 200))
def test_tables_fit_the_width_and_cut_paths_in_the_middle(rows, width):
    headers = ["KIND", "NAME", "KERNEL", "STATUS", "MODULES", "PATH"]
    rows = [[c.replace("\t", " ") for c in r[:4]] + r[4:] for r in rows]
    fixed = sum(max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)
                if i in (0, 3)) + 10 + 4 * 10
    text = table(rows, headers, width, shrink=(5, 4, 1, 2))
    for line in text.splitlines():
        assert len(line) <= max(width, fixed)
    wide = table(rows, headers)
    for r in rows:
        assert all(c.strip() in wide for c in r)


def test_tables_cut_columns_in_the_order_given():
    headers = ["KIND", "NAME", "KERNEL", "PATH"]
    rows = [["venv", "analysis-2026", "venv-analysis-2026", "/fred/oz000/user/venvs/analysis-2026"]]
    lines = table(rows, headers, 60, shrink=(3, 1, 2)).splitlines()
    assert "venv-analysis-2026" in lines[1] and "analysis-2026" in lines[1]  # not cut
    assert "…" in lines[1].split()[-1] and max(len(line) for line in lines) <= 60
    lines = table(rows, headers, 50, shrink=(3, 1, 2)).splitlines()
    assert "venv-analysis-2026" in lines[1]  # the kernel name is cut last
    assert [len(c) for c in lines[1].split()][-1] == 10  # the path down to its floor first


@given(text=st.text(max_size=200), width=st.integers(1, 100))
def test_middle_keeps_both_ends(text, width):
    cut = middle(text, width)
    assert len(cut) <= max(width, 1)
    if len(text) <= width:
        assert cut == text
    elif width >= 3:
        head, _, tail = cut.partition("…")
        assert text.startswith(head) and text.endswith(tail) and head and tail


def test_list_fits_80_columns_unless_wide(env, run_ozk):
    narrow = run_ozk("list", env={**env, "COLUMNS": "80"}).stdout
    table_lines = [line for line in narrow.splitlines()
                   if not re.match(r"(module|venv|conda):|    fix:|\d+ kernel", line)]
    assert max(len(line) for line in table_lines) <= 80 and "…" in narrow
    wide = run_ozk("list", "--wide", env={**env, "COLUMNS": "80"}).stdout
    assert "…" not in wide and max(len(line) for line in wide.splitlines()) > 80
