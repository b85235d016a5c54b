"""Gauges of the faces room read when /metrics is scraped: model load times, readiness, gallery sizes."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class RuntimeStateCollector(Collector):
    """Values read when scraped: model load times and the gallery sizes from the database."""

    def describe(self) -> list:
        return []  # registering must not run collect(): it queries the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Imported when scraped: registering at start-up must not load the engine's libraries.
        from faces.engine import engine_loaded
        from faces.engine.cache import model_load_seconds

        load_times = GaugeMetricFamily(
            "faceportal_model_load_seconds", "Seconds the first load of each model took in this process.",
            labels=["model"],
        )
        for model, seconds in sorted(model_load_seconds().items()):
            load_times.add_metric([model], seconds)
        yield load_times
        yield GaugeMetricFamily(
            "faceportal_model_loaded", "1 once the face models are loaded in this process.",
            value=1.0 if engine_loaded() else 0.0,
        )
        yield from self._gallery_sizes()

    def _gallery_sizes(self) -> Iterator[GaugeMetricFamily]:
        from faces.models import Face, Person  # models load after the app registry

        try:
            faces, people = Face.objects.count(), Person.objects.count()
        except DatabaseError:  # /metrics must answer while the database is away; /readyz says why
            return
        yield GaugeMetricFamily("faceportal_faces_stored", "Faces registered, all organisations.", value=faces)
        yield GaugeMetricFamily("faceportal_people_stored", "People registered, all organisations.", value=people)
