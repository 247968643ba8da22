"""The long fault-injection run (``make faults``): kill -9 at random moments of each table
operation and of an erasure, ``--trials`` times (default 50) per operation, format and storage (local folder, and
S3 on a SeaweedFS server started here). Writes ``bench/results/faults-<date>.md`` and exits 1 if
any trial left a table that does not open, that holds neither the before nor the after state, or
that a rerun did not bring to the after state. The harness is ``tests/faults.py``; CI runs a few
trials per case (``tests/integration/test_fault_injection.py``).

    python -m bench.faults [--trials N] [--ops merge,append] [--formats delta] [--storage local]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(TESTS))
    import faults
    import s3server

    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--ops", default=",".join([*faults.OPERATIONS, faults.ERASURE]))
    parser.add_argument("--formats", default="delta,iceberg")
    parser.add_argument("--storage", default="local,s3")
    parser.add_argument("--report", type=Path, help="the report's path (default bench/results/faults-<date>.md)")
    args = parser.parse_args(argv)

    rows: list[dict[str, object]] = []
    failures: list[str] = []
    server = s3server.start() if "s3" in args.storage.split(",") else None
    started = time.perf_counter()
    try:
        for storage in args.storage.split(","):
            for fmt in args.formats.split(","):
                for op in args.ops.split(","):
                    home = tempfile.mkdtemp(prefix="faults-")
                    env = {**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": fmt}
                    if storage == "s3":
                        assert server is not None
                        env.update(server.env(f"faults-{uuid.uuid4().hex[:8]}"))
                        # a lake on S3 hashes personal data with a key every host shares
                        env.setdefault("LAKEHOUSE_MASKING_KEY", secrets.token_hex(32))
                    t0 = time.perf_counter()
                    if op == faults.ERASURE:
                        outcome = faults.run_erasure_trials(args.trials, env, Path(home), seed=len(rows))
                    else:
                        outcome = faults.run_trials(op, args.trials, env, seed=len(rows))
                    row = {"storage": storage, "format": fmt, **outcome.row()}
                    row["wall_s"] = round(time.perf_counter() - t0, 1)
                    rows.append(row)
                    failures += [f"{storage}/{fmt}: {f}" for f in outcome.failures]
                    print(row, flush=True)
    finally:
        if server is not None:
            server.stop()
    report = _report(rows, failures, time.perf_counter() - started, args.trials, args.report)
    print(f"written to {report}")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


def _report(
    rows: list[dict[str, object]], failures: list[str], seconds: float, trials: int, path: Path | None = None
) -> Path:
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = path or out / f"faults-{dt.datetime.now(dt.UTC):%Y-%m-%d}.md"
    head = ["storage", "format", "op", "trials", "before", "after", "finished_before_kill", "failures", "op_seconds"]
    erasure_head = [*head[:4], *faults_states(), *head[6:]]
    erasures = [r for r in rows if r["op"] == "erasure"]
    rows = [r for r in rows if r["op"] != "erasure"]
    lines = [
        f"# Fault injection {dt.datetime.now(dt.UTC):%Y-%m-%d}",
        "",
        f"kill -9 at a uniform random moment in [0, 1.3 x the operation's time], {trials} trials per case; "
        f"total {sum(int(str(r['trials'])) for r in rows)} trials in {seconds / 60:.1f} min. `before`/`after`: the "
        "state the killed table was found in; `finished_before_kill`: the operation had already returned. "
        "Every table opened and every rerun converged unless `failures` says otherwise.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    if erasures:
        lines += [
            "",
            "## Erasure",
            "",
            "kill -9 of `erase` (tests/erasure_lake.py: landing file, bronze and quarantine, silver customers, "
            "orders and shipments) at a uniform random moment (every other trial: counted from the moment its "
            "journal appears, within the part after its plan, which only reads), each trial in a lake of its own; "
            "where the kill left "
            "it: `not_started` (no journal yet), `pending` (a journal to resume), `finished` (certified). After "
            "each kill every table opened, the pending journal held no clear value, and a rerun finished: subject "
            "gone everywhere, the other customer kept, certificates verified, no pool slot held — unless "
            "`failures` says otherwise.",
            "",
            "| " + " | ".join(erasure_head) + " |",
            "|" + "---|" * len(erasure_head),
        ]
        lines += ["| " + " | ".join(str(r[h]) for h in erasure_head) + " |" for r in erasures]
    if failures:
        lines += ["", "## failures", ""] + [f"- {f}" for f in failures]
    path.write_text("\n".join(lines) + "\n")
    return path


def faults_states() -> tuple[str, ...]:
    sys.path.insert(0, str(TESTS))
    import faults

    return faults.ERASURE_STATES


if __name__ == "__main__":
    raise SystemExit(main())
