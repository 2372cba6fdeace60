"""``torchship deploy kubernetes``: a Dockerfile and validated Kubernetes + KServe manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from torchship.cli._common import out
from torchship.cli.main import app

deploy_app = typer.Typer(
    help="Deploy served models to a cluster.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(deploy_app, name="deploy")

_EXAMPLE = (
    "Example: torchship deploy kubernetes runs/digits-cnn/artifact -o deploy/digits --replicas 3 "
    "--image registry.example.com/digits:1"
)


@deploy_app.command(epilog=_EXAMPLE)
def kubernetes(
    path: Annotated[Path, typer.Argument(help="An artifact, or a repository REPO/<model>/<version>/.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="New or empty directory to write into.")],
    replicas: Annotated[int, typer.Option(help="Pods to run (the autoscaler's minimum).")] = 2,
    max_replicas: Annotated[int | None, typer.Option(help="Autoscaler maximum (default 4x).")] = None,
    image: Annotated[str | None, typer.Option(help="Image the manifests run (default NAME:latest).")] = None,
    name: Annotated[str | None, typer.Option(help="Kubernetes object name (default: the model's).")] = None,
    runtime: Annotated[str, typer.Option(help="Runtime the pods serve with; picks bench rows.")] = "eager",
    bench: Annotated[
        Path | None,
        typer.Option(
            help="torchship bench --json results sizing the pods (default: bench.json beside the "
            "artifact; none: 2 cores, 1 GiB)."
        ),
    ] = None,
    storage_uri: Annotated[
        str | None, typer.Option(help="KServe storageUri to load the model from instead of the image.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a Dockerfile, the model and validated Kubernetes + KServe manifests to run N replicas."""
    from torchship.deploy import deploy_kubernetes

    bundle = deploy_kubernetes(
        path,
        out_dir,
        replicas=replicas,
        max_replicas=max_replicas,
        image=image,
        name=name,
        runtime=runtime,
        bench=bench,
        storage_uri=storage_uri,
    )
    names = [str(f.relative_to(out_dir)) for f in bundle.files]
    files = {name: bundle.checked.get(name, []) for name in names}
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "name": bundle.plan.name,
                    "image": bundle.plan.image,
                    "resources": bundle.plan.resources.to_kubernetes(),
                    "resources_from": bundle.plan.resources.source,
                    "files": files,
                }
            )
        )
        return
    plan = bundle.plan
    table = Table(title=f"{plan.name}: {plan.replicas} to {plan.max_replicas} replicas of {plan.image}")
    table.add_column("file")
    table.add_column("validated against")
    for file, checked in files.items():
        table.add_row(file, ", ".join(checked) or "-")
    out.print(table)
    out.print(f"resources: {bundle.plan.resources.source}")
