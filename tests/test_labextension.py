"""The prebuilt JupyterLab extension shipped in the repo: built from these sources, installed."""

from __future__ import annotations

import configparser
import glob
import json
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "labextension"
BUILD = REPO / "share" / "jupyter" / "labextensions" / "@ozkernels" / "jupyterlab"


def test_shipped_build_was_made_from_these_sources() -> None:
    srchash = runpy.run_path(str(SOURCE / "srchash.py"))
    assert srchash["recorded"](), "no build record: run 'cd labextension && npm run build'"
    assert srchash["recorded"]() == srchash["sources_hash"](), (
        "labextension/ changed since the shipped build: run "
        "'cd labextension && npm ci && npm run build' and commit share/jupyter/labextensions")


def test_build_is_a_loadable_prebuilt_extension() -> None:
    built = json.loads((BUILD / "package.json").read_text())
    source = json.loads((SOURCE / "package.json").read_text())
    assert built["name"] == source["name"] == "@ozkernels/jupyterlab"
    assert built["version"] == source["version"]
    load = built["jupyterlab"]["_build"]["load"]
    assert (BUILD / load).is_file()
    # What the build loads and nothing stale besides (a rebuild replaces static/).
    assert len(list((BUILD / "static").glob("remoteEntry.*.js"))) == 1


def test_pip_install_puts_every_built_file_in_share_jupyter_labextensions() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    installed: dict[str, str] = {}
    for target, sources in cfg["options.data_files"].items():
        for pattern in filter(None, (s.strip() for s in sources.split(","))):
            for path in glob.glob(str(REPO / pattern)):
                installed[str(Path(path).relative_to(REPO))] = target
    for path in BUILD.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(REPO))
            assert installed.get(relative) == str(path.parent.relative_to(REPO)), relative


def test_panel_icon_is_our_logo() -> None:
    svg = (REPO / "ozkernels" / "logos" / "logo-svg.svg").read_text()
    assert f"`{svg}`" in (SOURCE / "src" / "logo.ts").read_text()
