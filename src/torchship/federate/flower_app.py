"""The Flower App a deployment runs: ``flwr run`` ships it to the SuperLink, which starts the
ServerApp; every SuperNode starts the ClientApp for its messages.

    [tool.flwr.app.components]
    serverapp = "torchship.federate.flower_app:server_app"
    clientapp = "torchship.federate.flower_app:client_app"

The run config carries one key, ``torchship``: a JSON object with the run (training config
+ ``federate:``), the output directory on the server's machine, and ``resume``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from rich.console import Console

from torchship.data import load_data
from torchship.federate.client import client_app
from torchship.federate.config import FederatedRun
from torchship.federate.server import run_server

RUN_CONFIG_KEY = "torchship"

server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """Run every round against the SuperNodes connected to this SuperLink."""
    settings = json.loads(str(context.run_config[RUN_CONFIG_KEY]))
    logging.getLogger("flwr").setLevel(logging.INFO if settings.get("flower_logs") else logging.WARNING)
    run = FederatedRun.from_dict(settings["run"])
    # the server holds only its held-out evaluation data (the config's dataset); clients bring theirs
    data = load_data(run.train.data)
    console = Console(stderr=True, force_terminal=False, width=160)
    run_server(grid, run, data, Path(settings["out"]), resume=bool(settings.get("resume")), console=console)


__all__ = ["client_app", "server_app"]
