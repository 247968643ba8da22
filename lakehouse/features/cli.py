"""``lakehouse features ...``: online lookups and training sets from the shell."""

from __future__ import annotations

import click

__all__ = ["COMMANDS"]

#: click commands added to the ``lakehouse`` group by ``lakehouse.cli``
COMMANDS: list[click.Command] = []
