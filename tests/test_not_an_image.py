"""The hasher and dedup.formats agree on the words for bytes that no image format
recognised: that is how `dedup scan` and `dedup report` tell a file that is no image
(status not_an_image) from an image that could not be read."""

from __future__ import annotations

import pytest

from dedup import synthetic
from dedup.formats import UNIDENTIFIED, not_an_image
from dedup.report.model import status_label
from services.hasher.decode import DecodeError
from services.hasher.features import extract
from services.hasher.handler import STATUS_OF_DECODE_ERROR


def reason_of(data: bytes) -> tuple[str, str]:
    """(status, reason) as the hasher publishes them for an undecodable file."""
    with pytest.raises(DecodeError) as caught:
        extract(data, max_bytes=1 << 20)
    return status_label(STATUS_OF_DECODE_ERROR[caught.value.kind]), str(caught.value)


def test_text_and_archives_are_no_images_unless_named_so() -> None:
    for data in (b"shopping list: milk, eggs\n" * 20, b"PK\x03\x04" + bytes(100)):
        status, reason = reason_of(data)
        assert reason.endswith(UNIDENTIFIED)
        assert not_an_image("notes.txt", status, reason) is not None
        assert not_an_image("notes.jpg", status, reason) is None


def test_a_truncated_image_is_a_broken_image_whatever_its_name() -> None:
    whole = synthetic.encode(synthetic.photo(7))
    status, reason = reason_of(whole[:300])
    assert status == "corrupt" and not reason.endswith(UNIDENTIFIED)
    assert not_an_image("photo.txt", status, reason) is None
