"""python -m ozkernels."""

from .app import main

main()
