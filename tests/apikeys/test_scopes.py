"""Scopes: every tenant route declares the scope it needs, and a key is let through exactly where it
holds that scope. The matrix is generated from the URL conf, so a new tenant route that declares no
scope fails here (and is refused to every key meanwhile)."""

from __future__ import annotations

import itertools
import re

import pytest
from channels.db import database_sync_to_async
from django.urls import URLPattern
from rest_framework.test import APIRequestFactory

from apikeys.models import SCOPES
from apikeys.permissions import required_scope_of
from apikeys.services import api_key_issue
from apikeys.tenant_api import OrganizationScopedApi
from apikeys.websocket import CLOSE_SCOPE_DENIED
from faceportal.urls import urlpatterns
from tests.conftest import key_client
from tests.websocket import close_of, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

MISSING_ID = 987654321
METHODS = ("get", "post", "put", "patch", "delete")
# Every non-empty set of scopes a key can hold.
SCOPE_SETS = [set(combo) for size in range(1, len(SCOPES) + 1) for combo in itertools.combinations(SCOPES, size)]


def tenant_routes() -> list[tuple[str, type[OrganizationScopedApi]]]:
    """(route, view class) of every tenant data route in the URL conf (slash aliases left out:
    they call the same views)."""
    routes = []
    for pattern in urlpatterns:
        view_class = getattr(pattern.callback, "view_class", None)
        if isinstance(pattern, URLPattern) and view_class and issubclass(view_class, OrganizationScopedApi):
            routes.append((str(pattern.pattern), view_class))
    return routes


# A value for each path converter that names nothing: the call is let through (or refused) before
# any lookup, so a missing id answers 404 only once the scope allowed it.
MISSING = {"int": str(MISSING_ID), "uuid": "00000000-0000-0000-0000-000000000000", "str": "missing",
           "slug": "missing", "path": "missing"}


def concrete(route: str, organization: str) -> str:
    path = route.replace("<str:organization>", organization)
    return "/" + re.sub(r"<(\w+):\w+>", lambda found: MISSING[found.group(1)], path)


def calls(route: str, view_class) -> list[tuple[str, str]]:
    return [(method, concrete(route, "acme")) for method in METHODS if hasattr(view_class, method)]


def test_every_tenant_route_declares_a_known_scope():
    routes = tenant_routes()
    assert len(routes) >= 15, routes  # the URL conf was read, not an empty list
    undeclared = [route for route, view_class in routes if required_scope_of(view_class) is None]
    assert undeclared == [], f"tenant routes without a required_scope in {SCOPES}: {undeclared}"


def test_the_documented_choices():
    """recognise/verify need `recognize`, register and enrolment jobs `enrol`, everything else `manage`."""
    by_route = {route: view_class.required_scope for route, view_class in tenant_routes()}
    assert by_route["recognize/<str:organization>"] == "recognize"
    assert by_route["verify/<str:organization>"] == "recognize"
    assert by_route["register/<str:organization>"] == "enrol"
    assert by_route["orgs/<str:organization>/enrolment-jobs"] == "enrol"
    assert by_route["orgs/<str:organization>/enrolment-jobs/<int:job_id>"] == "enrol"
    others = {scope for route, scope in by_route.items()
              if route.split("/")[0] not in {"recognize", "verify", "register"} and "/enrolment-jobs" not in route}
    assert others == {"manage"}


def test_a_view_without_a_scope_is_refused_to_every_key(make_org):
    class Undeclared(OrganizationScopedApi):
        def get(self, request, organization):  # pragma: no cover - must never run
            raise AssertionError("reached a view that declares no scope")

    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="all", scopes=list(SCOPES))
    request = APIRequestFactory().get("/x", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    response = Undeclared.as_view()(request, organization="acme")
    assert response.status_code == 403
    assert response.data["error"]["code"] == "scope_denied"


def test_each_route_for_each_set_of_scopes_is_allowed_or_refused_naming_the_scope(make_org):
    org = make_org("acme")
    clients = {
        frozenset(scopes): key_client(api_key_issue(organization=org, user="alice", name="-".join(sorted(scopes)),
                                                    scopes=sorted(scopes)))
        for scopes in SCOPE_SETS
    }
    checked = 0
    for route, view_class in tenant_routes():
        needed = view_class.required_scope
        for method, path in calls(route, view_class):
            for scopes, client in clients.items():
                kwargs = {} if method == "get" else {"data": {}, "format": "json"}
                response = getattr(client, method)(path, **kwargs)
                body = response.json() if response.get("Content-Type", "").startswith("application/json") else {}
                refused = response.status_code == 403 and body.get("error", {}).get("code") == "scope_denied"
                if needed in scopes:
                    # Let through: whatever the empty body or missing id gives, never a scope refusal.
                    assert not refused, (method, path, sorted(scopes), body)
                    assert response.status_code not in {401, 403} and response.status_code < 500, (
                        method, path, response.status_code, body)
                else:
                    assert refused, (method, path, sorted(scopes), response.status_code, body)
                    assert body["error"]["details"]["required_scope"] == needed
                    assert needed in body["error"]["message"]
                checked += 1
    assert checked >= 18 * len(SCOPE_SETS)


def test_another_organisations_key_hears_forbidden_not_which_scope_is_missing(make_org):
    """The organisation is checked before the scope: a foreign key learns nothing about scopes."""
    make_org("acme")
    globex = make_org("globex")
    client = key_client(api_key_issue(organization=globex, user="bob", name="r", scopes=["recognize"]))
    for path in ("/orgs/acme/people", "/orgs/no-such-org/people"):
        response = client.get(path)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"



@pytest.mark.parametrize("scopes", [s for s in SCOPE_SETS if "recognize" not in s], ids=lambda s: "+".join(sorted(s)))
async def test_the_socket_refuses_a_key_without_recognize_with_its_own_close_code(make_org, scopes):
    org = await database_sync_to_async(make_org)("acme")
    issued = await database_sync_to_async(api_key_issue)(organization=org, user="alice", name="k",
                                                         scopes=sorted(scopes))
    closed = await close_of(socket_path(issued))
    assert closed["code"] == CLOSE_SCOPE_DENIED
    final = closed["sent_before"][-1]
    assert '"scope_denied"' in final["text"] and "recognize" in final["text"]


def test_the_schema_names_each_operations_scope(anon_client):
    import yaml

    response = anon_client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    scopes = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "x-required-scope" in operation:
                scopes[(method, path)] = operation["x-required-scope"]
                assert f"`{operation['x-required-scope']}`" in operation["description"] or (
                    operation["x-required-scope"] == "staff" and "Staff only" in operation["description"])
    for route, view_class in tenant_routes():
        path = "/" + re.sub(r"<\w+:(\w+)>", r"{\1}", route)
        for method in METHODS:
            if hasattr(view_class, method):
                assert scopes.get((method, path)) == view_class.required_scope, (method, path)
    for method, path in [("get", "/orgs"), ("delete", "/orgs/{organization}"),
                         ("get", "/orgs/{organization}/api-keys"),
                         ("post", "/orgs/{organization}/api-keys/{key_id}/rotate")]:
        assert scopes.get((method, path)) == "staff", (method, path)
