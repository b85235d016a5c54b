"""`manage.py enroll`: a folder per person, a per-image report, and a second run that resumes."""

from io import StringIO

import pytest
from django.core.management import call_command

from faces.models import Face, Person

pytestmark = pytest.mark.django_db


def place(folder, person, photos):
    """Link real photos into a folder-per-person layout (never copied into the repository)."""
    (folder / person).mkdir(parents=True, exist_ok=True)
    for number, photo in enumerate(photos, start=1):
        (folder / person / f"{number}{photo.path.suffix}").symlink_to(photo.path)


def enroll(folder, *extra):
    out = StringIO()
    call_command("enroll", str(folder), "--org", "acme", "--no-progress", *extra, stdout=out)
    return out.getvalue()


def test_enroll_reports_each_image_and_resumes(make_org, manifest, tmp_path):
    org = make_org("acme")
    collection = tmp_path / "people"
    place(collection, "Barack_Obama", manifest["Barack_Obama"][:2])
    place(collection, "_group", manifest["_group"][:1])  # `_` folders are not people
    (collection / "Barack_Obama" / "3.jpg").symlink_to(manifest["_noface"][0].path)

    first = enroll(collection, "--report", str(tmp_path / "report.csv"))
    assert first.count("enrolled ") == 2
    assert "no_face" in first and "3.jpg" in first
    assert "_group" not in first
    assert Face.objects.filter(organization=org).count() == 2
    assert list(Person.objects.filter(organization=org).values_list("name", flat=True)) == ["Barack_Obama"]
    assert (tmp_path / "report.csv").read_text().count("\n") == 4  # header + three images

    # An interrupted run is simply run again: what is in already is skipped, the rest is added.
    place(collection, "Angelina_Jolie", manifest["Angelina_Jolie"][:1])
    second = enroll(collection)
    assert second.count("skipped ") == 2
    assert second.count("enrolled ") == 1 and "Angelina_Jolie" in second
    assert Face.objects.filter(organization=org).count() == 3


def test_enroll_refuses_an_unknown_organisation(db, tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organisation"):
        enroll(tmp_path)
