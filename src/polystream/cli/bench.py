"""`polystream bench pipeline|api|components`: the benchmarks of a source checkout.

The benchmark code lives in the repository's `bench/` folder (it is not part of the installed
package): these commands find it next to the package's sources, or in the current directory,
and run it with the arguments given (`polystream bench pipeline --help` lists them).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

import polystream

app = typer.Typer(no_args_is_help=True,
                  help="Benchmarks on the real stack (needs a source checkout: bench/).")

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                 "help_option_names": []}


def _checkout() -> Path:
    for root in (Path(polystream.__file__).resolve().parents[2], Path.cwd()):
        if (root / "bench" / "__init__.py").is_file():
            return root
    raise typer.BadParameter("no bench/ folder: run from a source checkout of polystream")


def _run(module: str, args: list[str]) -> None:
    root = str(_checkout())
    if root not in sys.path:
        sys.path.insert(0, root)
    main = importlib.import_module(module).main
    raise typer.Exit(int(main(args)))


@app.command(context_settings=_PASS_THROUGH)
def pipeline(ctx: typer.Context) -> None:
    """The whole pipeline: end-to-end and per-sink rates, open-loop freshness, workers' RSS
    and CPU, next to naive and raw-client baselines."""
    _run("bench.pipeline.run", ctx.args)


@app.command(context_settings=_PASS_THROUGH)
def api(ctx: typer.Context) -> None:
    """The write API: closed-loop maximum and open-loop latency per command, next to /healthz
    of the same process."""
    _run("bench.api.run", ctx.args)


@app.command(context_settings=_PASS_THROUGH)
def components(ctx: typer.Context) -> None:
    """Each component against a raw-client baseline (`python -m bench.run`)."""
    _run("bench.run", ctx.args)
