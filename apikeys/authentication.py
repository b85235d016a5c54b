"""DRF authentication by API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) and the
organisation checks every data route shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from axes.backends import AxesStandaloneBackend
from rest_framework import authentication, exceptions, permissions

from apikeys.services import AuthenticatedKey, api_key_verify
from apikeys.throttling import FailedAuthBudget, remember_staff_network


class APIKeyPrincipal:
    """The `request.user` of a key-authenticated request: not a Django user, never staff."""

    is_authenticated = True
    is_staff = False
    is_superuser = False
    is_active = True

    def __init__(self, key: AuthenticatedKey):
        self.key = key
        self.username = key.user
        self.pk = None

    def __str__(self) -> str:
        return f"{self.key.organization_slug}/{self.key.name}"


def raw_key_from_headers(meta: dict[str, Any]) -> str | None:
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = meta.get("HTTP_X_API_KEY", "").strip()
    return api_key or None


def explain_unusable_authorization(header: str) -> None:
    """Say what is wrong with an Authorization header that carries no usable scheme, rather than
    the generic "credentials were not provided". Basic (staff) is left to its own class."""
    header = header.strip()
    if not header:
        return
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        return
    if not value.strip():
        if scheme.lower() == "bearer":
            raise exceptions.NotAuthenticated("The Authorization header says 'Bearer' but carries no key.")
        # Checked for shape only, never against the database: nothing is learnt about the value.
        raise exceptions.NotAuthenticated(
            "The Authorization header is missing its scheme: send 'Authorization: Bearer <key>' "
            "(or the key alone in an 'X-API-Key' header)."
        )
    raise exceptions.NotAuthenticated(
        f"Unsupported Authorization scheme '{scheme[:20]}': send 'Authorization: Bearer <key>'."
    )


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw_key = raw_key_from_headers(request.META)
        if raw_key is None:
            explain_unusable_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
            return None
        budget = reserve_attempt(FailedAuthBudget.for_request(request))
        with released_unless_refused(budget):
            identity = api_key_verify(raw_key=raw_key)
            if identity is None:  # the reservation stays taken: that is the failure, counted
                raise exceptions.AuthenticationFailed("Invalid, expired, revoked or unknown API key.")
        return APIKeyPrincipal(identity), identity

    def authenticate_header(self, request) -> str:
        return self.keyword


def reserve_attempt(budget: FailedAuthBudget) -> FailedAuthBudget:
    """Take this attempt's place in `budget`, or refuse with 429.

    Before the credential is looked at, so a blocked client learns nothing about what it presents
    and costs no database query or password hash; atomic, so concurrent guesses cannot overshoot.
    """
    if not budget.reserve():
        raise exceptions.Throttled(
            wait=budget.wait(), detail="Too many failed authentication attempts from this address; try again later."
        )
    return budget


@contextmanager
def released_unless_refused(budget: FailedAuthBudget) -> Iterator[None]:
    """Give the reservation back unless the credential was refused (that refusal is the failure).

    Any other error (an unreachable database answers 503) is no failed guess and must not spend
    the client's budget.
    """
    try:
        yield
    except exceptions.AuthenticationFailed:
        raise
    except BaseException:
        budget.release()
        raise
    budget.release()


class ThrottledBasicAuthentication(authentication.BasicAuthentication):
    """Staff basic auth: the address's failed-attempt budget (as API keys), and the username's."""

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("basic "):
            return None
        # Throttled before the password hasher runs: each wrong guess costs a deliberately slow hash.
        budget = reserve_attempt(FailedAuthBudget.for_request(request))
        with released_unless_refused(budget):
            return super().authenticate(request)

    def authenticate_credentials(self, userid, password, request=None):
        # PostgreSQL refuses NUL in text (a 500); such a credential can never be valid anyway.
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        # Guesses at one username from many networks share its budget; a network that signed in as
        # that user before is not held by it (the victim keeps working, the sources are refused).
        budget = FailedAuthBudget.for_username(request, username=userid)
        if not budget.reserve():
            raise exceptions.Throttled(
                wait=budget.wait(), detail="Too many failed sign-ins for this user; try again later."
            )
        with released_unless_refused(budget):
            result = super().authenticate_credentials(userid, password, request)
        remember_staff_network(request, username=userid)
        return result

class AdminLoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lock-out check (settings.AUTHENTICATION_BACKENDS, before ModelBackend).

    A call to `authenticate()` without a request (a test client's `login()`, a script) comes from no
    client that could be locked out, so it passes here instead of raising as axes does.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def request_key(request) -> AuthenticatedKey | None:
    return request.auth if isinstance(request.auth, AuthenticatedKey) else None


def check_api_auth_body(*, key: AuthenticatedKey, api_auth: dict[str, str] | None) -> None:
    """A body's optional `api_auth` (validated by `ApiAuthSerializer`) must name the key that
    authenticated the request."""
    if api_auth is None:
        return
    if api_auth["user"] != key.user or api_auth["api_key_name"] != key.name:
        raise exceptions.PermissionDenied("'api_auth' does not match the API key used.")


class HasOrganizationKey(permissions.BasePermission):
    """The URL's organisation must be the key's own. Same answer whether or not the org exists."""

    message = "This API key may not access that organization."

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        if key is None:
            return False
        return key.organization_slug == view.kwargs.get("organization")
