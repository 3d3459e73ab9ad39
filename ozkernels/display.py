"""How ozkernels shows paths to people (the CLI, the server's page, error messages)."""

from __future__ import annotations

import os


def shorten(path: str) -> str:
    """A path with $HOME shown as ~."""
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home != "/" and path.startswith(home + "/") else path
