"""Deploy: a Dockerfile and validated Kubernetes + KServe manifests for a fleet of ``torchship serve``.

bundle = deploy_kubernetes("runs/digits-cnn/artifact", "deploy/digits", replicas=3)
"""

from torchship.deploy.bundle import Bundle, deploy_kubernetes

__all__ = ["Bundle", "deploy_kubernetes"]
