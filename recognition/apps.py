from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recognition import receivers  # noqa: F401 - person lifecycle fires webhooks
