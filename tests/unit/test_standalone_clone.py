"""A clone of the repository stands alone: nothing the tests, the library, the assets, the
benchmarks or the Makefile read lives outside it (a user's clone has no ``../shared`` folder next
to it, nor ``/work/shared``). Data the tests need is kept under ``tests/data/`` with its source and
licence; the architecture notes are ``docs/ARCHITECTURE.md``."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

from conftest import PROJECT_ROOT

#: what is searched: every text file under these folders, and these files
SEARCHED = ("tests", "lakehouse", "assets", "bench", "resources", "spark", "docs", "Makefile")
#: a path out of the clone into the shared folder, written literally or built with pathlib
OUTSIDE = re.compile(
    r"""\.\./shared\b"""  # ../shared/...
    r"""|/work/shared\b"""  # an absolute path on the machine it was written on
    r"""|["']shared["']\s*/"""  # "shared" / "data"
    r"""|/\s*["']shared["']"""  # parent / "shared"
    r"""|["']shared/"""  # "shared/data/..."
)
SKIPPED_SUFFIXES = {".pyc", ".gz", ".parquet", ".avro", ".db", ".sqlite", ".png", ".jpg"}


def references_outside(root: Path) -> list[str]:
    """``path:line: text`` of every line under ``root`` that reaches into the shared folder."""
    found = []
    for name in SEARCHED:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if path.suffix in SKIPPED_SUFFIXES or "__pycache__" in path.parts or path.name == Path(__file__).name:
                continue
            if path.is_relative_to(root / "bench" / "results"):
                continue  # measured output, not code
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if OUTSIDE.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_nothing_in_the_repository_reads_the_shared_folder_outside_it() -> None:
    assert references_outside(PROJECT_ROOT) == []


def test_the_pattern_catches_each_way_of_writing_such_a_path(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "a.py").write_text(
        'A = ROOT.parent / "shared" / "data"\n'
        "B = Path(__file__).parents[3] / 'shared'\n"
        'C = "../shared/ARCHITECTURE.md"\n'
        'D = "/work/shared/data/x.gz"\n'
        'E = "shared/data/x.gz"\n'
        "F = SHARED_DATA / 'x'  # a name is not a path\n"
        "G = 'shared demo lake'\n"
    )
    (tmp_path / "Makefile").write_text("data:\n\tcp ../shared/data/x .\n")
    assert [line.split(":")[0:2] for line in references_outside(tmp_path)] == [
        ["tests/a.py", "1"],
        ["tests/a.py", "2"],
        ["tests/a.py", "3"],
        ["tests/a.py", "4"],
        ["tests/a.py", "5"],
        ["Makefile", "2"],
    ]


def test_the_test_data_and_the_architecture_notes_are_in_the_repository() -> None:
    from conftest import SHARED_DATA, TEST_DATA

    assert TEST_DATA == SHARED_DATA == PROJECT_ROOT / "tests" / "data"
    log = TEST_DATA / "apache_logs" / "apache_logs.gz"
    # the file its README describes, byte for byte, with its licence next to it
    digest = hashlib.sha256(gzip.decompress(log.read_bytes())).hexdigest()
    assert digest == "f15c31e905f86c7b4b6ab44aee74d0a2086dce89f010187d983edea7ef0364ef"
    assert "Apache License" in (log.parent / "LICENSE").read_text()
    readme = (TEST_DATA / "README.md").read_text()
    assert "elastic/examples" in readme and "Apache-2.0" in readme and digest in readme
    architecture = (PROJECT_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert architecture.startswith("# Lakehouse architecture")
