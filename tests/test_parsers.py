"""Table-driven tests of the pure parsers and of naming: condarc subset, pyvenv.cfg, kernel and
display names, Slurm times and profiles, the Slurm status line, MODULEPATH's base, spider JSON,
and the parsers of the files that run in kernel dirs."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ozkernels.discovery import base_modulepath
from ozkernels.environment import Environment, short_version
from ozkernels.kernel_files import conda_env_vars, slurm_relay, slurm_supervisor
from ozkernels.layout import read_pyvenv_cfg
from ozkernels.lmod import parse_spider
from ozkernels.slurm import Profile, SlurmProfileError, parse_status, time_label, time_minutes
from ozkernels.sources.conda import parse_envs_dirs
from ozkernels.sources.venvs import venv_name
from ozkernels.specs import (
    base_kernel_name,
    choose_kernel_name,
    display_name,
    launcher_argv,
    prefix_hash,
    slug,
)

# jupyter_client's rule for kernel names (kernelspec.py's _kernel_name_pat).
KERNEL_NAME = re.compile(r"^[a-z0-9._\-]+$", re.IGNORECASE)


def env(kind: str = "venv", name: str = "analysis", prefix: str = "/p/analysis",
        **kw: object) -> Environment:
    """An Environment for naming tests."""
    return Environment(kind=kind, prefix=prefix, python=f"{prefix}/bin/python", name=name,
                       **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("channels:\n  - conda-forge\n", []),
    ("envs_dirs:\n  - /a\n  - /b\n", ["/a", "/b"]),
    ("envs_dirs:\n- /a\n- '/b c'\n", ["/a", "/b c"]),
    ('envs_dirs: [/a, "/b", \'/c\']\n', ["/a", "/b", "/c"]),
    ("envs_path:\n  - /x\n", ["/x"]),
    ("envs_dirs:\n  - /a  # a comment\n  # a whole comment\n\n  - /b\nchannels:\n  - /no\n",
     ["/a", "/b"]),
    ("envs_dirs:\n  - /a\nchannels: [x]\nenvs_dirs:\n  - /b\n", ["/a", "/b"]),
    ("envs_dirs: []\n", []),
    ("  envs_dirs:\n  - /indented-key\n", []),
    ("envs_dirs:\n  -\n  - /a\n", ["/a"]),
])
def test_condarc_envs_dirs(text, expected):
    assert parse_envs_dirs(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("home = /usr/bin\n", {"home": "/usr/bin"}),
    ("Home=/x\nVERSION = 3.11.7\n", {"home": "/x", "version": "3.11.7"}),
    ("no equals sign\n\nkey = a = b\n", {"key": "a = b"}),
    ("include-system-site-packages = true\n", {"include-system-site-packages": "true"}),
    ("", {}),
])
def test_pyvenv_cfg(tmp_path, text, expected):
    cfg = tmp_path / "pyvenv.cfg"
    cfg.write_text(text)
    assert read_pyvenv_cfg(str(cfg)) == expected


@pytest.mark.parametrize(("version", "expected"), [
    ("3.11.7", "3.11"), ("3.9", "3.9"), ("3", "3"), ("", ""), ("3.x.1", "3.x.1"),
    ("3.12.0rc1", "3.12"),
])
def test_short_version(version, expected):
    assert short_version(version) == expected


@pytest.mark.parametrize(("prefix", "expected"), [
    ("/home/u/venvs/analysis", "analysis"),
    ("/home/u/proj/.venv", "proj/.venv"),
    ("/home/u/proj/venv/", "proj/venv"),
    ("/home/u/env", "u/env"),
])
def test_venv_name(prefix, expected):
    assert venv_name(prefix) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Analysis", "analysis"),
    ("proj/.venv", "proj-.venv"),
    ("we'ird $(touch PWNED) ;x", "we-ird-touch-pwned-x"),
    ("δοκιμή env", "env"),
    ("Ünïcödé", "unicode"),
    ("---", ""),
    ("a" * 60, "a" * 48),
    ("python/3.11.7", "python-3.11.7"),
])
def test_slug(text, expected):
    assert slug(text) == expected


@given(st.text())
def test_slug_is_always_a_valid_kernel_name_part(text):
    out = slug(text)
    assert out == "" or KERNEL_NAME.match(out)
    assert len(out) <= 48 and out == slug(out)


@pytest.mark.parametrize(("e", "site", "expected"), [
    (env(), False, "venv-analysis"),
    (env(), True, "site-venv-analysis"),
    (env("module", "python/3.11.7", "/apps/py"), True, "site-module-python-3.11.7"),
    (env("conda", "δοκιμή", "/c/x"), False, f"conda-{prefix_hash('/c/x')}"),
    (env("project", "My Proj"), False, "project-my-proj"),
])
def test_base_kernel_name(e, site, expected):
    assert base_kernel_name(e, site) == expected
    assert KERNEL_NAME.match(expected)


@pytest.mark.parametrize(("taken", "expected"), [
    (set(), "venv-analysis"),
    ({"venv-analysis"}, f"venv-analysis-{prefix_hash('/p/analysis')}"),
    ({"venv-analysis", f"venv-analysis-{prefix_hash('/p/analysis')}"},
     f"venv-analysis-{prefix_hash('/p/analysis')}-2"),
    ({"venv-analysis", f"venv-analysis-{prefix_hash('/p/analysis')}",
      f"venv-analysis-{prefix_hash('/p/analysis')}-2"},
     f"venv-analysis-{prefix_hash('/p/analysis')}-3"),
])
def test_choose_kernel_name(taken, expected):
    assert choose_kernel_name(env(), taken) == expected


def test_prefix_hash_is_short_and_stable():
    assert prefix_hash("/p/a") == prefix_hash("/p/a") != prefix_hash("/p/b")
    assert re.fullmatch(r"[0-9a-f]{6}", prefix_hash("/p/a"))


@pytest.mark.parametrize(("template", "expected"), [
    ("Python {version} ({kind}: {name})", "Python 3.11 (venv: analysis)"),
    ("{name} (Python {version})", "analysis (Python 3.11)"),
    ("{name} [{modules}]", "analysis [gcccore/13.2.0 python/3.11.7]"),
    ("{nosuch}", "Python 3.11 (venv: analysis)"),
    ("{0}", "Python 3.11 (venv: analysis)"),
    ("{name", "Python 3.11 (venv: analysis)"),
])
def test_display_name(template, expected):
    e = env(version="3.11", modules=("gcccore/13.2.0", "python/3.11.7"))
    assert display_name(e, template) == expected


@pytest.mark.parametrize(("kw", "activation", "expected"), [
    ({}, "", ["/k/l", "--kind", "venv", "--prefix", "/p/analysis", "--python",
              "/p/analysis/bin/python", "--name", "analysis", "--kernel", "venv-analysis", "--",
              "-f", "{connection_file}"]),
    ({"modules": ("a/1", "b/2")}, "", ["/k/l", "--kind", "venv", "--prefix", "/p/analysis",
                                       "--python", "/p/analysis/bin/python", "--name",
                                       "analysis", "--module", "a/1", "--module", "b/2",
                                       "--module-system", "lmod", "--module-cmd", "/lmod",
                                       "--modulepath", "/m", "--kernel", "venv-analysis", "--",
                                       "-f", "{connection_file}"]),
    ({"kind": "project"}, "venv", ["/k/l", "--kind", "venv", "--prefix", "/p/analysis",
                                   "--python", "/p/analysis/bin/python", "--name", "analysis",
                                   "--kernel", "venv-analysis", "--", "-f",
                                   "{connection_file}"]),
])
def test_launcher_argv(kw, activation, expected):
    e = env(**kw)
    assert launcher_argv(e, "/k/l", "venv-analysis", module_system="lmod", module_cmd="/lmod",
                         modulepath="/m", activation=activation) == expected


@pytest.mark.parametrize(("value", "minutes"), [
    ("90", 90), (90, 90), ("2:00:00", 120), ("1:30", 2), ("0:30", 1), ("1-12", 2160),
    ("1-00:30:00", 1470), ("1-0:0:1", 1441), ("1-2:3", 1563), ("0:0:1", 1), (" 45 ", 45),
])
def test_slurm_time_minutes(value, minutes):
    assert time_minutes(value) == minutes


@pytest.mark.parametrize("value", ["", "abc", "1:2:3:4", "-5", "0", "0:00:00", True, "1.5",
                                   "1-", "1--2"])
def test_slurm_time_minutes_rejects(value):
    with pytest.raises(SlurmProfileError):
        time_minutes(value)


@pytest.mark.parametrize(("minutes", "label"), [
    (1440, "1d"), (2880, "2d"), (120, "2h"), (90, "1h30m"), (45, "45m"), (1470, "24h30m"),
])
def test_slurm_time_label(minutes, label):
    assert time_label(minutes) == label


@pytest.mark.parametrize(("data", "error"), [
    ([], "must be a dict"),
    ({"nosuch": 1}, "unknown keys nosuch"),
    ({"cpus": 0}, "cpus must be a whole number"),
    ({"cpus": True}, "cpus must be a whole number"),
    ({"gpus": 1.5}, "gpus must be a number or a string"),
    ({"time": "x"}, "is not a Slurm time limit"),
    ({"extra": "--exclusive"}, "extra must be a list of strings"),
    ({"envs": [1]}, "envs must be a list of strings"),
    ({"pending_limit": -1}, "pending_limit must be seconds"),
    ({"remote": "sometimes"}, "remote must be one of auto, always, never"),
    ({"partition": 5}, "partition must be a string"),
])
def test_slurm_profile_errors(data, error):
    with pytest.raises(SlurmProfileError, match=re.escape(error)):
        Profile.from_config("p", data)


@pytest.mark.parametrize(("data", "label", "args"), [
    ({}, "1 CPU", ["--cpus-per-task=1"]),
    ({"cpus": 4, "time": "2:00:00", "partition": "work"}, "4 CPU 2h",
     ["--partition=work", "--time=2:00:00", "--cpus-per-task=4"]),
    ({"gpus": "a100:2", "mem": 16000}, "1 CPU 2 GPU", ["--mem=16000M", "--gpus=a100:2",
                                                       "--cpus-per-task=1"]),
    ({"gpus": "a100", "label": "big", "extra": ["--exclusive"]}, "big",
     ["--gpus=a100", "--cpus-per-task=1", "--exclusive"]),
])
def test_slurm_profile_label_and_srun_args(data, label, args):
    p = Profile.from_config("p", data)
    assert p.display_label() == label and p.srun_args() == args


@pytest.mark.parametrize(("envs", "matches"), [
    (["*"], True), (["venv:*"], True), (["conda:*"], False), (["analysis"], True),
    (["/p/*"], True), (["other"], False),
])
def test_slurm_profile_matches(envs, matches):
    assert Profile.from_config("p", {"envs": envs}).matches(env()) is matches


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("noise\n", {}),
    ("ozkernels-slurm: job=12 node=n1 queue_wait=0.051 address=local\n",
     {"job": "12", "node": "n1", "queue_wait": "0.051", "address": "local"}),
    ("x\n  ozkernels-slurm: job=1 node=a\nozkernels-slurm: job=2 node=b odd\n",
     {"job": "2", "node": "b"}),
])
def test_slurm_status_line(text, expected):
    assert parse_status(text) == expected


def module_table(text: str, chunks: int = 2) -> dict[str, str]:
    """Lmod's _ModuleTable###_ variables for a table's text, split into chunks."""
    data = base64.b64encode(text.encode()).decode()
    size = -(-len(data) // chunks)
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    env = {f"_ModuleTable{i:03d}_": p for i, p in enumerate(parts, 1)}
    env["_ModuleTable_Sz_"] = str(len(parts))
    return env


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, ""),
    ({"MODULEPATH": "/a:/b"}, "/a:/b"),
    ({"MODULEPATH": "/a:/b:/added", "LOADEDMODULES": "x/1",
      **module_table('_ModuleTable_={systemBaseMPATH="/a:/b",}')}, "/a:/b"),
    ({"MODULEPATH": "/a:/added", **module_table('systemBaseMPATH="/a"')}, "/a:/added"),
    ({"MODULEPATH": "/a", "LOADEDMODULES": "x", "_ModuleTable_Sz_": "1",
      "_ModuleTable001_": "!!!"}, "/a"),
    ({"MODULEPATH": "/a", "LOADEDMODULES": "x", **module_table('systemBaseMPATH=""')}, "/a"),
    ({"MODULEPATH": "/a", "LOADEDMODULES": "x", "_ModuleTable_Sz_": "two"}, "/a"),
])
def test_base_modulepath(environ, expected):
    assert base_modulepath(environ) == expected


def test_parse_spider():
    data = {"/m/Core": {
        "/m/Core/python/3.11.7.lua": {
            "fullName": "python/3.11.7", "Version": "3.11.7", "pathA": {"/apps/py/bin": 1},
            "lpathA": {"/apps/py/lib": 1}, "parentAA": [["gcccore/13.2.0"], ["a", "b"]],
            "mpath": "/m/Core"},
        "/m/Core/gcccore/13.2.0.lua": {"fullName": "gcccore/13.2.0", "Version": 13.2,
                                       "hidden": True}}}
    found = parse_spider(data)
    assert [m.full_name for m in found] == ["gcccore/13.2.0", "python/3.11.7"]
    gcc, py = found
    assert gcc.version == "13.2" and gcc.hidden and gcc.parents == () and gcc.bin_dirs == ()
    assert py.chain == ("gcccore/13.2.0", "python/3.11.7") and py.bin_dirs == ("/apps/py/bin",)
    assert py.mpath == "/m/Core" and py.path == "/m/Core/python/3.11.7.lua"
    assert parse_spider([]) == [] and parse_spider({}) == []


@pytest.mark.parametrize(("variables", "lines", "warnings"), [
    ({"A": "1"}, ["export A='1'"], 0),
    ({"lower": "x"}, ["export LOWER='x'"], 0),
    ({"Q": "it's"}, ["export Q='it'\\''s'"], 0),
    ({"U": "***unset***"}, ["unset U"], 0),
    ({"1BAD": "x", "A-B": "y", "PPID": "1", "ÄB": "z"}, [], 4),
    ({"N": None, "D": {}, "L": []}, [], 3),
    ({"Z": "a\0b"}, [], 1),
    ({"I": 5, "F": True}, ["export I='5'", "export F='True'"], 0),
])
def test_conda_env_vars_shell_lines(variables, lines, warnings):
    said: list[str] = []
    assert conda_env_vars.shell_lines(variables, said.append) == lines
    assert len(said) == warnings


@given(st.text(alphabet=st.characters(blacklist_characters="\0",
                                      blacklist_categories=("Cs",))))
def test_conda_env_vars_quote_survives_bash(value):
    out = subprocess.run(["bash", "-c", f"export V={conda_env_vars.quote(value)}; "
                          "printf %s \"$V\""], capture_output=True, timeout=10, check=True)
    assert out.stdout.decode("utf-8", "surrogateescape") == value


def test_conda_env_vars_files(tmp_path):
    d = tmp_path / "etc" / "conda" / "env_vars.d"
    d.mkdir(parents=True)
    (d / "b.json").write_text('{"X": "b", "Y": "b"}')
    (d / "a.json").write_text('{"X": "a", "W": "a"}')
    (d / "bad.json").write_text("[1]")
    (tmp_path / "conda-meta").mkdir()
    (tmp_path / "conda-meta" / "state").write_text('{"env_vars": {"Y": "state"}}')
    said: list[str] = []
    assert conda_env_vars.env_vars(str(tmp_path), said.append) == {
        "X": "b", "W": "a", "Y": "state"}
    assert len(said) == 1 and "not a JSON object" in said[0]


@pytest.mark.parametrize(("limit", "first"), [
    (0, [1, 3, 10, 30, 60, 120, 180]),
    (300, [1, 3, 10, 30, 60, 120, 180, 240, 300, 360]),
    (5, [1, 3, 5, 30, 60, 120]),  # the limit takes the place of the step it cuts short
    (3, [1, 3, 10, 30]),
    (45, [1, 3, 10, 30, 45, 105, 165]),
    (1, [1, 3, 10]),
])
def test_supervisor_queue_checks(limit, first):
    checks = slurm_supervisor.queue_checks(limit)
    assert [next(checks) for _ in first] == first


@pytest.mark.parametrize(("text", "fields"), [
    ("", ["", "", ""]),
    ("123|PENDING|Resources\n", ["123", "PENDING", "Resources"]),
    ("123|RUNNING|None\n124|PENDING|Priority\n", ["123", "RUNNING", "None"]),
    ("9|PENDING|a|b", ["9", "PENDING", "a|b"]),
])
def test_supervisor_queue_line(text, fields):
    assert slurm_supervisor.parse_queue_line(text) == fields


@pytest.mark.parametrize(("argv", "expected"), [
    (["--", "srun", "x"], {"kernel": "", "pending_limit": 0, "stdout_fd": 1,
                           "command": ["srun", "x"]}),
    (["--kernel", "k", "--pending-limit", "300", "--stdout-fd", "5", "--sidecar", "",
      "--profile", "cpu4", "--", "/s/srun"],
     {"kernel": "k", "pending_limit": 300, "stdout_fd": 5, "sidecar": "", "profile": "cpu4",
      "command": ["/s/srun"]}),
])
def test_supervisor_args(argv, expected):
    args = slurm_supervisor.parse_args(argv)
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize("argv", [[], ["--kernel"], ["--nosuch", "x", "--", "srun"],
                                  ["--kernel", "k", "--"]])
def test_supervisor_args_rejected(argv):
    with pytest.raises(ValueError):
        slurm_supervisor.parse_args(argv)


@pytest.mark.parametrize(("srun", "tools"), [
    ("srun", ["scancel", "squeue"]),
    ("/opt/slurm/bin/srun", ["/opt/slurm/bin/scancel", "/opt/slurm/bin/squeue"]),
])
def test_supervisor_tools(srun, tools):
    assert slurm_supervisor.tools(srun) == tools


PORTS = {p: 5000 + i for i, p in enumerate(slurm_relay.PORTS, 1)}


@pytest.mark.parametrize(("info", "complete"), [
    (None, False),
    ({}, False),
    ({"ip": "10.0.0.1", **PORTS}, True),
    ({"ip": "", **PORTS}, False),
    ({"ip": "10.0.0.1", **PORTS, "hb_port": 0}, False),
    ({"ip": "10.0.0.1", **PORTS, "shell_port": "5001"}, False),
])
def test_relay_complete(info, complete):
    assert slurm_relay.complete(info) is complete


def free_ports(n: int) -> list[int]:
    """n TCP ports free on 127.0.0.1 right now."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_relay_forwards_every_port(tmp_path):
    import asyncio
    import contextlib
    import json

    mine, node = free_ports(5), free_ports(5)
    cf, side = tmp_path / "kernel.json", tmp_path / "kernel.json.slurm-node"
    cf.write_text(json.dumps({"ip": "127.0.0.1", **dict(zip(slurm_relay.PORTS, mine))}))

    async def main() -> list[bytes]:
        async def echo(reader, writer):
            port = writer.get_extra_info("sockname")[1]
            writer.write(str(port).encode() + b":" + await reader.read(100))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        servers = [await asyncio.start_server(echo, "127.0.0.1", p) for p in node]
        started = asyncio.Event()
        task = asyncio.ensure_future(slurm_relay.relay(str(cf), str(side), "k", started.set))
        await asyncio.sleep(0.3)
        assert not started.is_set(), "the relay waits for the node side's ports"
        side.write_text(json.dumps({"ip": "127.0.0.1", **dict(zip(slurm_relay.PORTS, node))}))
        await asyncio.wait_for(started.wait(), 10)
        got = []
        for port in mine:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            await writer.drain()
            got.append(await asyncio.wait_for(reader.read(100), 10))
            writer.close()
            await writer.wait_closed()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for s in servers:
            s.close()
            await s.wait_closed()
        return got

    assert asyncio.run(main()) == [f"{p}:ping".encode() for p in node]


def test_relay_refuses_an_unreadable_connection_file(tmp_path):
    import asyncio

    with pytest.raises(slurm_relay.RelayError, match="cannot read the connection file"):
        asyncio.run(slurm_relay.relay(str(tmp_path / "none.json"), str(tmp_path / "s"), "k"))


@pytest.mark.parametrize(("reason", "fix"), [
    ("Resources", ""), ("Priority", ""), ("", ""), ("ReqNodeNotAvail", ""),
    ("PartitionTimeLimit", "'time'"), ("PartitionNodeLimit", "'cpus'"),
    ("PartitionConfig", "'partition'"), ("ReqNodeNotAvail, UnavailableNodes:n[1-2]", "'partition'"),
    ("BadConstraints", "'extra'"), ("InvalidAccount", "'account'"),
    ("AccountNotAllowed", "'account'"), ("InvalidQOS", "'qos'"), ("QOSNotAllowed", "'qos'"),
    ("AssocMaxCpuPerJobLimit", "'cpus'"), ("QOSMaxWallDurationPerJobLimit", "'cpus'"),
    ("QOSMinCpuNotSatisfied", "'cpus'"), ("AssocGrpCpuLimit", ""),
])
def test_supervisor_never_starts(reason, fix):
    found = slurm_supervisor.never_starts(reason)
    assert found.startswith(fix) and bool(found) is bool(fix)
