"""A third-party source (an `ozkernels.sources` entry point) gets kernels that start, removal on
proof of absence, watch paths and `list`, with nothing in ozkernels naming its kind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_venv
from ozktest import plugin_source
from traitlets.config import Config

from ozkernels.manager import KernelsManager
from ozkernels.server.watch import watch_paths

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def plugin(tmp_path, site, site_env):
    """A project env made on a module Python, the plugin installed, and a config enabling it."""
    root = tmp_path / "projects"
    env = root / "myproj"
    make_venv(site, env)
    (env / ".project-env").write_text("")
    where = plugin_source.install(str(tmp_path / "plugin-dist"))
    config = {"Discovery": {"sources": ["modules", "venvs", "conda", "projects"]},
              "ProjectSource": {"roots": [str(root)]}}
    cfg = tmp_path / "plugin_config.json"
    cfg.write_text(json.dumps(config))
    environ = {**site_env, "PYTHONPATH": os.pathsep.join([where, str(TESTS)])}
    return env, str(cfg), environ, where, config


def test_a_plugin_source_gets_kernels_that_start(plugin, run_ozk):
    env, cfg, environ, _, _ = plugin
    out = json.loads(run_ozk("sync", "--config", cfg, "--json", env=environ).stdout)
    added = {a["kernel"]: a for a in out["actions"] if a["action"] == "add"}
    assert added["project-myproj"]["kind"] == "project"
    spec_path = Path(environ["JUPYTER_DATA_DIR"]) / "kernels" / "project-myproj" / "kernel.json"
    spec = json.loads(spec_path.read_text())
    meta = spec["metadata"]["ozkernels"]
    assert meta["kind"] == "project" and meta["activation"] == "venv"
    assert meta["modules"][-1] == "python/3.11.7"

    listed = json.loads(run_ozk("list", "--config", cfg, "--json", env=environ).stdout)
    row = next(e for e in listed["environments"] if e["kind"] == "project")
    assert row["kernel"] == "project-myproj" and row["status"] == "up to date"

    checked = json.loads(run_ozk("check", "project-myproj", "--config", cfg, "--json",
                                 env=environ, timeout=180).stdout)
    result = checked["results"][0]
    assert result["ok"], result
    assert result["probe"]["virtual_env"] == str(env)
    assert "python/3.11.7" in result["probe"]["loaded"]


def test_a_plugin_kind_is_removed_only_on_proof_and_watched(plugin, run_ozk, monkeypatch):
    env, cfg, environ, where, config = plugin
    run_ozk("sync", "--config", cfg, env=environ)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(where)
    manager = KernelsManager(config=Config(config))
    discovery = manager.discovery()
    context = discovery.context()
    envs = [row.env for row in manager.plan(context).rows]
    paths = watch_paths(manager, discovery, context, envs)
    assert str(env.parent) in paths and str(env / ".project-env") in paths

    (env / ".project-env").unlink()
    out = json.loads(run_ozk("sync", "--config", cfg, "--json", env=environ).stdout)
    removed = [a for a in out["actions"] if a["action"] == "remove"]
    assert [(a["kernel"], a["reason"]) for a in removed] == [
        ("project-myproj", f"{env} is no longer a project env")]
