"""`lakehouse ingest` as users run it: what lands is what bronze holds (no token silently nulled)."""

import json

from conftest import run_cli


def test_an_ingested_csv_reads_back_exactly(tmp_path):
    home = tmp_path / "state"
    landing = tmp_path / "countries.csv"
    # Namibia's code, the old null tokens, a quoted empty string and a truly empty field
    landing.write_text('id,country,note\n1,NA,""\n2,DE,NULL\n3,,None\n4,"N/A",.\n')
    ingest = run_cli(["ingest", str(landing), "--table", "bronze.adhoc.c", "--json"], home)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    summary = json.loads(ingest.stdout)
    assert (summary["rows_read"], summary["rows_written"], summary["rows_quarantined"]) == (4, 4, 0)
    assert summary["schema"]["country"] == "string" and summary["schema"]["note"] == "string"

    query = run_cli(["query", "select id, country, note from bronze_adhoc.c order by id", "--json"], home)
    assert query.returncode == 0, query.stderr[-2000:]
    assert json.loads(query.stdout) == [
        {"id": 1, "country": "NA", "note": ""},
        {"id": 2, "country": "DE", "note": "NULL"},
        {"id": 3, "country": None, "note": "None"},
        {"id": 4, "country": "N/A", "note": "."},
    ]
