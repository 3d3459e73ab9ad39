"""Test-only helpers: a private Slurm cluster, test plugins (tests/ and benchmarks/ import them)."""
