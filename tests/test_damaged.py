"""Damaged files never stop a sync: the bad item is skipped with one warning naming the file.

Contents are generated (hypothesis): NUL and other control bytes, invalid UTF-8, CRLF, huge lines
and files, in every file discovery and sync read, all at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ozktest.generated import examples
from traitlets.config import Config

from ozkernels.manager import KernelsManager

PY = "python3.11"
# Lines that are not paths at all, or paths no filesystem call takes.
_junk_line = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"\0", b"/x\0y", b"\xff\xfe", b"\x1b[2J", b"/" + b"a" * 5000, b"#",
                     b"envs_dirs: [", b"{", b"- ", b"\r", b"\x85", "\u2028".encode()]),
).map(lambda b: b.replace(b"\n", b" "))
_huge = st.just("huge")  # written as 5 MiB: bigger than any file ozkernels reads
damage = st.one_of(st.none(), st.lists(_junk_line, min_size=1, max_size=6), _huge)


def _lines(keep: list[str], junk: list[bytes], crlf: bool) -> bytes:
    """The kept lines with junk lines mixed in."""
    out = []
    for i, line in enumerate(keep):
        out += junk[i::max(len(keep), 1)] if junk else []
        out.append(os.fsencode(line))
    out += junk[len(keep):] if junk else []
    end = b"\r\n" if crlf else b"\n"
    return end.join(out) + end


class Site:
    """Two venvs, two conda envs (one listed, one in an envs dir), a registry, a foreign spec."""

    def __init__(self, base: Path):
        self.base, self.home, self.data = base, base / "home", base / "data"
        self.venvs = [self.home / "venvs" / n for n in ("one", "two")]
        self.listed = base / "elsewhere" / "listed"
        self.envs_dir = base / "conda-envs"
        self.in_dir = self.envs_dir / "indir"
        for prefix in self.venvs:
            self._prefix(prefix)
            (prefix / "pyvenv.cfg").write_text(
                f"home = {Path(sys.executable).parent}\nversion = 3.11.7\n")
        for prefix in (self.listed, self.in_dir):
            self._prefix(prefix)
            (prefix / "conda-meta").mkdir()
            (prefix / "conda-meta" / "history").write_text("==> 2024-01-01 <==\n")
        self.environments_txt = self.home / ".conda" / "environments.txt"
        self.environments_txt.parent.mkdir(parents=True)
        self.condarc = self.home / ".condarc"
        self.registry = self.data / "registry.json"
        self.registry.parent.mkdir(parents=True)
        self.foreign = self.data / "share" / "jupyter" / "kernels" / "theirs" / "kernel.json"
        self.foreign.parent.mkdir(parents=True)
        self.write(None, None, None, None, None, False)

    @staticmethod
    def _prefix(prefix: Path) -> None:
        sp = prefix / "lib" / PY / "site-packages"
        sp.mkdir(parents=True)
        (sp / "ipykernel_launcher.py").write_text("")
        (prefix / "bin").mkdir()
        (prefix / "bin" / "python").symlink_to(PY)
        (prefix / "bin" / PY).symlink_to(sys.executable)

    def write(self, env_txt, condarc, pyvenv, registry, foreign, crlf: bool) -> None:
        """Write every file, each intact (None) or with the given damage."""
        def junk(d):
            return d if isinstance(d, list) else [b"x" * (5 << 20)] if d == "huge" else []

        self.environments_txt.write_bytes(_lines([str(self.listed)], junk(env_txt), crlf))
        items = [f"  - {self.envs_dir}"] + [f"  - {os.fsdecode(j)}" for j in junk(condarc)]
        self.condarc.write_bytes(_lines(["envs_dirs:", *items], [], crlf))
        cfg = self.venvs[1] / "pyvenv.cfg"
        if pyvenv is not None:
            cfg.write_bytes(b"\n".join(junk(pyvenv)))
        self.registry.write_bytes(b"\n".join(junk(registry)) if registry is not None else
                                  json.dumps({"environments": {}}).encode())
        self.foreign.write_bytes(b"\n".join(junk(foreign)) if foreign is not None else
                                 b'{"argv": ["x", "{connection_file}"], "display_name": "x"}')

    def manager(self, log: logging.Logger) -> KernelsManager:
        config = Config({
            "Discovery": {"sources": ["venvs", "conda"], "registry_path": str(self.registry),
                          "lmod_cmd": str(self.base / "no-lmod")},
            "VenvSource": {"roots": [str(self.home / "venvs")]},
            "KernelsManager": {"prefix": str(self.data)},
        })
        return KernelsManager(config=config, log=log)


class Collect(logging.Handler):
    """Keeps the messages logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def kernels(site: Site) -> dict[str, str]:
    kdir = site.data / "share" / "jupyter" / "kernels"
    found = {}
    for d in kdir.iterdir():
        if d.name.startswith(".") or d.name == "theirs":
            continue
        found[d.name] = json.loads((d / "kernel.json").read_text())["metadata"][
            "ozkernels"]["prefix"]
    return found


@settings(max_examples=examples(60))
@given(env_txt=damage, condarc=damage, pyvenv=damage, registry=damage, foreign=damage,
       crlf=st.booleans())
def test_damaged_files_skip_one_item_with_one_warning_and_lose_nothing(
    tmp_path_factory: pytest.TempPathFactory, env_txt, condarc, pyvenv, registry, foreign, crlf
) -> None:
    site = Site(tmp_path_factory.mktemp("damaged"))
    with home(site.home):
        check_damage(site, env_txt, condarc, pyvenv, registry, foreign, crlf)


@contextlib.contextmanager
def home(path: Path):
    """HOME (where conda's environments.txt and condarc are looked up) set to path."""
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old


def check_damage(site: Site, env_txt, condarc, pyvenv, registry, foreign, crlf) -> None:
    """Sync intact, damage the files, sync again: nothing lost, one warning a file at most."""
    log = logging.getLogger(f"ozk-damaged-{id(site)}")
    log.propagate = False
    handler = Collect()
    log.addHandler(handler)
    site.manager(log).sync()
    before = kernels(site)
    assert sorted(before.values()) == sorted(
        str(p) for p in [*site.venvs, site.listed, site.in_dir]), handler.messages
    handler.messages.clear()
    site.write(env_txt, condarc, pyvenv, registry, foreign, crlf)
    registry_bytes = site.registry.read_bytes()
    foreign_bytes = site.foreign.read_bytes()
    plan, _ = site.manager(log).sync()
    after = kernels(site)
    assert after == before, "a kernel was lost or renamed"
    # Every env whose own line is readable is synced; a file too big to read is the bad item.
    intact = {str(site.venvs[0])} | ({str(site.listed)} if env_txt != "huge" else set()) | (
        {str(site.in_dir)} if condarc != "huge" else set())
    assert {r.env.prefix for r in plan.rows if r.status == "up to date"} >= intact
    # Nothing the user made is changed: a damaged registry is left as it was.
    assert site.foreign.read_bytes() == foreign_bytes
    if registry is not None:
        assert site.registry.read_bytes() == registry_bytes
    # At most one warning line per damaged file, naming it.
    for path in (site.environments_txt, site.condarc, site.venvs[1] / "pyvenv.cfg",
                 site.registry):
        naming = [m for m in handler.messages if str(path) in m]
        assert len(naming) <= 1, naming
    assert all("\n" not in m for m in handler.messages), handler.messages
    log.removeHandler(handler)


@pytest.mark.parametrize("content", [b"{not json", b'{"Syncer": 3}\xff', b"\0\0\0"])
def test_malformed_config_file_is_one_line_and_a_non_zero_exit(
    run_ozk, site_env, tmp_path, content
) -> None:
    env = {**site_env, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    cfg = tmp_path / "config" / "jupyter_ozkernels_config.json"
    cfg.parent.mkdir()
    cfg.write_bytes(content)
    proc = run_ozk("list", env=env, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and str(cfg) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    py = cfg.with_suffix(".py")
    cfg.unlink()
    py.write_text("c.Syncer.module_kernels = True\nraise SystemError('boom')\n")
    proc = run_ozk("sync", env=env, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and str(py) in proc.stderr and "boom" in proc.stderr


_lua_junk = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([
        b'prepend_path("PATH", "/a\\0b")', b'setenv("X", "\\1\\2\\27[2J")', b'LmodError("x"',
        b"os.exit(3)", b"error('boom')", b"\xff\xfe\x00", b"\r\n", b"-- " + b"x" * 70000,
        b'whatis("\x00")', b'prepend_path("MODULEPATH", "/nonexistent\\0")', b"load(",
    ]), min_size=1, max_size=5).map(b"\n".join),
)


@pytest.mark.lmod
@settings(max_examples=examples(5))
@given(junk=_lua_junk.map(lambda b: b'prepend_path("PATH", "/a\\0b")\n' + b),
       python_too=st.booleans())
def test_damaged_modulefiles_cost_only_themselves(own_site, run_ozk, tmp_path_factory,
                                                  junk: bytes, python_too: bool) -> None:
    core = Path(own_site.modulepath.split(":")[0])
    (core / "junk").mkdir(exist_ok=True)
    (core / "junk" / "1.0.lua").write_bytes(junk)
    damaged_python = core / "python" / "9.9.lua"  # a second, damaged, Python module
    if python_too:
        damaged_python.parent.mkdir(exist_ok=True)
        damaged_python.write_bytes(junk)
    elif damaged_python.exists():
        damaged_python.unlink()
    env = own_site.environ(JUPYTER_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    proc = run_ozk("list", "--json", "--Discovery.spider_cache=False", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["environments"]
    found = {r["name"] for r in rows if r["kind"] == "module"}
    assert {"python/3.11.7", "python/3.11.7-bare"} <= found, (found, proc.stderr)
    assert proc.stderr.count("\n") <= 1, proc.stderr
