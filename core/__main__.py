"""``python -m hrkernel`` is the same as the ``hrkernel`` command."""

from hrkernel.cli import main

main()
