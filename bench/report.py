"""``python -m bench.report [RESULT.json]``: a result file as the Markdown table of
docs/benchmarks.md (the newest file in bench/results when none is given)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import RESULTS_DIR


def markdown(document: dict[str, Any]) -> str:
    machine = document["machine"]
    lines = [
        f"Run `{document['run_id']}`, {document['started_at'][:16].replace('T', ' ')} UTC, "
        f"{document['reps']} repetitions per variant{' (quick)' if document['quick'] else ''}, "
        f"{document['duration_s']:.0f} s in all; {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, Python {machine['python']}; load average "
        f"{machine['loadavg_start'][0]:.1f} at the start, {machine['loadavg_end'][0]:.1f} at "
        "the end.",
        "",
        "| benchmark | n / rep | variant | median | spread | CPU bench / machine "
        "| ours / this | paired |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for bench in document["benchmarks"]:
        ours = bench["ours_median"]
        n = next(iter(bench["size"].values()), "")
        for index, variant in enumerate(bench["variants"]):
            median = variant["median_rate"]
            paired = ""
            if variant["role"] == "baseline" and bench.get("paired_ratio") is not None:
                paired = f"{bench['paired_ratio']:.2f}"
            if variant["role"] == "ours" or not ours or not median:
                ratio = ""
            else:
                ratio = (
                    f"**{ours / median:.2f}**"
                    if variant["role"] == "baseline"
                    else (f"{ours / median:.2f}")
                )
            lines.append(
                f"| {bench['name'] if index == 0 else ''} "
                f"| {f'{n:,}' if index == 0 and isinstance(n, int) else ''} "
                f"| {variant['name']} "
                f"| {median:,.0f} {bench['unit']} "
                f"| ±{variant['spread'] / 2:.0%} "
                f"| {variant['cpu_share']:.0%} / {variant['machine_cpu_share']:.0%} "
                f"| {ratio} | {paired} |"
            )
        if bench["error"] or bench["problems"]:
            lines.append(
                f"| | | **failed**: {bench['error'] or '; '.join(bench['problems'])} | | | | | |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        path = Path(args[0])
    else:
        found = sorted(RESULTS_DIR.glob("*.json"))
        if not found:
            print(f"no result in {RESULTS_DIR}; run `python -m bench.run` first", file=sys.stderr)
            return 1
        path = found[-1]
    print(markdown(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
