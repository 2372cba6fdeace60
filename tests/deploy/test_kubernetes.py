"""``torchship deploy kubernetes``: manifests validate offline and agree with the server they run."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest
import yaml

from torchship.deploy import deploy_kubernetes
from torchship.deploy.kubernetes import GRACE_PERIOD_S, PRESTOP_S
from torchship.deploy.resources import MIB, SERVER_HEADROOM_BYTES
from torchship.deploy.validate import validate_manifest
from torchship.errors import ConfigError
from torchship.testing import tiny_artifact

kubernetes_validate = pytest.importorskip("kubernetes_validate")
CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """RUN/artifact (a tiny cnn) and RUN/bench.json from a real, short bench run."""
    from torchship.bench import TimingConfig, bench, write_json

    artifact = tiny_artifact("cnn", path=tmp_path / "run" / "artifact")
    rows = bench(
        [artifact],
        "eager",
        [1, 4],
        threads=2,
        timing=TimingConfig(warmup=1, min_iterations=3, min_time_s=0, max_time_s=2),
    )
    write_json(tmp_path / "run" / "bench.json", rows)
    return tmp_path / "run"


def load(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out)): yaml.safe_load(p.read_text()) for p in sorted(out.glob("*/*.yaml"))}


def container(doc: dict) -> dict:
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
    return spec["containers"][0]


def test_every_manifest_validates_offline(tiny_cnn_artifact, tmp_path):
    out = tmp_path / "out"
    bundle = deploy_kubernetes(tiny_cnn_artifact.path, out, replicas=3, image="registry.example.com/tiny:1")
    docs = load(out)
    assert set(docs) == {
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/hpa.yaml",
        "kubernetes/hpa-inflight.yaml",
        "kubernetes/pdb.yaml",
        "kserve/servingruntime.yaml",
        "kserve/inferenceservice.yaml",
    }
    for file, doc in docs.items():
        if doc["kind"] in CORE_KINDS:
            for version in ("1.29", kubernetes_validate.latest_version()):
                kubernetes_validate.validate(doc, version, strict=True)
        assert validate_manifest(doc) == bundle.checked[file]
    assert docs["kserve/inferenceservice.yaml"]["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    assert docs["kubernetes/deployment.yaml"]["spec"]["replicas"] == 3
    assert (out / "artifact" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("file", "path", "value", "where"),
    [
        ("kubernetes/deployment.yaml", ["spec", "replica"], 3, "spec"),  # misspelt key
        ("kubernetes/service.yaml", ["spec", "ports", 0, "port"], "eighty", "spec/ports/0/port"),
        (
            "kserve/inferenceservice.yaml",
            ["spec", "predictor", "model", "protocolVersion"],
            2,
            "protocolVersion",
        ),
        ("kserve/inferenceservice.yaml", ["spec", "predictor", "model", "storageURI"], "s3://x", "model"),
        ("kserve/servingruntime.yaml", ["spec", "supportedModelFormats", 0, "name"], None, "name"),
    ],
)
def test_validation_refuses_broken_manifests(tiny_cnn_artifact, tmp_path, file, path, value, where):
    deploy_kubernetes(tiny_cnn_artifact.path, tmp_path / "out")
    doc = load(tmp_path / "out")[file]
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=where):
        validate_manifest(doc)


def test_probes_ports_and_drain_agree_with_the_server(run_dir, tmp_path):
    import typer

    from torchship.cli.main import _register, app
    from torchship.serve.grpc_service import STOP_GRACE_S
    from torchship.serve.server import DRAIN_TIMEOUT_S, serve

    out = tmp_path / "out"
    deploy_kubernetes(run_dir / "artifact", out)
    docs = load(out)
    _register()
    serve_command = typer.main.get_command(app).commands["serve"]
    for file in ("kubernetes/deployment.yaml", "kserve/servingruntime.yaml"):
        c = container(docs[file])
        params = serve_command.make_context("serve", list(c["args"][1:])).params  # parsed by the real CLI
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert params["host"] == "0.0.0.0"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = c[probe]["httpGet"]["port"]
            assert ports.get(port, port) == params["port"]  # a named port or a number
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert params["threads"] == int(next(e["value"] for e in c["env"] if e["name"] == "OMP_NUM_THREADS"))
        if file.startswith("kubernetes"):
            assert (ports["http"], ports["grpc"]) == (params["port"], params["grpc_port"])
        else:
            assert params["no_grpc"]
            assert list(ports.values()) == [params["port"]]
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRESTOP_S)]
    service_ports = {p["name"]: p for p in docs["kubernetes/service.yaml"]["spec"]["ports"]}
    assert {p["targetPort"] for p in service_ports.values()} == {"http", "grpc"}
    assert (service_ports["http"]["port"], service_ports["grpc"]["port"]) == (8000, 8001)
    # the server really drains for DRAIN_TIMEOUT_S, and the pod is given the preStop sleep plus both drains
    assert inspect.signature(serve).parameters["drain_timeout_s"].default == DRAIN_TIMEOUT_S
    grace = docs["kubernetes/deployment.yaml"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == GRACE_PERIOD_S
    assert grace > PRESTOP_S + DRAIN_TIMEOUT_S + STOP_GRACE_S
    assert docs["kserve/inferenceservice.yaml"]["spec"]["predictor"]["terminationGracePeriodSeconds"] == grace


@pytest.mark.anyio
async def test_probe_paths_answer_on_the_served_artifact(tiny_cnn_artifact, tmp_path):
    import anyio
    import httpx

    from torchship.serve import create_app

    deploy_kubernetes(tiny_cnn_artifact.path, tmp_path / "out")
    c = container(load(tmp_path / "out")["kubernetes/deployment.yaml"])
    app = create_app(tiny_cnn_artifact.path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            for _ in range(400):
                if (await client.get(c["readinessProbe"]["httpGet"]["path"])).status_code == 200:
                    break
                await anyio.sleep(0.05)
            else:
                raise TimeoutError("never ready")
            assert (await client.get(c["livenessProbe"]["httpGet"]["path"])).status_code == 200
            assert (await client.get(c["startupProbe"]["httpGet"]["path"])).status_code == 200
            metrics = (await client.get("/metrics")).text
    inflight = load(tmp_path / "out")["kubernetes/hpa-inflight.yaml"]["spec"]["metrics"][0]["pods"]["metric"]
    assert f"# TYPE {inflight['name']} gauge" in metrics


def test_resources_come_from_the_bench_beside_the_artifact(run_dir, tmp_path):
    rows = json.loads((run_dir / "bench.json").read_text())["results"]
    peak = max(r["peak_rss_bytes"] for r in rows)
    bundle = deploy_kubernetes(run_dir / "artifact", tmp_path / "out")
    deployment = load(tmp_path / "out")["kubernetes/deployment.yaml"]
    resources = container(deployment)["resources"]
    memory_mib = math.ceil((int(peak * 1.25) + SERVER_HEADROOM_BYTES) / MIB)
    assert resources == {
        "requests": {"cpu": "3", "memory": f"{memory_mib}Mi"},
        "limits": {"memory": f"{2 * memory_mib}Mi"},
    }
    source = deployment["metadata"]["annotations"]["torchship.dev/resources-from"]
    assert "bench.json: eager peak RSS" in source
    assert bundle.plan.resources.threads == 2  # what the bench ran with
    with pytest.raises(ConfigError, match="no measured row for runtime 'onnxruntime'.*it has: eager"):
        deploy_kubernetes(run_dir / "artifact", tmp_path / "out2", runtime="onnxruntime")


def test_without_bench_results_the_defaults_say_so(tiny_cnn_artifact, tmp_path):
    deploy_kubernetes(tiny_cnn_artifact.path, tmp_path / "out")
    deployment = load(tmp_path / "out")["kubernetes/deployment.yaml"]
    assert container(deployment)["resources"]["requests"] == {"cpu": "2", "memory": "1024Mi"}
    assert deployment["metadata"]["annotations"]["torchship.dev/resources-from"].startswith("defaults")


def test_dockerfile_pins_torch_first_and_runs_as_non_root(tiny_cnn_artifact, tmp_path):
    import torch

    out = tmp_path / "out"
    deploy_kubernetes(tiny_cnn_artifact.path, out)
    lines = (out / "Dockerfile").read_text().splitlines()
    runs = [line for line in lines if line.startswith("RUN pip install")]
    assert runs[0].startswith(f"RUN pip install torch=={torch.__version__.split('+')[0]} --index-url")
    assert '"$TORCHSHIP_SPEC" torch==' in runs[1]  # the pin holds while torchship installs
    assert any(line.startswith('ARG TORCHSHIP_SPEC="torchship[serve]==') for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user == ["USER 10001"]
    assert lines.index(user[0]) > lines.index(runs[1])
    args = container(load(out)["kubernetes/deployment.yaml"])["args"]
    assert lines[-1].startswith("CMD ")
    assert json.loads(lines[-1][4:]) == args
    assert f"COPY --chown=10001:10001 artifact/ {args[1]}/" in lines
    assert (out / "wheels").is_dir()


def test_a_repository_is_served_from_models(tmp_path):
    repo = tmp_path / "repo"
    tiny_artifact("cnn", path=repo / "digits" / "1")
    tiny_artifact("mlp", shape=(16,), path=repo / "tabular" / "1")
    out = tmp_path / "out"
    bundle = deploy_kubernetes(repo, out, storage_uri="s3://models/repo", name="fleet")
    docs = load(out)
    assert container(docs["kubernetes/deployment.yaml"])["args"][1] == "/models"
    assert container(docs["kserve/servingruntime.yaml"])["args"][1] == "/mnt/models"
    assert (
        docs["kserve/inferenceservice.yaml"]["spec"]["predictor"]["model"]["storageUri"] == "s3://models/repo"
    )
    assert (out / "repository" / "tabular" / "1" / "manifest.json").is_file()
    assert bundle.plan.name == "fleet"


def test_cli_writes_and_refuses_in_one_line(run_cli, tiny_cnn_artifact, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "deploy",
        "kubernetes",
        tiny_cnn_artifact.path,
        "-o",
        out,
        "--replicas",
        "3",
        "--image",
        "registry.example.com/tiny:1",
        "--json",
    )
    assert code == 0
    report = json.loads(stdout)
    assert report["image"] == "registry.example.com/tiny:1"
    assert report["files"]["kserve/inferenceservice.yaml"] == ["KServe inferenceservice-v1beta1.json"]
    for argv, message in (
        ([tiny_cnn_artifact.path, "-o", out], "is not empty"),
        ([tiny_cnn_artifact.path, "-o", tmp_path / "o2", "--name", "Bad_Name"], "--name"),
        ([tmp_path / "tiny-cnn", "-o", tmp_path / "tiny-cnn" / "o3"], "inside"),
        ([out / "kubernetes", "-o", tmp_path / "o4"], "neither an artifact nor a model"),
    ):
        code, _, err = run_cli("deploy", "kubernetes", *argv)
        assert code == 2
        assert err.count("\n") == 1
        assert message in err
