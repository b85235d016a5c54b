from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The staff console over every room (console/admin.py); it has no models."""

    name = "console"
