"""Kubernetes and KServe objects for N replicas of ``torchship serve``, built as dicts, written by PyYAML.

Every number that must agree with the server comes from the server's own settings: the
ports (``serve.server.HTTP_PORT``/``GRPC_PORT``), the drain (``DRAIN_TIMEOUT_S`` for HTTP,
then ``grpc_service.STOP_GRACE_S`` for running RPCs) and the health routes. A pod that is
told to stop first sleeps ``PRESTOP_S`` in its preStop hook, so the Service stops sending it
traffic before the server stops listening; then SIGTERM drains it. The grace period covers
the sleep, both drains and a margin, so Kubernetes never kills a pod that is still draining.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torchship.deploy.resources import Resources
from torchship.errors import ConfigError
from torchship.serve.grpc_service import STOP_GRACE_S
from torchship.serve.server import DRAIN_TIMEOUT_S, GRPC_PORT, HTTP_PORT

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
PRESTOP_S = 5  # endpoints controllers and kube-proxy need a few seconds to drop a terminating pod
KILL_MARGIN_S = 5
GRACE_PERIOD_S = int(PRESTOP_S + DRAIN_TIMEOUT_S + STOP_GRACE_S + KILL_MARGIN_S)
KSERVE_HTTP_PORT = 8080  # KServe routes to 8080 by convention (one port per predictor container)
RUN_AS_UID = 10001
CPU_UTILIZATION_PCT = 70
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Plan:
    """What to deploy: the names, the image, the fleet size and each pod's resources."""

    name: str
    image: str
    replicas: int
    max_replicas: int
    model_path: str  # inside the image
    runtime: str
    resources: Resources
    storage_uri: str | None = None  # KServe downloads the model from here to /mnt/models instead

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/component": "inference-server",
            "app.kubernetes.io/managed-by": "torchship",
        }


def object_name(raw: str) -> str:
    """A DNS-1035 label (what Service names need) made from a model name.

    Example:
        >>> object_name("Digits_CNN.v2")
        'digits-cnn-v2'
    """
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:63].rstrip("-")
    if not _DNS_LABEL.match(name):
        name = f"model-{name}"[:63].rstrip("-")
    return name


def check_name(name: str) -> str:
    if not _DNS_LABEL.match(name):
        raise ConfigError(
            f"--name {name!r} is not a valid Kubernetes name",
            fix="use lowercase letters, digits and '-', starting with a letter, at most 63",
        )
    return name


def serve_args(plan: Plan, model_path: str, http_port: int, grpc_port: int | None) -> list[str]:
    """``torchship serve`` arguments for the container (the image's entrypoint is ``torchship``)."""
    args = ["serve", model_path, "--host", "0.0.0.0", "--port", str(http_port)]
    args += ["--no-grpc"] if grpc_port is None else ["--grpc-port", str(grpc_port)]
    return args + ["--runtime", plan.runtime, "--threads", str(plan.resources.threads)]


def _probe(path: str, port: str | int, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _probes(port: str | int) -> dict[str, Any]:
    # startup allows 10 minutes of model loading and warm-up before liveness starts counting
    return {
        "startupProbe": _probe(LIVE_PATH, port, 5, 120),
        "readinessProbe": _probe(READY_PATH, port, 5, 2),
        "livenessProbe": _probe(LIVE_PATH, port, 10, 3),
    }


def _env(plan: Plan) -> list[dict[str, Any]]:
    threads = str(plan.resources.threads)
    # tokens come from a Secret the platform team creates; without it the server is open inside the cluster
    token = [
        {
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": f"{plan.name}-tokens", "key": key, "optional": True}},
        }
        for env, key in (("TORCHSHIP_TOKEN", "inference"), ("TORCHSHIP_MANAGEMENT_TOKEN", "management"))
    ]
    omp = [{"name": "OMP_NUM_THREADS", "value": threads}, {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}]
    return omp + token


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def deployment(plan: Plan) -> dict[str, Any]:
    container = {
        "name": "torchship",
        "image": plan.image,
        "args": serve_args(plan, plan.model_path, HTTP_PORT, GRPC_PORT),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "env": _env(plan),
        "resources": plan.resources.to_kubernetes(),
        **_probes("http"),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}},
        "securityContext": _container_security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": plan.name,
            "labels": plan.labels,
            "annotations": {"torchship.dev/resources-from": plan.resources.source},
        },
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": plan.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": plan.labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HTTP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_PERIOD_S,
                    "containers": [container],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_UID, "fsGroup": RUN_AS_UID},
                },
            },
        },
    }


def service(plan: Plan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": plan.name, "labels": plan.labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": plan.name},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    }


def _hpa(plan: Plan, metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": plan.name, "labels": plan.labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
            "minReplicas": plan.replicas,
            "maxReplicas": plan.max_replicas,
            "metrics": [metric],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def hpa_cpu(plan: Plan) -> dict[str, Any]:
    """Scale on CPU: works with metrics-server alone (the requests above are what 100 % means)."""
    return _hpa(
        plan,
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": CPU_UTILIZATION_PCT},
            },
        },
    )


def hpa_inflight(plan: Plan, target_per_pod: int) -> dict[str, Any]:
    """Scale on requests in flight per pod (``torchship_inflight_requests`` from /metrics).

    Needs a metrics adapter (prometheus-adapter) that serves the gauge as a Pods metric;
    docs/deploy.md has its rule. ``target_per_pod`` is the model's largest batch: at that
    many concurrent requests a pod forms full batches, beyond it requests queue.
    """
    return _hpa(
        plan,
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "torchship_inflight_requests"},
                "target": {"type": "AverageValue", "averageValue": str(target_per_pod)},
            },
        },
    )


def pod_disruption_budget(plan: Plan) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": plan.name, "labels": plan.labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": plan.name}}},
    }


def serving_runtime(plan: Plan) -> dict[str, Any]:
    """A KServe ServingRuntime running ``torchship serve`` (Open Inference Protocol v2 over HTTP)."""
    model_path = "/mnt/models" if plan.storage_uri else plan.model_path
    container = {
        "name": "kserve-container",  # the name KServe looks for
        "image": plan.image,
        "args": serve_args(plan, model_path, KSERVE_HTTP_PORT, None),
        "ports": [{"containerPort": KSERVE_HTTP_PORT, "name": "http1", "protocol": "TCP"}],
        "env": _env(plan),
        "resources": plan.resources.to_kubernetes(),
        **_probes(KSERVE_HTTP_PORT),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}},
        "securityContext": _container_security(),
    }
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": f"{plan.name}-runtime", "labels": plan.labels},
        "spec": {
            "supportedModelFormats": [{"name": "torchship", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2"],
            "multiModel": False,
            "containers": [container],
        },
    }


def inference_service(plan: Plan) -> dict[str, Any]:
    model: dict[str, Any] = {
        "modelFormat": {"name": "torchship", "version": "1"},
        "runtime": f"{plan.name}-runtime",
        "protocolVersion": "v2",
        "resources": plan.resources.to_kubernetes(),
    }
    if plan.storage_uri:
        model["storageUri"] = plan.storage_uri
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": plan.name, "labels": plan.labels},
        "spec": {
            "predictor": {
                "minReplicas": plan.replicas,
                "maxReplicas": plan.max_replicas,
                "terminationGracePeriodSeconds": GRACE_PERIOD_S,
                "model": model,
            }
        },
    }
