"""Feature views of the retail domain (``gold/features/...``), built on ``lakehouse.features``:
one daily-partitioned table per view, a nightly training set, and the nightly push online."""

import dagster as dg

from assets.features import retail, training
from lakehouse.features.factory import feature_view_asset, online_store_asset, training_set_asset
from lakehouse.features.registry import FeatureRegistry

#: every feature view of this code location
REGISTRY = FeatureRegistry(view for view, _ in retail.VIEWS)

reorder_training = training_set_asset(
    training.TRAINING_SET,
    labels=training.labels_from_lake,
    label_columns=training.LABEL_COLUMNS,
    features=training.FEATURES,
    registry=REGISTRY,
    owner=retail.OWNER,
    description="Training set (grain: one silver order): will the customer order again within 30 days? Label "
    "from the following orders (null while unknown), customer RFM, basket and web-activity features as of "
    "the order's timestamp (point in time, within each view's TTL). Rebuilt nightly.",
    deps=[training.ORDERS.path],
)

defs = dg.Definitions(
    assets=[
        *[feature_view_asset(view, compute) for view, compute in retail.VIEWS],
        reorder_training,
        online_store_asset(REGISTRY, owner=retail.OWNER),
    ]
)

__all__ = ["REGISTRY", "defs"]
