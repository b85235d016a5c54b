"""The failed-authentication budget is atomic and per network, with a global ceiling.

Real Redis (a private redis-server) and the local-memory cache both: the counters are cache.incr
and cache.add, so the bound holds on either. Requests go through the whole Django stack, in
threads released together by a barrier.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"


@pytest.fixture(params=["redis", "locmem"])
def counting_cache(request, settings):
    if request.param == "redis":
        request.getfixturevalue("private_redis")
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                       "LOCATION": "auth-budget-tests"}}
    cache.clear()  # the autouse clean-up cleared the cache configured before this switch
    yield request.param
    cache.clear()


def concurrent_statuses(attempts: list[dict]) -> list[int]:
    """Send each request (APIClient.get kwargs) from its own thread, all released at once."""
    barrier = threading.Barrier(len(attempts))

    def send(kwargs: dict) -> int:
        try:
            barrier.wait(timeout=30)
            return APIClient().get(PEOPLE, **kwargs).status_code
        finally:
            connections.close_all()  # this thread's connection, so the test database can be dropped

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return list(pool.map(send, attempts))


def test_32_concurrent_bad_keys_from_one_address_get_at_most_the_limit_of_401s(
    counting_cache, rates, make_org, make_key
):
    rates(auth_failure="10/min")
    prefix = make_key(make_org("acme")).api_key.prefix
    attempts = [
        # Half guess a real prefix, half unknown ones: both spend the same budget.
        {"HTTP_AUTHORIZATION": f"Bearer fp_{prefix if i % 2 else f'{i:012x}'}_guess{i}", "REMOTE_ADDR": "192.0.2.7"}
        for i in range(32)
    ]
    statuses = concurrent_statuses(attempts)
    assert sorted(set(statuses)) == [401, 429], statuses
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 22


def test_rotating_addresses_across_127_8_is_bounded_by_the_global_budget(counting_cache, rates, make_org, make_key):
    rates(auth_failure="5/min", auth_failure_global="20/min")
    organization = make_org("acme")
    valid, active = make_key(organization), make_key(organization, name="active")
    assert key_client(active).get(PEOPLE).status_code == 200  # in use: the cache holds it
    client = APIClient()
    statuses = [
        client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{n:012x}_guess", REMOTE_ADDR=f"127.{n // 256}.{n % 256}.9")
        .status_code
        for n in range(1, 61)
    ]
    assert statuses == [401] * 20 + [429] * 40
    # While the global budget is spent every check that would need the database waits, the right
    # key included when it is not cached (the price of bounding guesses from many addresses) ...
    response = key_client(valid).get(PEOPLE, REMOTE_ADDR="198.51.100.20")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    # ... but a key in active use (cached: one HMAC, no query) goes on working from anywhere, and
    # wrong secrets for its public prefix still meet each address's own budget.
    assert key_client(active).get(PEOPLE, REMOTE_ADDR="198.51.100.21").status_code == 200
    wrong = f"Bearer fp_{active.api_key.prefix}_wrong"
    codes = [client.get(PEOPLE, HTTP_AUTHORIZATION=wrong, REMOTE_ADDR="198.51.100.22").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_a_refusal_by_the_global_budget_does_not_spend_the_address_budget(rates, make_org, make_key):
    rates(auth_failure="3/min", auth_failure_global="2/min")
    client = APIClient()
    codes = [
        client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{n:012x}_x", REMOTE_ADDR="203.0.113.5").status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 429, 429]
    assert cache.get("authfail:v2:net:v4:203.0.113.5") == 2


def test_ipv6_addresses_in_one_64_share_a_count(counting_cache, rates, make_org, make_key):
    rates(auth_failure="3/min")
    valid = make_key(make_org("acme"))
    client = APIClient()
    same_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 7)] + ["2001:db8:1:2:ffff:ffff:ffff:ffff"]
    statuses = [
        client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{n:012x}_x", REMOTE_ADDR=address).status_code
        for n, address in enumerate(same_64)
    ]
    assert statuses == [401, 401, 401, 429, 429, 429, 429]
    assert key_client(valid).get(PEOPLE, REMOTE_ADDR="2001:db8:1:2::99").status_code == 429
    # The neighbouring /64 is another network with its own budget.
    assert key_client(valid).get(PEOPLE, REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_an_ipv4_mapped_ipv6_address_counts_as_the_ipv4_address(rates, make_org):
    rates(auth_failure="2/min")
    client = APIClient()
    first = client.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000001_x", REMOTE_ADDR="10.1.2.3")
    second = client.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000002_x", REMOTE_ADDR="::ffff:10.1.2.3")
    third = client.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000003_x", REMOTE_ADDR="10.1.2.3")
    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]


def test_unknown_prefixes_are_cached_as_absent_and_cost_what_a_wrong_secret_costs(private_redis, make_org, make_key):
    valid = make_key(make_org("acme"))
    client = APIClient()
    known_wrong = f"Bearer fp_{valid.api_key.prefix}_wrong-secret"
    unknown = "Bearer fp_0123456789ab_wrong-secret"
    # First sight of each prefix reads the database once (and caches the answer) ...
    for header in (known_wrong, unknown):
        assert client.get(PEOPLE, HTTP_AUTHORIZATION=header).status_code == 401
    # ... after which neither path touches the database: the same cache read and hash compare.
    for header in (known_wrong, unknown, unknown):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(PEOPLE, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
        assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_key_issued_after_its_prefix_was_cached_as_absent_works_at_once(private_redis, make_org):
    from django.db import transaction

    from apikeys.services import ABSENT, _cache_key, api_key_issue

    organization = make_org("acme")
    with transaction.atomic():
        issued = api_key_issue(organization=organization, user="alice", name="fresh")
        # A guess of this prefix before the row committed would cache it as absent.
        cache.set(_cache_key(issued.api_key.prefix), ABSENT, timeout=60)
    assert key_client(issued).get(PEOPLE).status_code == 200


def test_a_key_that_cannot_be_checked_spends_no_budget(rates, make_org, make_key):
    # The database is down (this connection points at a port where nothing listens): a cold key
    # answers 503, which is no failed guess, so the address keeps its whole budget.
    from django.db import connection

    from tests.redis_server import free_port

    rates(auth_failure="2/min")
    cold = make_key(make_org("acme"))
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        for _ in range(4):
            assert key_client(cold).get(PEOPLE).status_code == 503
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved
    assert key_client(cold).get(PEOPLE).status_code == 200
    bad = APIClient()
    assert bad.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000009_x").status_code == 401
    assert bad.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000009_y").status_code == 401
    assert bad.get(PEOPLE, HTTP_AUTHORIZATION="Bearer fp_000000000009_z").status_code == 429
