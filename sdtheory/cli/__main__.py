"""``python -m sdtheory.cli``: the ``sdtheory`` command."""

from sdtheory.cli import command

command()
