"""Every error a user can see, with a stable dotted code and an HTTP status.

The wire body is always ``{"error": {"code": ..., "message": ..., "details": ...}}``; the
client maps ``code`` back to the class through :func:`error_class_for_code`.

CortexError                      cortex (500)
├── SpecError                    spec.invalid (400): a cortex.yaml that does not validate
├── NotDeployedError             api.not_deployed (404)
├── NotFoundError                resource.not_found (404)
├── ConflictError                api.conflict (409): kind change, "is updating", used by a splitter
├── InvalidRequestError          request.invalid (400)
├── AuthMissingError             auth.missing (401)
├── AuthForbiddenError           auth.forbidden (403)
├── VersionMismatchError         version.mismatch (400)
├── UnsupportedOperationError    operation.unsupported (400)
└── ConnectionFailedError        client.connection (503): the operator cannot be reached
"""

from __future__ import annotations

from typing import Any, ClassVar


class CortexError(Exception):
    """Base of every error we raise on purpose; ``message`` is what the user reads."""

    code: ClassVar[str] = "cortex"
    status_code: ClassVar[int] = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class SpecError(CortexError):
    code = "spec.invalid"
    status_code = 400


class NotDeployedError(CortexError):
    code = "api.not_deployed"
    status_code = 404


class NotFoundError(CortexError):
    code = "resource.not_found"
    status_code = 404


class ConflictError(CortexError):
    code = "api.conflict"
    status_code = 409


class InvalidRequestError(CortexError):
    code = "request.invalid"
    status_code = 400


class AuthMissingError(CortexError):
    code = "auth.missing"
    status_code = 401


class AuthForbiddenError(CortexError):
    code = "auth.forbidden"
    status_code = 403


class VersionMismatchError(CortexError):
    code = "version.mismatch"
    status_code = 400


class UnsupportedOperationError(CortexError):
    code = "operation.unsupported"
    status_code = 400


class ConnectionFailedError(CortexError):
    code = "client.connection"
    status_code = 503


_BY_CODE: dict[str, type[CortexError]] = {
    cls.code: cls
    for cls in (
        CortexError,
        SpecError,
        NotDeployedError,
        NotFoundError,
        ConflictError,
        InvalidRequestError,
        AuthMissingError,
        AuthForbiddenError,
        VersionMismatchError,
        UnsupportedOperationError,
        ConnectionFailedError,
    )
}


def error_class_for_code(code: str) -> type[CortexError]:
    """The class for a wire code; unknown codes map to the base class."""
    return _BY_CODE.get(code, CortexError)


def error_from_wire(body: dict[str, Any]) -> CortexError:
    """Rebuild the exception an operator sent; ``body`` is the whole response JSON."""
    err = body.get("error") or {}
    cls = error_class_for_code(str(err.get("code", "")))
    return cls(str(err.get("message", "unknown error")), details=err.get("details"))
