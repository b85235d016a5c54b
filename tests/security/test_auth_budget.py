"""The failed-authentication budget is atomic and per network, and no budget is shared by all.

Real Redis (a private redis-server) and the local-memory cache both: the counters are incr and
add in the `auth_budget` cache, so the bound holds on either. Requests go through the whole Django
stack, in threads released together by a barrier.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings as settings_module
from django.core.cache import cache, caches
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
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "auth-budget-tests"},
            "auth_budget": {"BACKEND": "apikeys.budget_cache.ExpiringOnlyLocMemCache",
                            "LOCATION": "auth-budget-tests-counters", "TIMEOUT": None},
        }
    clear_all()  # the autouse clean-up cleared the caches configured before this switch
    yield request.param
    clear_all()


def clear_all() -> None:
    for alias in settings_module.CACHES:
        caches[alias].clear()


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


def attacking_addresses(family: str, count: int) -> list[str]:
    if family == "ipv4-127/8":
        return [f"127.{n // 256}.{n % 256}.9" for n in range(1, count + 1)]
    if family == "ipv6-64s":
        return [f"2001:db8:{n:x}::1" for n in range(1, count + 1)]
    return [f"198.51.{n}.7" if n % 2 else f"2001:db8:beef:{n:x}::5" for n in range(1, count + 1)]


@pytest.mark.parametrize(("family", "count"), [("ipv4-127/8", 60), ("ipv6-64s", 40), ("mixed", 35)])
def test_guesses_from_many_addresses_do_not_lock_out_an_idle_key(counting_cache, default_rates, make_org, make_key,
                                                                  family, count):
    # The shipped rates but for 10 failures per network: 350 to 600 guesses in the minute.
    default_rates(auth_failure="10/min")
    organization = make_org("acme")
    idle = make_key(organization, name="idle")  # never used: the cache does not hold it
    known_prefix = idle.api_key.prefix
    client = APIClient()
    statuses = []
    for n, address in enumerate(attacking_addresses(family, count)):
        for attempt in range(11):  # one more than each network's budget
            prefix = known_prefix if attempt == 5 else f"{n * 16 + attempt:012x}"
            statuses.append(
                client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{prefix}_guess{attempt}", REMOTE_ADDR=address)
                .status_code
            )
    # Each network gets exactly its own budget of checks, then 429: bounded per source ...
    assert statuses == ([401] * 10 + [429]) * count
    # ... and no budget is shared, so the idle key, from any network that did not guess, works.
    from apikeys.services import _cache_key

    cache.delete(_cache_key(known_prefix))  # as after the cache TTL: the key is read from the database
    assert key_client(idle).get(PEOPLE, REMOTE_ADDR="192.0.2.200").status_code == 200
    assert key_client(idle).get(PEOPLE, REMOTE_ADDR="2001:db8:ffff::1").status_code == 200
    # The sources stay locked out, the right key included (nothing learnt from a blocked address).
    assert key_client(idle).get(PEOPLE, REMOTE_ADDR=attacking_addresses(family, count)[0]).status_code == 429


@pytest.mark.parametrize("filler", [400, 1000])
def test_other_cached_entries_cannot_evict_the_failure_counters(counting_cache, rates, make_org, filler):
    # Whatever else requests leave in the default cache (absent prefixes, throttle counts, cached
    # keys) once culled the failure counters on locmem's 300 entries, and so reset the budget.
    # The counters live in a cache of their own.
    rates(auth_failure="5/min")
    make_org("acme")
    client = APIClient()
    codes = []
    for n in range(8):
        codes.append(
            client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{n:012x}_x", REMOTE_ADDR="203.0.113.77").status_code
        )
        # Traffic from elsewhere between two guesses: a made-up key, then what the cache fills with.
        client.get(PEOPLE, HTTP_AUTHORIZATION=f"Bearer fp_{n + 100:012x}_x", REMOTE_ADDR=f"10.1.{n}.1")
        for m in range(filler):
            cache.set(f"filler:{n}:{m}", m)
    assert codes == [401] * 5 + [429] * 3


def test_a_refusal_by_the_username_budget_does_not_spend_the_address_budget(rates):
    from django.contrib.auth import get_user_model

    from tests.security.test_staff_auth import basic

    get_user_model().objects.create_user("staff", password="staff-pass-123", is_staff=True)
    rates(auth_failure="3/min", password_failure_user="2/min")
    client = APIClient()
    codes = [
        client.post("/orgs", {"organization": "x"}, format="json", HTTP_AUTHORIZATION=basic("staff", f"w{n}"),
                    REMOTE_ADDR="203.0.113.5").status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 429, 429]
    assert caches["auth_budget"].get("authfail:v3:net:v4:203.0.113.5") == 2


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
