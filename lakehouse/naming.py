"""Asset keys, table names and table locations: the one mapping everything uses.

An asset key ``[layer, domain, table]`` names a table. Its physical location is
``{warehouse}/{layer}/{domain}/{table}``; in Iceberg, Trino and DuckDB the namespace (schema)
is ``{layer}_{domain}`` and the table is ``{table}``. :func:`table_location` is the only
function that turns a key into a location; the IO manager, dbt sources, DuckDB views, Trino
and governance all call it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import InvalidTableKeyError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

__all__ = ["LAYERS", "TableRef", "join_uri", "pool_for", "table_location"]

#: The layers a table can live in, in the order data flows through them.
LAYERS: tuple[str, ...] = ("bronze", "silver", "gold", "governance")
_PART = re.compile(r"^[a-z][a-z0-9_]*$")


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a local path or an ``s3://`` URI with single slashes."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


@dataclass(frozen=True, order=True)
class TableRef:
    """A lakehouse table: ``layer``, ``domain`` and ``name``, each snake_case."""

    layer: str
    domain: str
    name: str

    def __post_init__(self) -> None:
        for kind, part in (("layer", self.layer), ("domain", self.domain), ("table", self.name)):
            if not isinstance(part, str) or not _PART.match(part):
                raise InvalidTableKeyError(
                    f"{kind} {part!r} in table key {self.layer}/{self.domain}/{self.name} is not snake_case "
                    "(lower-case letters, digits and _, starting with a letter)"
                )
        if self.layer not in LAYERS:
            raise InvalidTableKeyError(
                f"layer {self.layer!r} of table {self.domain}.{self.name} is not one of {', '.join(LAYERS)}"
            )

    @classmethod
    def from_key(cls, key: Any) -> TableRef:
        """From a Dagster ``AssetKey``, a ``[layer, domain, table]`` list, or ``layer.domain.table``."""
        path: Sequence[str]
        if hasattr(key, "path"):
            path = key.path
        elif isinstance(key, str):
            path = re.split(r"[./]", key)
        else:
            path = list(key)
        if len(path) != 3:
            raise InvalidTableKeyError(
                f"asset key {'/'.join(map(str, path))!r} must have three parts [layer, domain, table]"
            )
        return cls(*path)

    @classmethod
    def parse(cls, name: str) -> TableRef:
        """From ``layer.domain.table``, ``layer/domain/table`` or the SQL name ``layer_domain.table``."""
        parts = re.split(r"[./]", name.strip())
        if len(parts) == 2 and "_" in parts[0]:
            layer, _, domain = parts[0].partition("_")
            return cls(layer, domain, parts[1])
        return cls.from_key(parts)

    @property
    def path(self) -> list[str]:
        """The asset key path ``[layer, domain, table]``."""
        return [self.layer, self.domain, self.name]

    @property
    def namespace(self) -> str:
        """Iceberg namespace / Trino and DuckDB schema: ``{layer}_{domain}``."""
        return f"{self.layer}_{self.domain}"

    @property
    def sql_name(self) -> str:
        """``{layer}_{domain}.{table}``: how analysts address the table in DuckDB and Trino."""
        return f"{self.namespace}.{self.name}"

    def __str__(self) -> str:
        return f"{self.layer}.{self.domain}.{self.name}"


def table_location(key: Any, settings: Settings | str) -> str:
    """The physical location of the table for ``key``: ``{warehouse}/{layer}/{domain}/{table}``.

    ``settings`` is a :class:`~lakehouse.settings.Settings` or a warehouse URI.

    >>> table_location(["silver", "retail", "orders"], "s3://lake/prod")
    's3://lake/prod/silver/retail/orders'
    """
    ref = key if isinstance(key, TableRef) else TableRef.from_key(key)
    warehouse = settings if isinstance(settings, str) else settings.warehouse
    return join_uri(warehouse, ref.layer, ref.domain, ref.name)


def pool_for(ref: TableRef) -> str:
    """The Dagster concurrency pool of the op that writes ``ref``: one writer per table at a time,
    shared by its maintenance (set the limit with ``concurrency: pools`` in dagster.yaml)."""
    return f"table:{ref}"
