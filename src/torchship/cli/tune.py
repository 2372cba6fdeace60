"""``torchship tune``: search a training config's ``tune:`` space with Optuna."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from torchship.cli._common import AllowImport, err, out
from torchship.cli.main import app

_FINISHED = ("COMPLETE", "PRUNED", "FAIL")
_STATE_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "WAITING": "dim"}


def trials_table(rows: list[dict[str, Any]], metrics: list[str], keys: list[str], title: str):
    """Every trial: state, objective values, sampled params, epochs, time; the best row starred."""
    from rich.table import Table

    table = Table(title=title)
    for name in ["#", "state", *metrics, *keys, "epochs", "time s", "note"]:
        table.add_column(name, justify="left" if name in ("state", "note") else "right")
    for r in rows:
        style = _STATE_STYLE.get(r["state"], "")
        table.add_row(
            f"{r['number']}{' *' if r['best'] else ''}",
            f"[{style}]{r['state'].lower()}[/]" if style else r["state"].lower(),
            *(_cell(r["values"].get(m)) for m in metrics),
            *(_cell(r["params"].get(k)) for k in keys),
            _cell(r["epochs"]),
            _cell(r["duration_s"], ".1f"),
            (r["note"] or "")[:80],
        )
    return table


def _cell(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


@app.command(
    epilog="Example: torchship tune configs/digits-tune.yaml --trials 12 --jobs 2 -o runs/digits-tune"
)
def tune(
    config: Annotated[
        Path, typer.Argument(help="Training config with a tune: block (space, objective, sampler, pruner).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory: artifact/, trials/, trials.csv, study.db.")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            help="Finished trials the study should hold (tune.trials); a re-run adds only the missing ones."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds (tune.timeout_s).")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL; default sqlite:///OUT/study.db.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name in the storage; default the config's run name.")
    ] = None,
    jobs: Annotated[
        int, typer.Option(help="Trials run side by side in this many processes (cores shared out).")
    ] = 1,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: --set tune.seed=1 (repeatable).")
    ] = None,
    allow_import: AllowImport = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
) -> None:
    """Search the config's tune.space with Optuna and write the best trial's artifact to OUT/artifact.

    Re-running the same command continues the study where it stopped; several `torchship tune`
    processes given the same --storage and --study share the work.
    """
    from rich.live import Live

    from torchship.tune import load_tune, run_search

    spec = load_tune(config, set_ or [])
    metrics = [o.metric for o in spec.tune.objectives]
    keys = [p.key for p in spec.params]
    total = trials or spec.tune.trials
    show = not as_json and err.is_terminal

    def title(rows: list[dict[str, Any]]) -> str:
        done = sum(r["state"] in _FINISHED for r in rows)
        return f"{spec.train.run_name}: {done}/{total} trials finished"

    with (
        _Table(
            Live(
                trials_table([], metrics, keys, title([])), console=err, transient=True, refresh_per_second=2
            )
        )
        if show
        else _Lines(not as_json) as live
    ):
        result = run_search(
            spec,
            out_dir,
            trials=trials,
            timeout_s=timeout,
            storage=storage,
            study=study,
            jobs=jobs,
            allow_import=tuple(allow_import or ()),
            on_update=lambda rows: live.update(trials_table(rows, metrics, keys, title(rows)), rows),
        )
    if as_json:
        print(
            json.dumps(
                {
                    **result.summary,
                    "out": str(result.out),
                    "ran": result.ran,
                    "artifact": str(result.artifact) if result.artifact else None,
                },
                indent=2,
            )
        )
        return
    out.print(trials_table(result.rows, metrics, keys, f"study {result.study}: {len(result.rows)} trials"))
    if result.best_trial is None:
        out.print("[yellow]no trial completed; see the note column for why (trials.csv has every reason)")
        return
    best = next(r for r in result.rows if r["number"] == result.best_trial)
    scores = ", ".join(f"{m} {_cell(best['values'][m])}" for m in metrics)
    out.print(f"best trial {result.best_trial}: {scores}; params {json.dumps(best['params'])}")
    out.print(f"artifact: {result.artifact}  trials: {result.out / 'trials.csv'}  storage: {result.storage}")


class _Table:
    """rich's Live, redrawing the whole trials table after every finished trial."""

    def __init__(self, live: Any):
        self.live = live

    def __enter__(self) -> _Table:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def update(self, table: object, rows: list[dict[str, Any]]) -> None:
        self.live.update(table)


class _Lines:
    """Stands in for rich's Live off a terminal: one line per finished trial (none with --json)."""

    def __init__(self, enabled: bool):
        self.enabled, self.shown = enabled, set()

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, table: object, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            if self.enabled and r["state"] in _FINISHED and r["number"] not in self.shown:
                self.shown.add(r["number"])
                values = ", ".join(f"{k} {_cell(v)}" for k, v in r["values"].items() if v is not None)
                reason = f" ({r['note']})" if r["note"] else ""
                err.print(
                    f"trial {r['number']} {r['state'].lower()}{': ' + values if values else ''}{reason}",
                    soft_wrap=True,
                )
