import pytest


@pytest.fixture
def rates(settings):
    """Set throttle rates for one test; the others stay generous so only the one under test bites."""

    def set_rates(**rates: str) -> None:
        merged = {
            "api_key": "1000/min", "address": "1000/min", "auth_failure": "1000/min",
            "auth_failure_global": "10000/min", "password_failure_global": "10000/min", **rates,
        }
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}

    return set_rates
