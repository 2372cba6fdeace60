"""Bearer tokens: one for inference, a separate one for the repository (management) API.

Health, server metadata and ``/metrics`` stay open so probes and scrapers need no secret.
Tokens are compared in constant time. With ``management=False`` the repository API is off.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from torchship.serve.v2 import ServeError


@dataclass(frozen=True)
class Security:
    """Who may call what.

    Args:
        inference_token: Required as ``Authorization: Bearer ...`` on model routes; None: open.
        management_token: Required on ``/v2/repository/...``; None: the inference token (if any).
        management: False answers 403 on every repository route.
    """

    inference_token: str | None = None
    management_token: str | None = None
    management: bool = True

    def check_inference(self, authorization: str | None) -> None:
        _check(self.inference_token, authorization, "inference")

    def check_management(self, authorization: str | None) -> None:
        if not self.management:
            raise ServeError(
                "the model repository API is disabled on this server",
                fix="restart without --no-management",
                status=403,
            )
        _check(self.management_token or self.inference_token, authorization, "management")


def _check(token: str | None, authorization: str | None, what: str) -> None:
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ServeError(
            f"missing or wrong bearer token for the {what} API",
            fix="send 'Authorization: Bearer <token>'",
            status=401,
            headers={"www-authenticate": "Bearer"},
        )
