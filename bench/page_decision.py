"""Strangers named over the WebSocket, driven as the webcam page drives it, against `POST /recognize`.

The webcam page sends no threshold unless the user ticks "Override", so the organisation's
false-match rate decides its frames; a client that reads `ready`'s uncalibrated fallback and sends
it back as a `settings` threshold has every frame decided by that fixed similarity instead.
This enrols one photo each of `--people` LFW people into a throwaway organisation (a temporary
SQLite database and vector store) and sends one photo each of `--strangers` other LFW people:

- over REST (`recognition.services.recognize`, what `POST /recognize` runs);
- over the socket as the page does: read `ready`, send frames;
- over the socket with a fixed threshold: read `ready`, send `{"type": "settings", "threshold": <the
  uncalibrated fallback>}`, then frames.

Prints the share of strangers named by each, measured in the same process on the same photos.
The LFW photos here are the calibration's own data set (faces/calibration/), so the calibrated
rows are no held-out figure (docs/OPEN_SET.md has those); the fixed-threshold row does not depend
on the calibration at all.

    .venv/bin/python bench/page_decision.py --lfw ../shared/lfw-train --people 200 --strangers 300
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO_ROOT = Path(__file__).resolve().parent.parent


def lfw_people(root: Path) -> list[list[Path]]:
    """Each person's photos, people in name order (a fixed, reproducible split)."""
    people = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if photos:
            people.append(photos)
    return people


async def over_socket(issued, photos: list[Path], *, threshold: float | None) -> tuple[list[bool], dict]:
    from channels.testing import WebsocketCommunicator

    from tests.websocket import application, socket_path

    communicator = WebsocketCommunicator(application, socket_path(issued),
                                         headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect(timeout=60)
    assert connected, "the socket refused the bench's key"
    ready = await communicator.receive_json_from(timeout=60)
    if threshold is not None:
        await communicator.send_json_to({"type": "settings", "threshold": threshold})
        await communicator.receive_json_from(timeout=60)
    named = []
    for photo in photos:
        await communicator.send_to(bytes_data=photo.read_bytes())
        reply = await communicator.receive_json_from(timeout=120)
        named.append(any(face["match"] for face in reply.get("faces", [])))
    await communicator.disconnect()
    return named, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=REPO_ROOT.parent / "shared" / "lfw-train")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--strangers", type=int, default=300)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="fp-page-decision-"))
    os.environ["FACEPORTAL_VAR_DIR"] = str(scratch)  # its own SQLite database and vector store
    os.environ.pop("DATABASE_URL", None)
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    from bench.common import log, setup_django, table

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apikeys.services import api_key_issue
    from faceportal.errors import FacePortalError
    from faces.matching import uncalibrated_threshold
    from faces.selectors import gallery_size_of
    from faces.services import person_register
    from organizations.services import organization_create
    from recognition.services import recognize

    people = lfw_people(args.lfw)
    if len(people) < args.people + args.strangers:
        sys.exit(f"{args.lfw} holds {len(people)} people; asked for {args.people} + {args.strangers}")
    # Alternate people between the gallery and the strangers, so neither is one stretch of the alphabet.
    enrolled, strangers = people[0::2][:args.people], people[1::2][:args.strangers]
    organization = organization_create(slug="bench-page-decision")
    for photos in enrolled:
        try:
            person_register(organization=organization, name=photos[0].parent.name,
                            images=[base64.b64encode(photos[0].read_bytes()).decode()])
        except FacePortalError:
            pass  # no usable face, or already someone else's: not enrolled
    gallery = gallery_size_of(organization=organization)
    probes = [photos[0] for photos in strangers]
    log(f"{gallery} people enrolled, {len(probes)} stranger photos")

    rest = [any(face.match for face in recognize(organization=organization, image=photo.read_bytes()).faces)
            for photo in probes]
    issued = api_key_issue(organization=organization, user="bench", name="page-decision")
    fallback = uncalibrated_threshold()
    page, ready = asyncio.run(over_socket(issued, probes, threshold=None))
    fixed, _ = asyncio.run(over_socket(issued, probes, threshold=fallback))

    def share(named: list[bool]) -> str:
        return f"{sum(named) / len(named):.1%} ({sum(named)}/{len(named)})"

    table(
        f"Strangers named: {gallery} LFW people enrolled (one photo each), {len(probes)} stranger photos",
        ["surface", "decided by", "strangers named"],
        [
            ["POST /recognize", f"{ready['threshold_source']}: false_match_rate {ready['false_match_rate']}, "
             f"threshold {ready['threshold']}", share(rest)],
            ["webcam page (socket, no settings)", ready["threshold_source"], share(page)],
            ["socket, settings = ready's uncalibrated fallback", f"request: {fallback}", share(fixed)],
        ],
        note="Same photos, same process. The LFW photos are the calibration's own set (see the docstring).",
    )


if __name__ == "__main__":
    main()
