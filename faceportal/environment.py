"""Reading settings from the environment: each reader gives the default when a variable is unset
or empty, and stops the start with one line naming the variable when its value cannot be right."""

from __future__ import annotations

import os
import re

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

# Empty counts as unset: `.env.example` and Compose pass `NAME=` for "use the default".
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not {expected}.")


def env_str(name: str, default: str) -> str:
    return env.str(name) if raw(name) is not None else default


def env_bool(name: str, default: bool) -> bool:
    # django-environ reads any unknown word as False; a typo like DEBUG=ture must stop the start.
    value = raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise bad(name, value, "a boolean (true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = 0) -> int:
    value = raw(name)
    if value is None:
        return default
    try:
        number = env.int(name)
    except ValueError:
        raise bad(name, value, "an integer") from None
    if minimum is not None and number < minimum:
        raise bad(name, value, f"an integer >= {minimum}")
    return number


def env_float(name: str, default: float | None, *, minimum: float = 0.0, maximum: float | None = None) -> float | None:
    value = raw(name)
    if value is None:
        return default
    try:
        number = env.float(name)
    except ValueError:
        raise bad(name, value, "a number") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise bad(name, value, f"a number between {minimum} and {maximum}" if maximum is not None
                   else f"a number >= {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    if raw(name) is None:
        return default
    return [item.strip() for item in env.list(name) if item.strip()]


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise bad(name, value, "one of " + ", ".join(sorted(choices)))
    return value


def env_rate(name: str, default: str) -> str:
    value = env_str(name, default)
    if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise bad(name, value, "a rate like 600/min")
    return value
