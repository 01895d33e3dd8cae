"""The hostile pass (`python -m bench.hostile`) in its bounded size: thousands of crafted
requests against the API, not one answered with a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_thousands_of_hostile_requests_get_no_5xx() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.hostile", "-n", "2000", "--seed", "12"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5xx: 0" in result.stdout
    sent = re.search(r"hostile requests: (\d+)", result.stdout)
    assert sent is not None and int(sent.group(1)) == 2000
    # The pass is hostile: most requests are refused, and every kind of attack was tried.
    refused = sum(int(n) for n in re.findall(r"4\d\d=(\d+)", result.stdout))
    assert refused > 1000
    for kind in ("field", "header", "path", "query", "raw-body", "upload"):
        assert f"{kind}=" in result.stdout
