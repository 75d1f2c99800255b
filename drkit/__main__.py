"""``python -m drkit`` is the ``drkit`` console script."""

from drkit.cli import main

main()
