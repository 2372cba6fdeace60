"""``torchship serve``: an Open Inference Protocol v2 server for an artifact or a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from torchship.cli._common import AllowImport, KeyFile, err, use_key_file
from torchship.cli.main import app

_EXAMPLE = """Example:

  torchship serve runs/digits-cnn/artifact --port 8000 --max-batch-size 32

  curl -s localhost:8000/v2/models/digits-cnn/infer -d @request.json

  (request.json as torchship quickstart writes it, a v2 body:
  {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [...]}]})
"""


@app.command(epilog=_EXAMPLE)
def serve(
    # markdown help: escape the angle brackets or they read as HTML tags and vanish
    path: Annotated[
        Path, typer.Argument(help=r"An artifact directory, or a repository REPO/\<model\>/\<version\>/.")
    ],
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    # 8001 is serve.server.GRPC_PORT, not imported here: the CLI must load without the serve extra
    grpc_port: Annotated[
        int, typer.Option(min=1, max=65535, help="TCP port of the v2 gRPC service (on --host).")
    ] = 8001,
    no_grpc: Annotated[bool, typer.Option("--no-grpc", help="Serve HTTP only.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Serve YAML (limits, per-model settings).")
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Runtime for every model (default auto: the fastest measured at load; "
            "or eager, onnxruntime, exported, ...)."
        ),
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows per batch.")] = None,
    max_queue_delay_ms: Annotated[
        float | None, typer.Option(help="Longest wait for company while another instance computes.")
    ] = None,
    instances: Annotated[
        int | None, typer.Option(help="Model instances (threads) per model version.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads per instance.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes sharing the port (default: the usable cores "
            "divided by --threads, or the core count; 1 runs one process). With N > 1 "
            "each model gets cores/N threads unless --threads says otherwise.",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open HTTP connections per worker; at the limit the server stops accepting, so "
            "clients that retry at once cost it nothing (default: the config's, none).",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="TORCHSHIP_TOKEN", help="Bearer token required for inference.")
    ] = None,
    management_token: Annotated[
        str | None,
        typer.Option(
            envvar="TORCHSHIP_MANAGEMENT_TOKEN",
            help="Bearer token for the repository API (default: --token).",
        ),
    ] = None,
    no_management: Annotated[
        bool, typer.Option("--no-management", help="Disable the repository API.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="JSON-lines access log on stderr.")] = True,
    strict_readiness: Annotated[
        bool | None,
        typer.Option(
            "--strict-readiness/--no-strict-readiness",
            help="Ready only when every startup model loaded (default: the config's, true).",
        ),
    ] = None,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], typer.Option(help="Server log level.")
    ] = "info",
    require_signature: Annotated[
        Path | None,
        typer.Option(
            "--require-signature",
            exists=True,
            dir_okay=False,
            help="Public key (PEM): refuse any artifact unsigned or not verifying against it.",
        ),
    ] = None,
    key_file: KeyFile = None,
    allow_import: AllowImport = None,
) -> None:
    """Serve models over HTTP (Open Inference Protocol v2) with dynamic batching; Ctrl-C or SIGTERM drains."""
    from torchship.serve import Security, load_serve_config
    from torchship.serve import serve as run_server
    from torchship.serve.server import default_workers

    use_key_file(key_file)  # before the check below reads the (maybe encrypted) artifact
    _check_single_artifact(path)
    cfg = load_serve_config(config).with_defaults(
        runtime=runtime,
        max_batch_size=max_batch_size,
        max_queue_delay_ms=max_queue_delay_ms,
        instances=instances,
        threads=threads,
        allow_import=allow_import or None,
        require_signature=str(require_signature.resolve()) if require_signature else None,
    )
    if not access_log:
        cfg = cfg.model_copy(update={"access_log": False})
    if strict_readiness is not None:
        cfg = cfg.model_copy(update={"strict_readiness": strict_readiness})
    if max_connections is not None:
        cfg = cfg.model_copy(update={"max_connections": max_connections})
    security = Security(
        inference_token=token, management_token=management_token, management=not no_management
    )
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        err.print(f"[yellow]warning:[/] serving on {host} without --token: anyone who can reach it may infer")
    workers = workers or default_workers(threads)
    run_server(
        path,
        host=host,
        port=port,
        config=cfg,
        security=security,
        log_level=log_level,
        grpc_port=None if no_grpc else grpc_port,
        workers=workers,
    )


def _check_single_artifact(path: Path) -> None:
    """A lone artifact that cannot load (corrupt, or weights that do not fit) stops the server starting."""
    from torchship.artifact import MANIFEST, Artifact
    from torchship.artifact.store import resolve_artifact_dir

    if (resolve_artifact_dir(path) / MANIFEST).is_file():
        art = Artifact.load(path)
        if art.manifest.architecture.name is not None:  # bring-your-own models load under the server's rules
            art.build_model()
