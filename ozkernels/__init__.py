"""Jupyter kernels that start, for every Python environment on an HPC cluster."""

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The Jupyter Server extension: ozkernels' page, REST API and background sync."""
    # Imported here so the CLI, which imports this package, never loads jupyter_server.
    from .server.app import OzkernelsExtension

    return [{"module": "ozkernels.server.app", "app": OzkernelsExtension}]
