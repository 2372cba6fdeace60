"""``torchship serve``: an Open Inference Protocol v2 server for an artifact or a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import AllowImport, err
from torchship.cli.main import app

_EXAMPLE = """Example:

  torchship serve runs/digits-cnn/artifact --port 8000 --max-batch-size 32

  curl -s localhost:8000/v2/models/digits-cnn/infer -d '{"inputs":[{"name":"input","shape":[1,1,8,8],"datatype":"FP32","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}'
"""


@app.command(epilog=_EXAMPLE)
def serve(
    path: Annotated[Path, typer.Argument(help="An artifact directory, or a repository REPO/<model>/<version>/.")],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    config: Annotated[Path | None, typer.Option("--config", help="Serve YAML (limits, per-model settings).")]
    = None,
    runtime: Annotated[str | None, typer.Option(
        help="Runtime for every model (default auto: the fastest measured at load; or eager, onnxruntime, "
        "exported, ...).")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows per batch.")] = None,
    max_queue_delay_ms: Annotated[
        float | None, typer.Option(help="Longest wait for company while another instance computes.")
    ] = None,
    instances: Annotated[int | None, typer.Option(help="Model instances (threads) per model version.")] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads per instance.")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="TORCHSHIP_TOKEN", help="Bearer token required for inference.")
    ] = None,
    management_token: Annotated[
        str | None,
        typer.Option(envvar="TORCHSHIP_MANAGEMENT_TOKEN", help="Bearer token for the repository API "
                     "(default: --token)."),
    ] = None,
    no_management: Annotated[bool, typer.Option("--no-management", help="Disable the repository API.")] = False,
    access_log: Annotated[bool, typer.Option(help="JSON-lines access log on stderr.")] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    allow_import: AllowImport = None,
) -> None:
    """Serve models over HTTP (Open Inference Protocol v2) with dynamic batching; Ctrl-C or SIGTERM drains."""
    from torchship.serve import Security, load_serve_config, serve as run_server

    cfg = load_serve_config(config).with_defaults(
        runtime=runtime, max_batch_size=max_batch_size, max_queue_delay_ms=max_queue_delay_ms,
        instances=instances, threads=threads, allow_import=allow_import or None,
    )
    if not access_log:
        cfg = cfg.model_copy(update={"access_log": False})
    security = Security(inference_token=token, management_token=management_token, management=not no_management)
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        err.print(f"[yellow]warning:[/] serving on {host} without --token: anyone who can reach it may infer")
    err.print(f"serving {path} on http://{host}:{port} (v2 protocol; /metrics; drain with Ctrl-C or SIGTERM)")
    run_server(path, host=host, port=port, config=cfg, security=security, log_level=log_level)
