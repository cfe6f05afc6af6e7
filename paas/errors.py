"""Typed errors carrying a user-facing message.

Every error the platform reports to a user is a ``PaasError``. Each subclass fixes the
exit code the CLI returns and the HTTP status the API answers with; the edges map
errors to those in one place each (``paas.cli.main`` and ``paas.web.api``).
"""

from __future__ import annotations


class PaasError(Exception):
    """Base class: ``message`` is shown to the user as is and should say what to do."""

    exit_code = 1
    http_status = 500
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PaasError):
    exit_code = 2
    http_status = 400
    kind = "invalid"


class Unauthorized(PaasError):
    exit_code = 4
    http_status = 401
    kind = "unauthorized"


class NotFound(PaasError):
    exit_code = 3
    http_status = 404
    kind = "not_found"


class Conflict(PaasError):
    exit_code = 5
    http_status = 409
    kind = "conflict"


class BuildFailed(PaasError):
    exit_code = 6
    http_status = 422
    kind = "build_failed"


class DeployFailed(PaasError):
    exit_code = 7
    http_status = 422
    kind = "deploy_failed"


class PlatformError(PaasError):
    """A part of the platform itself failed (runc, nginx, the network); not the user's input."""

    exit_code = 8
    http_status = 500
    kind = "platform"
