"""Each benchmark runs in its --quick form and ends with its JSON line (figures are not judged
here: this machine is shared; the point is that the benchmark works)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_benchmark_quick(postgres_server_url: str) -> None:
    env = dict(os.environ, LEETGAMING_BENCH_DATABASE_URL=postgres_server_url)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ledger.py"), "--quick", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "pg_transfers_per_s",
        "pg_p99_ms",
        "pg_hot_transfers_per_s",
        "sqlite_transfers_per_s",
        "pgbench_tps",
    ):
        assert figures[key] > 0, key
    assert set(figures["by_clients"]) >= {f"postgres_plain_{n}" for n in (1, 16, 64)}
