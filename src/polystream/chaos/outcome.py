"""How a drill ended: `polystream verify` over the events it published, read as lost /
duplicated / stale counts (each must be 0).

verify's samples name the kind of each difference: a row or key the events imply but the store
lacks is *lost*; one the store holds but the events do not imply (a second payment row, a
counter bumped twice) is *duplicated*; one whose fields differ (an older version won) is
*stale*. Samples are capped per part, so the counts are lower bounds: exact at 0, which is all
the drills accept. A store sink's receipt missing for an event is counted as lost too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from polystream.chaos.backlog import _receipt_statuses
from polystream.chaos.deployment import Deployment
from polystream.settings import Settings


@dataclass
class Outcome:
    verify_exit: int | None = None
    summary: str = ""
    lost: int = 0
    duplicated: int = 0
    stale: int = 0
    receipts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return (self.verify_exit == 0 and self.lost == 0 and self.duplicated == 0
                and self.stale == 0)

    def lines(self) -> list[str]:
        return [f"verify exit {self.verify_exit}: {self.summary}",
                f"lost {self.lost}, duplicated {self.duplicated}, stale {self.stale}; receipts "
                + ", ".join(f"{k} {v:,}" for k, v in sorted(self.receipts.items()))]


def judge(deployment: Deployment, settings: Settings, path: Path) -> Outcome:
    out = Outcome()
    out.receipts, _ = _receipt_statuses(settings, path)
    out.lost += out.receipts["missing"]
    done = subprocess.run([sys.executable, "-m", "polystream", "verify", "--json", str(path)],
                          env=deployment.env(), capture_output=True, text=True, timeout=900)
    out.verify_exit = done.returncode
    try:
        result = json.loads(done.stdout)
    except ValueError:
        out.summary = (done.stdout + done.stderr)[-500:]
        return out
    if "error" in result:
        out.summary = str(result["error"])
        return out
    bad = []
    for part in result.get("parts", []):
        for sample in part["samples"]:
            kind = sample.split(" ", 1)[0]
            if kind == "missing":
                out.lost += 1
            elif kind == "unexpected":
                out.duplicated += 1
            else:
                out.stale += 1
        if not part["ok"]:
            bad.append(f"{part['store']}/{part['part']}: {'; '.join(part['samples'])[:300]}")
    out.summary = "; ".join(bad) if bad else f"{result['events']:,} events, all parts same"
    return out
