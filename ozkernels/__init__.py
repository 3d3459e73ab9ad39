"""Jupyter kernels that start, for every Python environment on an HPC cluster."""

__version__ = "0.1.0"
