"""Submit a federated run to a running Flower SuperLink with ``flwr run``.

The SuperLink (``flower-superlink``) and the SuperNodes (``flower-supernode``, each with
``--node-config "data-path='FILE'"``) are Flower's own processes; torchship writes the
Flower App that points them at its ServerApp/ClientApp and hands it to ``flwr run``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from torchship.errors import TorchshipError
from torchship.federate.config import FederatedRun
from torchship.federate.flower_app import RUN_CONFIG_KEY

_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "torchship-federate"
version = "1.0.0"
description = "torchship federated training (ServerApp/ClientApp from the installed torchship)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "torchship"

[tool.flwr.app.components]
serverapp = "torchship.federate.flower_app:server_app"
clientapp = "torchship.federate.flower_app:client_app"

[tool.flwr.app.config]
{key} = ""
"""


class DeployError(TorchshipError):
    """The run could not be handed to the SuperLink, or it failed there."""


def write_app(
    out: Path,
    run: FederatedRun,
    resume: bool,
    superlink: str,
    insecure: bool = True,
    flower_logs: bool = False,
) -> tuple[Path, Path]:
    """Write OUT/flower-app/ (pyproject + run config) and OUT/flower-home/config.toml."""
    app = out / "flower-app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(_PYPROJECT.format(key=RUN_CONFIG_KEY))
    settings = {
        "run": json.loads(run.to_json()),
        "out": str(out.resolve()),
        "resume": resume,
        "flower_logs": flower_logs,
    }
    # a JSON string is a valid TOML basic string
    (app / "run-config.toml").write_text(f"{RUN_CONFIG_KEY} = {json.dumps(json.dumps(settings))}\n")
    home = out / "flower-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "torchship"\n\n[superlink.torchship]\naddress = "{superlink}"\n'
        f"insecure = {'true' if insecure else 'false'}\n"
    )
    return app, home


def submit(
    out: str | Path,
    run: FederatedRun,
    superlink: str,
    *,
    resume: bool = False,
    timeout_s: float | None = None,
    flower_logs: bool = False,
) -> int:
    """Run ``flwr run`` against ``superlink`` (its HTTP address) and stream the server's log.

    Raises:
        DeployError: ``flwr`` is missing, or the run did not finish.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    app, home = write_app(out, run, resume, superlink, flower_logs=flower_logs)
    flwr = shutil.which("flwr") or str(Path(sys.executable).parent / "flwr")
    if not Path(flwr).exists():
        raise DeployError("the flwr command is not installed", fix="pip install 'torchship[federate]'")
    env = {**os.environ, "FLWR_HOME": str(home.resolve())}
    cmd = [flwr, "run", str(app), "torchship", "--run-config", str(app / "run-config.toml"), "--stream"]
    try:
        done = subprocess.run(cmd, env=env, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"the run on {superlink} did not finish within {timeout_s:.0f} s",
            fix="check that the SuperNodes are connected (flwr ls)",
        ) from None
    if done.returncode != 0:
        raise DeployError(
            f"flwr run exited with status {done.returncode}",
            fix=f"check that a SuperLink listens on {superlink} (flower-superlink --insecure)",
        )
    if not (out / "summary.json").is_file():
        raise DeployError(
            f"the run on {superlink} ended without writing {out / 'summary.json'}",
            fix="read the server log above; OUT must be a path on the SuperLink's machine",
        )
    return 0
