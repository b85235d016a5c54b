"""Scopes: every tenant route declares what a key must be allowed to do (`required_scope` on the
view), and a key without that scope is refused with 403 `scope_denied`."""

from __future__ import annotations

from rest_framework import permissions

from apikeys.authentication import request_key
from apikeys.models import SCOPES
from faceportal.errors import Forbidden


def required_scope_of(view) -> str | None:
    """The view's declared scope, when it names one of SCOPES."""
    scope = getattr(view, "required_scope", None)
    return scope if scope in SCOPES else None


class HasScope(permissions.BasePermission):
    """The key must hold the view's `required_scope`. A view that declares none is refused for
    every key (closed by default): a new route cannot become reachable by any key by accident."""

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        if key is None:
            return False
        scope = required_scope_of(view)
        if scope is None:
            raise Forbidden("This route declares no scope, so no API key may call it.", code="scope_denied",
                            details={"required_scope": None})
        if not key.has_scope(scope):
            raise Forbidden(
                f"This API key lacks the '{scope}' scope this route needs.",
                code="scope_denied",
                details={"required_scope": scope, "key_scopes": list(key.scopes)},
            )
        return True
