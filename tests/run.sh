#!/usr/bin/env bash
# The one test command: installs what is missing, then lint, types, tests, browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# PYTHON: the interpreter to test with (any venv's python, activated or not). Unset: python3,
# or, when python3 is externally managed (PEP 668, Debian 12 / Ubuntu 24.04), a venv made from it
# in .venv (reused by the next run).
APT_PACKAGES=(lmod patchelf chromium strace slurmctld slurmd slurm-client munge python3-venv r-base-core r-cran-irkernel tcl8.6 shellcheck)
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo -n); fi
    step "apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    step "Debian packages present: ${APT_PACKAGES[*]}"
fi

# Environment Modules (Tcl) conflicts with lmod as a Debian package: the tests unpack its .deb
# instead (tests/ozktest/envmodules.py), downloaded once into a cache dir.
deb_cache=${XDG_CACHE_HOME:-$HOME/.cache}/ozkernels-tests/debs
if ! compgen -G "$deb_cache/environment-modules_*.deb" >/dev/null; then
    step "apt-get download environment-modules (into $deb_cache)"
    mkdir -p "$deb_cache"
    if ! (cd "$deb_cache" && apt-get download -q environment-modules); then
        # Package lists may be missing on a fresh machine whose packages were all present.
        if [ "$(id -u)" -ne 0 ]; then sudo -n apt-get update -q; else apt-get update -q; fi
        (cd "$deb_cache" && apt-get download -q environment-modules)
    fi
else
    step "environment-modules .deb present in $deb_cache"
fi
OZK_ENVMODULES_DEB=$(compgen -G "$deb_cache/environment-modules_*.deb" | sort | tail -n 1)
export OZK_ENVMODULES_DEB

externally_managed() {
    "$1" -c 'import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 1)'
}

if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if externally_managed python3; then
        if [ ! -x .venv/bin/python ]; then
            step "python3 is externally managed: python3 -m venv .venv"
            python3 -m venv .venv
        fi
        PYTHON=$PWD/.venv/bin/python
    fi
fi

step "pip install -e '.[test]' with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m pip install -q --no-input -e '.[test]'

lint_dirs=()
for dir in ozkernels tests benchmarks scripts labextension; do
    if [ -d "$dir" ]; then lint_dirs+=("$dir"); fi
done
step "ruff check ${lint_dirs[*]}"
"$PYTHON" -m ruff check "${lint_dirs[@]}"

step "mypy (config in pyproject.toml)"
"$PYTHON" -m mypy

shell_files=(ozkernels/kernel_files/*.sh tests/run.sh .ci/run)
step "shellcheck ${shell_files[*]}"
shellcheck "${shell_files[@]}"

step "pytest -m 'not browser'"
"$PYTHON" -m pytest -m "not browser" -p no:cacheprovider

step "pytest -m browser (headless Chromium)"
rc=0
"$PYTHON" -m pytest -m browser -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "no browser tests collected: OK"
elif [ "$rc" -ne 0 ]; then
    exit "$rc"
fi

step "all checks passed"
