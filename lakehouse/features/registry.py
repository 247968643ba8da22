"""The set of feature views one request can draw on, and ``view:feature`` references into it.

Code builds a :class:`FeatureRegistry` from its declarations (``assets/features``); tools that
must not import ``assets/`` (the CLI) read it back from the lake with :meth:`FeatureRegistry.from_lake`,
where every feature table carries its declaration in its commit metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from lakehouse.features.exceptions import FeatureDefinitionError, UnknownFeatureError
from lakehouse.features.spec import DOMAIN, SPEC_KEY, FeatureView

if TYPE_CHECKING:
    from lakehouse.tables import Lake

__all__ = ["FeatureRegistry", "Selection"]

#: one view and the features wanted from it, in request order
Selection = tuple[FeatureView, list[str]]


class FeatureRegistry:
    """Feature views by name; resolves ``view`` and ``view:feature`` references."""

    def __init__(self, views: Iterable[FeatureView]) -> None:
        self._views: dict[str, FeatureView] = {}
        for view in views:
            if view.name in self._views:
                raise FeatureDefinitionError(f"feature view {view.name!r} is registered twice")
            self._views[view.name] = view

    def __iter__(self) -> Iterator[FeatureView]:
        return iter(self._views.values())

    def __len__(self) -> int:
        return len(self._views)

    def view(self, name: str) -> FeatureView:
        try:
            return self._views[name]
        except KeyError:
            raise UnknownFeatureError(
                f"no feature view {name!r}; registered: {', '.join(sorted(self._views)) or 'none'}"
            ) from None

    def views_for(self, entity: str) -> list[FeatureView]:
        """Every view of ``entity`` (by entity name), sorted by view name."""
        found = sorted((v for v in self._views.values() if v.entity.name == entity), key=lambda v: v.name)
        if not found:
            entities = sorted({v.entity.name for v in self._views.values()})
            raise UnknownFeatureError(
                f"no feature view describes entity {entity!r}; entities: {', '.join(entities) or 'none'}"
            )
        return found

    def resolve(self, refs: Sequence[str | FeatureView]) -> list[Selection]:
        """Group references by view, keeping the order they were asked in.

        ``"view"`` (or a :class:`FeatureView`) means all its features, ``"view:feature"`` one.

        Raises:
            UnknownFeatureError: naming the reference that matches nothing.
        """
        if not refs:
            raise UnknownFeatureError("no features requested; name views (`customer_rfm`) or `view:feature`")
        chosen: dict[str, list[str]] = {}
        views: dict[str, FeatureView] = {}
        for ref in refs:
            if isinstance(ref, FeatureView):
                view, feature = ref, ""
            else:
                view_name, _, feature = ref.partition(":")
                view = self.view(view_name.strip())
            views[view.name] = view
            wanted = chosen.setdefault(view.name, [])
            names = view.feature_names if not feature else [view.feature(feature.strip()).name]
            wanted.extend(n for n in names if n not in wanted)
        return [(views[name], features) for name, features in chosen.items()]

    @classmethod
    def from_lake(cls, lake: Lake) -> FeatureRegistry:
        """The views whose tables exist in ``lake`` (``gold/features/*``), as last written."""
        views = []
        for fmt in ("delta", "iceberg"):
            store = lake.store(fmt)
            for ref in store.list_tables():
                if ref.layer != "gold" or ref.domain != DOMAIN:
                    continue
                for commit in store.history(ref):
                    spec = commit.user_metadata.get(SPEC_KEY)
                    if spec:
                        views.append(FeatureView.from_json(spec))
                        break
        return cls(views)
