"""`polystream chaos ...`: drills over real worker processes on the real stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from polystream.chaos.backlog import VARIANTS, run_backlog_drill
from polystream.chaos.kill import run_kill_drill
from polystream.chaos.outage import SERVERS, run_outage_drill
from polystream.chaos.poison import run_poison_drill
from polystream.chaos.rebalance import run_rebalance_drill
from polystream.chaos.redelivery import RedeliveryReport, run_redelivery_drill
from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="drills over real processes on the real stack")
console = Console()

# The options several drills take, with the same meaning in each.
FlowEvents = Annotated[int, typer.Option(min=100, help="events published during the drill")]
Published = Annotated[int, typer.Option(min=100, help="events published")]
Rate = Annotated[float, typer.Option(min=10, help="events published per second")]
Share = Annotated[float, typer.Option(min=0.0, max=1.0, help="share of records sent twice")]
Seed = Annotated[int, typer.Option()]
Workdir = Annotated[Path | None, typer.Option(help="keep event files and logs here")]


def _verdict(lines: list[str], ok: bool, *, soft_wrap: bool = False) -> None:
    """Print a drill's report; exit 1 when it failed (the drills are run by CI)."""
    for line in lines:
        console.print(line, soft_wrap=soft_wrap)
    if not ok:
        console.print("[red]failed[/]")
        raise typer.Exit(1)


@app.command()
def backlog(
    events: Annotated[int, typer.Option(min=100, help="events under test")] = 100_000,
    other_events: Annotated[int, typer.Option(min=0, help="events of another run first")] = 10_000,
    freeze: Annotated[float, typer.Option(min=1, help="seconds of each freeze")] = 35.0,
    seed: Seed = 7,
    variant: Annotated[list[str] | None, typer.Option(
        help=f"which variants (default all: {', '.join(VARIANTS)})")] = None,
    workdir: Workdir = None,
) -> None:
    """Drain a backlog fast, throttled, across a freeze and across a start-up freeze, each in
    its own deployment of `worker all`; verify each; SIGTERM a worker after a long freeze.
    Exit 1 when a variant does not verify, rejects more than 0.5% of its receipts, or does not
    exit within 30 s of SIGTERM."""
    chosen = variant or list(VARIANTS)
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise typer.BadParameter(f"unknown variant(s) {', '.join(unknown)}")
    report = run_backlog_drill(load_settings(), events=events, other_events=other_events,
                               freeze_s=freeze, seed=seed, variants=chosen, workdir=workdir,
                               log=console.print)
    console.print(report.table())
    first = report.variants[0]
    for v in report.variants[1:]:
        for key in sorted(set(first.rejected) ^ set(v.rejected)):
            who = first.name if key in first.rejected else v.name
            console.print(f"only {who} rejected {key}: "
                          f"{first.rejected.get(key) or v.rejected.get(key)}")
    bad = [v.name for v in report.variants
           if v.verify_exit != 0 or v.rejected_share > 0.005
           or (v.name == "startup-freeze" and (v.sigterm_exit_s is None
                                              or v.sigterm_exit_s > 30))]
    if bad:
        console.print(f"[red]failed: {', '.join(bad)}[/]")
        raise typer.Exit(1)


@app.command()
def kill(
    events: FlowEvents = 100_000,
    kills: Annotated[int, typer.Option(min=1, help="SIGKILLs, each followed by a restart")] = 20,
    rate: Rate = 500.0,
    seed: Seed = 11,
    workdir: Workdir = None,
) -> None:
    """SIGKILL sink and audit workers (`worker <sink>` processes) at random moments while
    events flow, restarting each at once; then verify. Exit 1 unless nothing is lost,
    duplicated or stale and every killed worker made progress again within 60 s."""
    report = run_kill_drill(load_settings(), events=events, kills=kills, rate=rate, seed=seed,
                            workdir=workdir, log=console.print)
    _verdict(report.lines(),
             report.outcome.ok and all(k.recovered_s is not None for k in report.kills))


def _redelivery(events: int, share: float, replay: bool, seed: int,
                workdir: Path | None) -> RedeliveryReport:
    return run_redelivery_drill(load_settings(), events=events, share=share, replay=replay,
                                seed=seed, workdir=workdir, log=console.print)


@app.command()
def duplicates(
    events: Published = 100_000,
    share: Share = 0.10,
    seed: Seed = 13,
    workdir: Workdir = None,
) -> None:
    """Publish events with a share of them re-sent a little later and older title versions
    sent after newer ones; drain; verify. Exit 1 unless nothing is lost, duplicated or
    stale."""
    report = _redelivery(events, share, False, seed, workdir)
    _verdict(report.lines(), report.outcome.ok)


@app.command()
def replay(
    events: Published = 100_000,
    share: Share = 0.10,
    seed: Seed = 13,
    workdir: Workdir = None,
) -> None:
    """The duplicates drill, then every sink group rewound to where it started and drained
    again into the same stores. Exit 1 unless both verify clean and no store's digest
    changed."""
    report = _redelivery(events, share, True, seed, workdir)
    _verdict(report.lines(), report.outcome.ok and report.replay_outcome is not None
             and report.replay_outcome.ok and not report.changed)


@app.command()
def rebalance(
    events: FlowEvents = 100_000,
    rate: Rate = 500.0,
    freeze: Annotated[float, typer.Option(min=1, help="seconds frozen (session: 10 s)")] = 35.0,
    seed: Seed = 17,
    workdir: Workdir = None,
) -> None:
    """Two `worker <sink>` processes per store sink; one third in, one of each pair is frozen
    (SIGSTOP) past the group's session timeout so the group rebalances under it, then
    resumed; drain; verify. Exit 1 unless nothing is lost, duplicated or stale."""
    report = run_rebalance_drill(load_settings(), events=events, rate=rate, freeze_s=freeze,
                                 seed=seed, workdir=workdir, log=console.print)
    _verdict(report.lines(), report.outcome.ok)


@app.command()
def outage(
    events: FlowEvents = 20_000,
    down: Annotated[float, typer.Option(min=1, help="seconds each server stays stopped")] = 20.0,
    rate: Rate = 150.0,
    server: Annotated[list[str] | None, typer.Option(
        help=f"which servers (default all: {', '.join(SERVERS)})")] = None,
    seed: Seed = 19,
    titles: Annotated[int, typer.Option(min=1, help="catalog size (generated first)")] = 300,
    workdir: Workdir = None,
) -> None:
    """Stop each server of this stack in turn for DOWN seconds while events flow and
    `worker all` drains them, then start it again; verify. Exit 1 unless every outage's lag
    is back to its pre-outage level within 60 s, /healthz answered within 2 s throughout, every
    read needing the stopped server answered 503 (or 200 from the cache) within 2 s, and
    nothing is lost, duplicated or stale."""
    chosen = tuple(server or SERVERS)
    unknown = sorted(set(chosen) - set(SERVERS))
    if unknown:
        raise typer.BadParameter(f"unknown server(s) {', '.join(unknown)}")
    report = run_outage_drill(load_settings(), events=events, down_s=down, rate=rate,
                              seed=seed, titles=titles, servers=chosen, workdir=workdir,
                              log=console.print)
    _verdict(report.lines(), report.outcome.ok and all(
        o.recovered_s is not None and o.healthz_ok and o.reads_ok for o in report.outages))


@app.command()
def poison(
    events: Annotated[int, typer.Option(min=100, help="valid events published during the drill")
                      ] = 20_000,
    rate: Annotated[float, typer.Option(min=10, help="valid events published per second")
                    ] = 200.0,
    rounds: Annotated[int, typer.Option(min=1, help="poison records of each kind per topic")
                      ] = 3,
    seed: Seed = 23,
    workdir: Workdir = None,
) -> None:
    """Produce poison records of eight kinds on every event topic (and three on the receipts
    topic) while valid events flow and `worker all` drains them; read the dead-letter topic;
    verify. Exit 1 unless each poison record is dead-lettered exactly once with its reason by
    the topic's primary sink, no card number is in a dead letter's headers or the audit
    index, no group took more than 10 s to commit past one, and nothing valid is lost,
    duplicated or stale."""
    report = run_poison_drill(load_settings(), events=events, rate=rate, rounds=rounds,
                              seed=seed, workdir=workdir, log=console.print)
    # The poison table is wider than a terminal's 80 columns.
    _verdict(report.lines(), report.ok, soft_wrap=True)
