"""Property tests for image input (faces/images/): whatever bytes or text arrive, the only
failures are our own InvalidImage / InvalidInput / PayloadTooLarge (a 4xx), never a crash; paths
never escape the image root; URLs never reach a private address."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from faceportal.errors import FacePortalError, InvalidImage, InvalidInput, PayloadTooLarge
from faceportal.serializers import validated
from faces import images
from faces.images import url_fetch
from faces.serializers import PersonRenameInputSerializer, RegisterInputSerializer
from organizations.services import validate_slug
from recognition.serializers import RecognitionOptionsSerializer
from tests.image_samples import (
    encoded,
    gif_with_comments,
    jpeg_with_comments,
    png_claiming,
    png_with_chunks,
    png_with_split_idat,
    progressive_jpeg_repeating_last_scan,
    tiff_with_strips,
)

OURS = (InvalidImage, InvalidInput, PayloadTooLarge)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])






SAMPLES = [encoded((200, 30, 30), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@st.composite
def damaged_images(draw) -> bytes:
    """A real small image of some format with bytes flipped, cut off or spliced: what fuzzers send."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=64))
    return bytes(data)


def assert_only_our_errors(call) -> images.LoadedImage | None:
    try:
        return call()
    except OURS as exc:
        assert 400 <= exc.status_code < 500
        assert exc.message and isinstance(exc.details, dict)
        return None


@PROPERTY
@given(data=st.one_of(st.binary(max_size=512), damaged_images()))
@example(data=png_claiming(20000, 20000))
@example(data=png_claiming(0, 0))
@example(data=png_claiming(2**31 - 1, 1))
@example(data=b"")
def test_decoding_any_bytes_gives_an_image_or_our_error(data):
    loaded = assert_only_our_errors(lambda: images.decode(data, index=0))
    if loaded is not None:
        height, width, channels = loaded.pixels.shape
        assert channels == 3 and loaded.pixels.dtype == np.uint8
        assert 0 < width * height <= 40_000_000


STRUCTURED = {
    "jpeg-com": lambda count, side: jpeg_with_comments(count, (side, side)),
    "jpeg-scans": lambda count, side: progressive_jpeg_repeating_last_scan((side, side), count),
    "gif-comments": lambda count, side: gif_with_comments(count, (side, side)),
    "png-text": lambda count, side: png_with_chunks(count, size=(side, side)),
    "png-text-after": lambda count, side: png_with_chunks(count, after_idat=True, size=(side, side)),
    "png-idat": lambda count, side: png_with_split_idat(count, size=(side, side)),
    "tiff-strips": lambda count, side: tiff_with_strips(count + 1, width=side),
}


@PROPERTY
@given(kind=st.sampled_from(sorted(STRUCTURED)), count=st.integers(0, 120), side=st.integers(1, 64),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_structure_counts_give_an_image_or_a_clear_refusal(settings, kind, count, side, flips):
    """Below the limits an image, past them image_too_complex, and with bytes damaged anywhere
    still only our own errors (the walk follows what Pillow would, and leaves the rest to it)."""
    settings.FACEPORTAL_DECODE_MAX_METADATA_BLOCKS = 12
    settings.FACEPORTAL_DECODE_MAX_BLOCKS = 40
    settings.FACEPORTAL_DECODE_MAX_SCANS = 24
    data = bytearray(STRUCTURED[kind](count, side))
    for position, value in flips:
        data[position % len(data)] = value
    try:
        loaded = images.decode(bytes(data), index=0)
    except OURS as refused:
        assert 400 <= refused.status_code < 500
        if not flips:
            assert count > 8 and refused.code == "image_too_complex", (count, refused.code, refused.message)
        return
    assert loaded.pixels.shape[2] == 3
    if not flips:
        assert count <= 40, "decoded past every limit"


@PROPERTY
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
def test_pixel_limit_is_checked_from_the_header_before_decoding(width, height):
    assume(width * height > 40_000_000)
    with pytest.raises(InvalidImage) as refused:
        images.decode(png_claiming(width, height), index=3)
    assert refused.value.code == "image_too_large"
    assert refused.value.details["image_index"] == 3


@pytest.fixture
def no_url_fetch(settings):
    settings.FACEPORTAL_URL_FETCH_ENABLED = False
    settings.FACEPORTAL_IMAGE_ROOT = None


@PROPERTY
@given(source=st.one_of(
    st.text(max_size=300),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_- \n", max_size=300),
    st.builds(lambda tail: "data:" + tail, st.text(max_size=80)),
    st.builds(lambda kind, value: {kind: value}, st.sampled_from(["base64", "url", "path", "other"]), st.text()),
    st.none(), st.integers(), st.floats(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(), st.text()),
))
def test_loading_any_json_value_gives_an_image_or_our_error(no_url_fetch, source):
    assert_only_our_errors(lambda: images.load(source, index=0))


@PROPERTY
@given(
    payload=st.sampled_from(SAMPLES),
    mime=st.sampled_from(["image/png", "image/jpeg", "IMAGE/WEBP", "image/x-whatever"]),
    wrap=st.sampled_from([0, 4, 76]),
    urlsafe=st.booleans(),
    padded=st.booleans(),
    as_data_uri=st.booleans(),
)
def test_base64_and_data_uri_forms_all_give_the_same_pixels(no_url_fetch, payload, mime, wrap, urlsafe, padded,
                                                              as_data_uri):
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(payload).decode()
    if not padded:
        text = text.rstrip("=")
    if wrap:
        text = "\n".join(text[i:i + wrap] for i in range(0, len(text), wrap))
    if as_data_uri:
        text = f"data:{mime};base64,{text}"
    expected = images.decode(payload, index=0).pixels
    assert np.array_equal(images.load(text, index=0).pixels, expected)


def test_base64_larger_than_the_byte_limit_is_refused_before_decoding(no_url_fetch, settings):
    settings.FACEPORTAL_MAX_IMAGE_BYTES = 1000
    with pytest.raises(InvalidImage) as refused:
        images.load("A" * 5000, index=0)
    assert refused.value.code == "image_too_large"


# --- server paths -------------------------------------------------------------------------------

INSIDE_COLOR, OUTSIDE_COLOR = (10, 200, 10), (250, 250, 0)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """A shared root: acme's folder, globex's folder, a file outside both, and ways out of acme's."""
    base = tmp_path_factory.mktemp("paths")
    root = base / "root"
    acme, globex = root / "acme", root / "globex"
    (acme / "sub").mkdir(parents=True)
    globex.mkdir()
    (acme / "inside.png").write_bytes(encoded(INSIDE_COLOR, "PNG"))
    (acme / "sub" / "inside.png").write_bytes(encoded(INSIDE_COLOR, "PNG"))
    (globex / "theirs.png").write_bytes(encoded(OUTSIDE_COLOR, "PNG"))
    (root / "shared.png").write_bytes(encoded(OUTSIDE_COLOR, "PNG"))
    (base / "secret.png").write_bytes(encoded(OUTSIDE_COLOR, "PNG"))
    os.symlink(base / "secret.png", acme / "link.png")
    os.symlink(globex / "theirs.png", acme / "neighbour.png")
    os.symlink(base, acme / "escape")
    os.symlink(root, acme / "up")
    return root


SEGMENTS = ["..", ".", "sub", "inside.png", "secret.png", "link.png", "escape", "root", "", "%2e%2e", "..\\..", "~",
            "globex", "theirs.png", "acme", "shared.png", "neighbour.png", "up"]


@PROPERTY
@given(segments=st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=8)), min_size=1, max_size=6),
       absolute=st.sampled_from(["", "/", "//", "///"]))
@example(segments=["escape", "secret.png"], absolute="")
@example(segments=["link.png"], absolute="/")
@example(segments=["..", "secret.png"], absolute="")
@example(segments=["inside.png\x00"], absolute="")
@example(segments=["", "inside.png"], absolute="//")
@example(segments=["up", "globex", "theirs.png"], absolute="")
@example(segments=["neighbour.png"], absolute="")
def test_paths_never_read_outside_the_image_root(settings, image_tree, segments, absolute):
    settings.FACEPORTAL_IMAGE_ROOT = str(image_tree)
    raw = absolute + "/".join(segments)
    assume(raw.strip())
    try:
        data = images.read_path(raw, index=0, organization="acme")
    except InvalidImage as refused:
        assert refused.code in {"image_path_forbidden", "image_path_not_found", "image_too_large"}
        return
    pixels = images.decode(data, index=0).pixels
    assert tuple(int(v) for v in pixels[0, 0][::-1]) == INSIDE_COLOR  # BGR -> RGB, acme's own file only


@PROPERTY
@given(segments=st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(alphabet="abcxyz._-", max_size=8)),
                         min_size=1, max_size=4),
       absolute=st.sampled_from(["", "/"]))
@example(segments=["up", "globex", "theirs.png"], absolute="")
@example(segments=["neighbour.png"], absolute="")
@example(segments=["globex", "theirs.png"], absolute="/")
def test_a_path_outside_the_organisation_reads_exactly_as_a_missing_file(settings, image_tree, segments, absolute):
    # Whether another tenant's (or anyone's) file exists there must not show in the refusal.
    settings.FACEPORTAL_IMAGE_ROOT = str(image_tree)
    raw = absolute + "/".join(segments)
    assume(raw.strip() and ".." not in raw.split("/"))
    try:
        data = images.read_path(raw, index=0, organization="acme")
    except InvalidImage as refused:
        with pytest.raises(InvalidImage) as absent:
            images.read_path("no/such/file.png", index=0, organization="acme")
        assert (refused.code, refused.message, refused.details) == (
            absent.value.code, absent.value.message, absent.value.details), raw
        return
    pixels = images.decode(data, index=0).pixels
    assert tuple(int(v) for v in pixels[0, 0][::-1]) == INSIDE_COLOR


def test_paths_are_refused_when_no_root_is_configured(settings):
    settings.FACEPORTAL_IMAGE_ROOT = None
    with pytest.raises(InvalidImage) as refused:
        images.load("photos/inside.png", index=0)
    assert refused.value.code == "image_path_forbidden"


# --- URLs ------------------------------------------------------------------------------------------

PRIVATE_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "0.0.0.0/8",
              "100.64.0.0/10", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"]
PRIVATE_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "::/128", "fec0::/10", "100::/64", "2001:db8::/32",
              "3fff::/20", "5f00::/16", "4000::/2", "8000::/2", "c000::/3", "e000::/4", "f000::/5", "f800::/6"]


@st.composite
def private_addresses(draw) -> str:
    network = ipaddress.ip_network(draw(st.sampled_from(PRIVATE_V4 + PRIVATE_V6)))
    address = network[draw(st.integers(0, network.num_addresses - 1))]
    if address.version == 4 and draw(st.booleans()):
        # IPv4-mapped, -compatible, -translated, NAT64, 6to4, Teredo: each reaches that host.
        return f"[{draw(ipv6_embedding(address))}]"
    return f"[{address}]" if address.version == 6 else str(address)


def v4_in(draw, networks: list[str]) -> ipaddress.IPv4Address:
    network = ipaddress.ip_network(draw(st.sampled_from(networks)))
    return network[draw(st.integers(0, network.num_addresses - 1))]


@st.composite
def ipv6_embedding(draw, v4: ipaddress.IPv4Address) -> str:
    """One of the IPv6 forms that carry an IPv4 address to where it leads."""
    low = int(v4)
    form = draw(st.sampled_from(["compatible", "mapped", "translated", "nat64", "nat64-local", "6to4", "teredo"]))
    if form == "compatible":
        value = low
    elif form == "mapped":
        value = (0xFFFF << 32) | low
    elif form == "translated":
        value = (0xFFFF << 48) | low
    elif form == "nat64":
        value = (0x64FF9B << 96) | low
    elif form == "nat64-local":
        value = (0x64FF9B0001 << 80) | (draw(st.integers(0, 2**48 - 1)) << 32) | low
    elif form == "6to4":
        value = (0x2002 << 112) | (low << 80) | draw(st.integers(0, 2**80 - 1))
    else:  # Teredo: the client's address is stored inverted; the server's is plain
        other = int(ipaddress.IPv4Address("8.8.8.8"))
        server, client = (low, other) if draw(st.booleans()) else (other, low)
        value = (0x20010000 << 96) | (server << 64) | (draw(st.integers(0, 2**32 - 1)) << 32) | (client ^ 0xFFFFFFFF)
    return str(ipaddress.IPv6Address(value))


@PROPERTY
@given(data=st.data())
def test_ipv6_forms_embedding_a_private_ipv4_are_not_public(data):
    private = v4_in(data.draw, PRIVATE_V4)
    address = data.draw(ipv6_embedding(private))
    assert not url_fetch._is_public(address), (address, private)


@PROPERTY
@given(value=st.integers(0, 2**128 - 1))
def test_ipv6_outside_global_unicast_is_never_public(value):
    # Anything outside 2000::/3 that carries no IPv4 address (site-local fec0::/10, unique-local,
    # link-local, unallocated space) is no address a server should connect to.
    address = ipaddress.IPv6Address(value)
    if address in ipaddress.ip_network("2000::/3") or url_fetch._embedded_ipv4(address):
        return
    assert not url_fetch._is_public(str(address)), address


@PROPERTY
@given(data=st.data())
def test_ipv6_forms_embedding_a_public_ipv4_follow_it(data):
    public = v4_in(data.draw, ["8.0.0.0/8", "1.1.1.0/24", "151.101.0.0/16"])
    address = data.draw(ipv6_embedding(public))
    assert url_fetch._is_public(address), (address, public)


@pytest.fixture
def no_connections(monkeypatch):
    """Fail loudly if URL rules ever let a connection through (these addresses are all private)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@PROPERTY
@given(
    host=private_addresses(),
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=st.text(alphabet="abc/._-?=&%", max_size=20),
)
def test_urls_to_private_addresses_are_refused_without_connecting(settings, no_connections, host, scheme, port, path):
    settings.FACEPORTAL_URL_FETCH_ENABLED = True
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}/{path}"
    with pytest.raises(InvalidImage) as refused:
        images.load(url, index=0)
    assert refused.value.code == "image_url_forbidden"


@PROPERTY
@given(url=st.one_of(
    st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["file", "ftp", "gopher", "dict", "ldap",
                                                                       "jar", "ws"]), st.text(max_size=30)),
    st.builds(lambda rest: f"http://user:pw@{rest}", st.text(max_size=30)),
    st.builds(lambda port: f"http://8.8.8.8:{port}/x.jpg",
              st.one_of(st.text(alphabet="xyz:-", min_size=1, max_size=8), st.integers(65536, 10**9))),
    st.builds(lambda rest: f"http://[{rest}/x.jpg", st.text(alphabet="0123456789abcdef:", max_size=12)),
))
@example(url="http://127.0.0.1:99999/a.jpg")
@example(url="http://[::1/a.jpg")
def test_odd_or_forbidden_urls_are_refused_without_connecting(settings, no_connections, url):
    settings.FACEPORTAL_URL_FETCH_ENABLED = True
    with pytest.raises(InvalidImage) as refused:
        images.load(url, index=0)
    assert refused.value.code in {"image_url_forbidden", "invalid_image", "image_url_unreachable"}


# --- other validators --------------------------------------------------------------------------------

@PROPERTY
@given(images_value=st.one_of(st.none(), st.text(), st.integers(), st.lists(st.none(), max_size=15)))
def test_image_count_rule(images_value):
    try:
        validated(RegisterInputSerializer, data={"name": "x", "images": images_value})
    except InvalidInput as refused:
        assert refused.details["field"] == "images"
    else:
        assert isinstance(images_value, list) and 1 <= len(images_value) <= 10


@PROPERTY
@given(value=st.one_of(st.text(max_size=260), st.none(), st.integers(), st.lists(st.text(), max_size=2)))
def test_validators_accept_or_refuse_with_our_error(value):
    def name(value):
        return validated(PersonRenameInputSerializer, data={"name": value})

    def max_results(value):
        return validated(RecognitionOptionsSerializer, data={"max_results": value})

    for validator in (name, validate_slug, max_results):
        try:
            validator(value)
        except FacePortalError as refused:
            assert 400 <= refused.status_code < 500
