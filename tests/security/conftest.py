import pytest


@pytest.fixture
def rates(settings):
    """Set throttle rates for one test; the others stay generous so only the one under test bites."""

    def set_rates(**rates: str) -> None:
        merged = {
            "api_key": "1000/min", "address": "1000/min", "auth_failure": "1000/min",
            "password_failure_user": "10000/min", **rates,
        }
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}

    return set_rates


@pytest.fixture
def default_rates(settings):
    """The shipped throttle rates, with only the named ones changed: what an attack meets by default."""
    shipped = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])

    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**shipped, **rates}}

    return set_rates
