from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "faces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from faceportal.metrics import register_runtime_collector
        from faces import receivers  # noqa: F401 - connects organisation lifecycle to the index
        from faces.images import configure_process
        from faces.metrics import RuntimeStateCollector

        register_runtime_collector(RuntimeStateCollector())
        configure_process()  # Pillow's bomb guard and glibc's mmap threshold, process-wide
