"""Kernel logos and display names: every ozkernels kernel dir carries an icon for the Launcher."""

from __future__ import annotations

import json
import os
import runpy
import stat
import struct
from pathlib import Path

from ozkernels.environment import Environment
from ozkernels.logos import LOGO_NAMES, kernel_logos, logos_in, shipped_logos
from ozkernels.specs import DEFAULT_DISPLAY, display_name

REPO = Path(__file__).resolve().parents[1]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_shipped_logos_are_what_our_script_draws() -> None:
    drawn = runpy.run_path(str(REPO / "scripts" / "draw_logos.py"))["drawn"]()
    assert drawn == shipped_logos()
    assert png_size(drawn["logo-32x32.png"]) == (32, 32)
    assert png_size(drawn["logo-64x64.png"]) == (64, 64)
    assert drawn["logo-svg.svg"].startswith(b"<svg ")


def test_env_logos_win_only_when_both_pngs_are_there(tmp_path: Path) -> None:
    own = tmp_path / "share" / "jupyter" / "kernels" / "python3"
    own.mkdir(parents=True)
    (own / "logo-64x64.png").write_bytes(b"sixty-four")
    (own / "kernel.json").write_text("{}")
    assert kernel_logos(str(own)) == shipped_logos()  # half a set: ours
    (own / "logo-32x32.png").write_bytes(b"thirty-two")
    (own / "logo-svg.svg").write_bytes(b"")  # empty: not a logo
    assert kernel_logos(str(tmp_path / "nowhere"), str(own)) == {
        "logo-32x32.png": b"thirty-two", "logo-64x64.png": b"sixty-four"}
    (own / "logo-32x32.png").write_bytes(b"x" * ((1 << 20) + 1))  # too big to copy around
    assert "logo-32x32.png" not in logos_in(str(own))


def kernel_dirs(env: dict[str, str]) -> dict[str, Path]:
    root = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    return {d.name: d for d in root.iterdir() if (d / "kernel.json").exists()}


def test_every_kernel_dir_gets_logos_from_its_env_or_ours(run_ozk, site_env, own_site) -> None:
    env = own_site.environ(JUPYTER_DATA_DIR=site_env["JUPYTER_DATA_DIR"])
    astro = Path(os.path.realpath(own_site.conda_envs["astro"]))
    spec_dir = astro / "share" / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    for name in LOGO_NAMES:  # what ipykernel's wheel puts there (content is the env's own)
        (spec_dir / name).write_bytes(f"astro's own {name}".encode())
    run_ozk("sync", env=env)
    dirs = kernel_dirs(env)
    assert len(dirs) >= 5
    for name, d in dirs.items():
        own = name == "conda-astro"
        for logo in LOGO_NAMES:
            data = (d / logo).read_bytes()
            assert (data == f"astro's own {logo}".encode()) if own else \
                (data == shipped_logos()[logo]), (name, logo)
            assert not stat.S_IMODE((d / logo).stat().st_mode) & 0o111, "a logo is not a program"
        spec = json.loads((d / "kernel.json").read_text())
        assert set(LOGO_NAMES) <= set(spec["metadata"]["ozkernels"]["files"])
    # A changed logo in the env is a changed kernel: the next sync copies it.
    (spec_dir / "logo-64x64.png").write_bytes(b"astro's new logo")
    out = json.loads(run_ozk("sync", "--json", env=env).stdout)
    assert [(a["action"], a["kernel"]) for a in out["actions"]] == [("update", "conda-astro")]
    assert (dirs["conda-astro"] / "logo-64x64.png").read_bytes() == b"astro's new logo"
    # Removing the kernel removes its logos with it: no debris left behind.
    run_ozk("remove", "conda-astro", env=env)
    assert not dirs["conda-astro"].exists()


def env(**kw: object) -> Environment:
    fields: dict = {"kind": "venv", "prefix": "/p", "python": "/p/bin/python", "name": "x",
                    "version": "3.11"}
    fields.update(kw)
    return Environment(**fields)


def test_display_names_tell_same_version_kernels_apart() -> None:
    assert display_name(env(full_version="3.11.7"), DEFAULT_DISPLAY) == \
        "Python 3.11.7 (venv: x)"
    assert display_name(env(), DEFAULT_DISPLAY) == "Python 3.11 (venv: x)"
    assert display_name(env(full_version="3.11.5", extra_modules=("astro-tools/1.0", "gsl/2.7")),
                        DEFAULT_DISPLAY) == "Python 3.11.5 (venv: x + astro-tools/1.0 + gsl/2.7)"
    assert display_name(env(extra_modules=("a/1",)), "{name} [{extra_modules}] {version}") == \
        "x [a/1] 3.11"
    assert display_name(env(), "{nope}") == "Python 3.11 (venv: x)"
