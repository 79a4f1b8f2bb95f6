"""``python -m sdtheory``: the ``sdtheory`` command."""

from sdtheory.cli import command

command()
