from django.apps import AppConfig


class UnknownsConfig(AppConfig):
    name = "unknowns"
    verbose_name = "Unknown faces"
    default_auto_field = "django.db.models.BigAutoField"
