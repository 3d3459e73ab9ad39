"""Environment Modules (Tcl): detection, the listing and its parsers, on real modulecmd.tcl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ozktest.generated import TRICKY, examples

from ozkernels import envmodules
from ozkernels.demosite import _tcl
from ozkernels.modulesystem import LMOD, TMOD, detect, shell_choice

LMOD_CMD = "/usr/share/lmod/lmod/libexec/lmod"


# ------------------------------------------------------------------ detection


@pytest.fixture
def fake_installs(tmp_path):
    """An Lmod command and a modulecmd.tcl at made-up places, and an EM init script."""
    lmod = tmp_path / "lmod" / "libexec" / "lmod"
    lmod.parent.mkdir(parents=True)
    lmod.write_text("#!/bin/sh\n")
    lmod.chmod(0o755)
    tcl = tmp_path / "lib" / "modulecmd.tcl"
    tcl.parent.mkdir(parents=True)
    tcl.write_text("#!/usr/bin/tclsh\n")
    home = tmp_path / "share" / "modules"
    (home / "init").mkdir(parents=True)
    (home / "init" / "bash").write_text(f"eval \"$(/usr/bin/tclsh8.6 '{tcl}' bash autoinit)\"\n")
    return {"lmod": str(lmod), "tcl": str(tcl), "home": str(home)}


def test_detect_prefers_what_the_shell_initialised(fake_installs):
    lmod, tcl = fake_installs["lmod"], fake_installs["tcl"]
    both = {"LMOD_CMD": lmod, "MODULES_CMD": tcl}
    assert detect({"MODULES_CMD": tcl}) == detect({"MODULES_CMD": tcl, "LMOD_DIR": ""})
    got = detect({"MODULES_CMD": tcl})
    assert (got.name, got.cmd, got.reason) == (TMOD, tcl, "initialised in this shell")
    assert detect({"LMOD_CMD": lmod}).name == LMOD
    # Both initialised: the `module` function the shell has decides.
    tmod_fn = "() {  local _mlredir=0; _module_raw \"$@\"\n}"
    lmod_fn = "() {  eval \"$($LMOD_CMD bash \"$@\")\"\n}"
    assert detect({**both, "BASH_FUNC_module%%": tmod_fn}).name == TMOD
    assert detect({**both, "BASH_FUNC_module%%": lmod_fn}).name == LMOD
    assert shell_choice({**both, "__MODULES_LMALTNAME": "x"}) == TMOD
    # Debian's MODULESHOME has no libexec: its init script names modulecmd.tcl.
    home_only = detect({"MODULESHOME": fake_installs["home"]})
    assert (home_only.name, home_only.cmd) == (TMOD, tcl)


def test_detect_override_and_configured_commands(fake_installs):
    lmod, tcl = fake_installs["lmod"], fake_installs["tcl"]
    env = {"LMOD_CMD": lmod, "MODULES_CMD": tcl}
    assert detect(env, override="tmod").cmd == tcl
    assert detect(env, override="lmod").cmd == lmod
    assert detect(env, override="none").name == ""
    missing = detect({}, override="tmod", modules_cmd="")
    if not envmodules.find_modules_cmd({}):
        assert missing.name == "" and "was not found" in missing.reason
    assert detect({}, modules_cmd=tcl).name == TMOD
    assert detect({"MODULES_CMD": tcl}, lmod_cmd=lmod).name == LMOD


def test_detect_recorded_system_ranks_below_the_shell_above_installs(fake_installs):
    from ozkernels.modulesystem import RECORDED, ModuleSystem

    tcl, lmod = fake_installs["tcl"], fake_installs["lmod"]
    recorded = ModuleSystem(TMOD, tcl, RECORDED)
    assert detect({}, recorded=recorded) == recorded
    assert detect({"LMOD_CMD": lmod}, recorded=recorded).name == LMOD
    gone = ModuleSystem(TMOD, tcl + ".gone", RECORDED)
    assert detect({}, recorded=gone).reason != RECORDED


def test_detect_without_any_module_system_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(envmodules, "STANDARD_MODULES_CMDS", ())
    import ozkernels.lmod as lmod_mod

    monkeypatch.setattr(lmod_mod, "STANDARD_LMOD_CMDS", (str(tmp_path / "none"),))
    got = detect({})
    assert got.name == "" and "LMOD_CMD" in got.reason and "MODULES_CMD" in got.reason


# ------------------------------------------------------------------ parsers against the real tool


def display(cmd: str, modulefile: Path) -> dict[str, list[list[str]]]:
    """What the real `module display` shows for one modulefile, parsed."""
    return envmodules.parse_display(envmodules.run_modulecmd(cmd, ["display", str(modulefile)],
                                                             str(modulefile.parent.parent)))


# Path parts: hostile words (minus what a PATH entry cannot hold) and any other text.
PARTS = st.sampled_from([w for w in TRICKY if not set(w) & set(":\n\r\x00")]) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=":\x00"),
    min_size=1, max_size=12)
# display's output cannot tell "} " inside a braced value from its end (see display_words).
PATHS = st.lists(PARTS, min_size=1, max_size=4).map(lambda parts: "/" + "".join(parts)).filter(
    lambda p: not re.search(r"\}\s", p))


@settings(max_examples=examples(15))
@given(paths=st.lists(PATHS, min_size=1, max_size=3))
def test_display_round_trips_any_path(envmodules_cmd, tmp_path, paths):
    """Any path a modulefile prepends comes back exactly from display's Tcl-quoted output."""
    mf = tmp_path / "mods" / "tool" / "1.0"
    mf.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#%Module"] + [f"prepend-path PATH {_tcl(p)}" for p in paths]
    lines.append(f"prepend-path LD_LIBRARY_PATH {_tcl(paths[0] + '/lib')}")
    mf.write_text("\n".join(lines) + "\n")
    shown = display(envmodules_cmd, mf)
    info = envmodules.info_from_display("tool/1.0", str(mf), str(mf.parent.parent), (),
                                        shown[str(mf)])
    assert set(info.bin_dirs) == set(paths)
    assert info.lib_dirs == (paths[0] + "/lib",)


@pytest.mark.parametrize(("line", "words"), [
    ("prepend-path\tPATH {/a b/c}", ["prepend-path", "PATH", "/a b/c"]),
    ('setenv\t\tX a"b\\c', ["setenv", "X", 'a"b\\c']),
    ("module\t\tuse --append /x /y", ["module", "use", "--append", "/x", "/y"]),
    ("prepend-path\tPATH {/n}o p} /d{e {}", ["prepend-path", "PATH", "/n}o p", "/d{e", ""]),
    ("setenv\t\tX {x}", ["setenv", "X", "x"]),
    ("", []),
])
def test_display_words(line, words):
    assert envmodules.display_words(line) == words


@pytest.mark.parametrize(("words", "var", "values"), [
    (["prepend-path", "PATH", "/a:/b"], "PATH", ["/a", "/b"]),
    (["append-path", "--delim", ",", "FOO", "a,b"], "FOO", ["a", "b"]),
    (["prepend-path", "-d", " ", "X", "p q"], "X", ["p", "q"]),
    (["prepend-path", "--duplicates", "PATH", "/a", "/b"], "PATH", ["/a", "/b"]),
    (["prepend-path"], "", []),
])
def test_path_values(words, var, values):
    assert envmodules._path_values(words) == (var, values)


# ------------------------------------------------------------------ the walk


def tree(root: Path, depth: int) -> str:
    """A chain of modules L0/1 -> L1/1 -> ... each adding the next level's dir, a Python at each."""
    for level in range(depth + 1):
        d = root / f"level{level}"
        (d / f"L{level}").mkdir(parents=True)
        (d / "python").mkdir()
        body = f"#%Module\nmodule use {_tcl(root / f'level{level + 1}')}\n"
        (d / f"L{level}" / "1").write_text(body)
        (d / "python" / f"3.{level}").write_text(f"#%Module\nprepend-path PATH /py{level}/bin\n")
    return str(root / "level0")


def test_walk_follows_the_hierarchy_to_a_bounded_depth(envmodules_cmd, tmp_path):
    modulepath = tree(tmp_path, 4)
    found = {m.full_name: m for m in envmodules.walk(envmodules_cmd, modulepath, max_depth=2)}
    assert set(found) == {"L0/1", "python/3.0", "L1/1", "python/3.1", "L2/1", "python/3.2"}
    assert found["python/3.2"].chain == ("L0/1", "L1/1", "python/3.2")
    assert found["python/3.0"].parents == ()
    assert found["L0/1"].uses == (str(tmp_path / "level1"),)


def test_walk_gives_parents_to_dirs_the_server_already_had(envmodules_cmd, tmp_path):
    """A hierarchy dir on MODULEPATH because its parent is loaded still needs that parent."""
    level0 = tree(tmp_path, 1)
    modulepath = f"{tmp_path / 'level1'}:{level0}"
    found = {m.full_name: m for m in envmodules.walk(envmodules_cmd, modulepath, max_depth=3)}
    assert found["python/3.1"].chain == ("L0/1", "python/3.1")
    assert envmodules.base_modulepath(modulepath, found.values()) == level0


def test_a_broken_modulepath_is_one_error(envmodules_cmd, tmp_path):
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "1").write_text("#%Module\nthis is not tcl {\n")
    found = envmodules.walk(envmodules_cmd, str(tmp_path / "bad"))
    assert [m.full_name for m in found] == ["x/1"]  # display's error is the module's, not ours
    with pytest.raises(envmodules.ModulesError, match="Environment Modules"):
        envmodules.run_modulecmd(str(tmp_path / "missing.tcl"), ["avail", "--json"], "")


# ------------------------------------------------------------------ discovery through the CLI


def ozk(env, *args):
    return subprocess.run([sys.executable, "-m", "ozkernels", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)


def test_list_says_which_system_and_finds_the_hierarchy(tmod_site, no_lmod, tmp_path):
    env = tmod_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"),
                            XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = ozk(env, "list")
    assert f"module system: Environment Modules ({tmod_site.modules_cmd}" in proc.stdout
    data = json.loads(ozk(env, "list", "--json").stdout)
    assert data["module_system"]["name"] == "tmod"
    mods = {e["name"]: e for e in data["environments"] if e["kind"] == "module"}
    n = tmod_site.names
    assert set(mods) == {n["python"], n["bare"]}
    assert mods[n["bare"]]["modules"] == [n["gcc"], n["bare"]]  # found through GCCcore's `use`
    assert mods[n["python"]]["modules"] == [n["python"]]  # loads its GCCcore itself
    assert mods[n["python"]]["has_ipykernel"] and not mods[n["bare"]]["has_ipykernel"]


@pytest.fixture
def own_tmod(tmp_path, envmodules_cmd):
    """A private Tcl site whose modulecmd.tcl counts its runs (a wrapper in front of it)."""
    from ozkernels.demosite import build_site

    counted = tmp_path / "counted" / "modulecmd.tcl"
    counted.parent.mkdir()
    counted.write_text(f'#!/bin/sh\necho run >> "$0.runs"\nexec {envmodules_cmd} "$@"\n')
    counted.chmod(0o755)
    return build_site(tmp_path / "site", modules="tmod", modules_cmd=str(counted),
                      hostile=False)


def runs(site) -> int:
    path = Path(site.modules_cmd + ".runs")
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_listing_is_cached_until_a_module_dir_changes(own_tmod, no_lmod, tmp_path):
    env = own_tmod.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"),
                           XDG_CACHE_HOME=str(tmp_path / "cache"))
    before = runs(own_tmod)
    ozk(env, "list")
    walked = runs(own_tmod) - before
    assert walked == 4  # avail and display per level: Core, then GCCcore's dir
    ozk(env, "list")
    assert runs(own_tmod) - before == walked  # nothing changed: no modulecmd.tcl run at all
    n = own_tmod.names
    src = own_tmod.modulefiles[n["bare"]]
    prefix = tmp_path / "Python-3.12.1"
    (prefix / "bin").mkdir(parents=True)
    os.symlink(own_tmod.modules[n["bare"]] / "bin" / "python3", prefix / "bin" / "python3")
    text = src.read_text().replace(str(own_tmod.modules[n["bare"]]), str(prefix))
    src.with_name("3.12.1-GCCcore-13.2.0").write_text(text)
    data = json.loads(ozk(env, "list", "--json").stdout)
    names = {e["name"]: e for e in data["environments"] if e["kind"] == "module"}
    assert names["Python/3.12.1-GCCcore-13.2.0"]["modules"] == [n["gcc"],
                                                               "Python/3.12.1-GCCcore-13.2.0"]
    assert runs(own_tmod) - before == 2 * walked


def test_a_server_without_the_shells_setup_uses_the_system_recorded_at_sync(
        tmod_site, no_lmod, tmp_path):
    """A server started by systemd or a hub lacks MODULES_CMD: the sync's answer is reused."""
    env = tmod_site.environ(JUPYTER_DATA_DIR=str(tmp_path / "data"),
                            XDG_CACHE_HOME=str(tmp_path / "cache"))
    ozk(env, "sync")
    server = {k: v for k, v in env.items() if k not in ("MODULES_CMD", "MODULESHOME")}
    data = json.loads(ozk(server, "list", "--json").stdout)
    assert data["module_system"] == {"name": "tmod", "label": "Environment Modules",
                                     "cmd": tmod_site.modules_cmd,
                                     "reason": "recorded at an earlier sync"}
    rows = {e["name"]: e for e in data["environments"]}
    assert rows["analysis"]["status"] == "up to date"  # nothing to rewrite, no module lost
    # The control: without the record this host has no module system ozkernels can find.
    fresh = json.loads(ozk({**server, "XDG_CACHE_HOME": str(tmp_path / "fresh")}, "list",
                           "--json").stdout)
    assert fresh["module_system"]["name"] == ""
    assert "neither Lmod nor Environment Modules found" in " ".join(fresh["notes"])
