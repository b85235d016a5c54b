"""The second model, fused: FaceNet 512 decides with dlib where dlib's score cannot decide alone.
The real models on real photos, over REST, with real PostgreSQL."""

import numpy as np
import pytest

from faces.decision import effective_threshold, load_calibration, load_fused_calibration
from faces.engine import get_engine
from faces.index.base import vector_from_bytes
from faces.models import Face
from faces.vector_maintenance import second_vectors_fill
from tests.photos import STRANGERS
from tests.recognition.test_openset import people_with_most_photos, recognize, register

pytestmark = pytest.mark.django_db


def test_the_engine_combination_ships_its_calibration():
    engine = get_engine()
    assert engine.combination == "Dlib+Facenet512"
    fused = load_fused_calibration(engine.combination)
    assert fused is not None, "run `manage.py calibrate_openset --second`"
    for people in (1, 100, 10_000):
        cascade = fused.cascade_for(gallery_size=people, false_match_rate=0.001)
        # The band is where the first model alone would name less often than it should: between
        # its own threshold for 100x the rate and the one for a tenth of it.
        assert cascade.floor < cascade.accept
    cuts = [fused.cascade_for(gallery_size=n, false_match_rate=0.001).fused for n in (1, 100, 10_000)]
    assert cuts == sorted(cuts) and cuts[0] < cuts[-1]


def test_a_combination_without_calibration_says_so():
    """A second model nobody calibrated cannot decide: the first model's calibration does, alone,
    and the answer names it."""
    chosen = effective_threshold(model="Dlib", requested=None, false_match_rate=0.001, gallery_size=10,
                                 model_default=0.96, combination="Dlib+UncalibratedNet")
    assert chosen.source == "calibrated" and chosen.calibrated_for == "Dlib" and chosen.cascade is None
    alone = load_calibration("Dlib").threshold_for(gallery_size=10, false_match_rate=0.001)
    assert chosen.value == pytest.approx(alone)


def first_model_alone_names(organization, photo) -> str | None:
    """Who dlib alone names in this photo, at its own threshold for the whole rate (no cascade)."""
    from faces.images import decode
    from faces.matching import decide_vectors, decision_in_force

    result = get_engine().faces_in(decode(photo.path.read_bytes(), index=0).pixels, most_prominent_only=True)
    outcome = decide_vectors(organization=organization, vectors=np.stack([result.faces[0].embedding]),
                             threshold=decision_in_force(organization=organization), max_results=5)[0]
    return outcome.best.name if outcome.best is not None else None


def test_fused_decision_names_enrolled_people_and_refuses_strangers(acme, manifest):
    client = acme.client
    names = people_with_most_photos(manifest, 10)
    for name in names:
        register(client, name, manifest[name][:1])
    engine = get_engine()
    before = engine.second_faces
    named = alone = total = 0
    for name in names:
        for photo in manifest[name][1:5]:
            answer = recognize(client, photo)
            assert answer["threshold_source"] == "calibrated" and answer["calibrated_for"] == "Dlib+Facenet512"
            face = answer["faces"][0]
            total += 1
            if face["match"] is not None:
                assert face["match"]["name"] == name, photo.path  # never someone else
                named += 1
                assert face["candidates"][0]["similarity"] >= face["threshold"]
            alone += first_model_alone_names(acme.org, photo) == name
    # The fused decision names more of the people it knows than dlib alone, at the same rate.
    assert named > alone and named / total >= 0.75, (named, alone, total)
    for name in STRANGERS:
        for photo in manifest[name]:
            for face in recognize(client, photo)["faces"]:
                assert face["match"] is None, (photo.path, face)
                assert face["candidates"][0]["similarity"] < face["threshold"] or face["decision"] == "ambiguous"
    ran = engine.second_faces - before
    # The cascade ran the second model for some faces (those dlib could not decide alone), not all.
    assert 0 < ran < total + sum(len(manifest[name]) for name in STRANGERS), ran


def test_registration_stores_the_second_vector_and_a_missing_one_is_made_from_the_crop(acme, manifest):
    client = acme.client
    register(client, "Barack Obama", manifest["Barack_Obama"][:1])
    face = Face.objects.get(organization=acme.org, person__name="Barack Obama")
    assert face.second_model_name == "Facenet512" and face.second_embedding is not None
    stored = vector_from_bytes(face.second_embedding)
    assert stored.shape == (512,) and abs(float(np.linalg.norm(stored)) - 1.0) < 1e-3

    Face.objects.filter(pk=face.pk).update(second_embedding=None, second_model_name="")
    assert second_vectors_fill(organization=acme.org) == 1
    face.refresh_from_db()
    remade = vector_from_bytes(face.second_embedding)
    assert float(remade @ stored) > 0.8  # the crop is the same face, detected again
    assert second_vectors_fill(organization=acme.org) == 0  # nothing left to fill


def test_the_overview_and_the_answer_name_the_engine_combination(acme, manifest):
    client = acme.client
    register(client, "Barack Obama", manifest["Barack_Obama"][:1])
    answer = recognize(client, manifest["Barack_Obama"][1])
    assert answer["calibrated_for"] == "Dlib+Facenet512"
    explicit = recognize(client, manifest["Barack_Obama"][1], threshold=0.9)
    assert explicit["threshold_source"] == "request" and "calibrated_for" not in explicit
