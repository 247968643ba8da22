"""Against a real Trino (deploy/compose.yaml) when LAKEHOUSE_TRINO_URL is set; Trino cannot run on
the CI machines, so this is skipped there (it is not one of the services CI provides).

Run it on the compose stack after `make run` against that lake:
    LAKEHOUSE_TRINO_URL=http://127.0.0.1:8080 pytest tests/integration/test_trino_live.py
"""

import os

import pytest
from conftest import PROJECT_ROOT

from lakehouse.query.duckdb import Query
from lakehouse.query.trino import trino_query
from lakehouse.settings import get_settings

pytestmark = pytest.mark.skipif(not os.environ.get("LAKEHOUSE_TRINO_URL"), reason="LAKEHOUSE_TRINO_URL is not set")


@pytest.mark.parametrize("path", sorted(PROJECT_ROOT.glob("assets/retail/queries/*.sql")), ids=lambda p: p.name)
def test_trino_and_duckdb_give_the_same_answer(path):
    settings = get_settings()  # the environment's lake, the one Trino's catalogs point at
    sql = path.read_text()
    trino = trino_query(settings, sql)
    with Query(settings) as q:
        duck = q.sql(sql)
    assert trino.height == duck.height > 0
    assert trino.columns == duck.columns
