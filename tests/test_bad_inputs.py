"""The bad-input corpus (tests/support/bad_inputs.py) against the hasher's decoding, no
stack needed: every kind gets the status the corpus expects (the integration and
end-to-end tests then prove that status reaches the scan's JSON and the decisions)."""

from __future__ import annotations

import pytest

from dedup.report.model import status_label
from services.hasher.decode import DecodeError
from services.hasher.features import extract
from services.hasher.handler import STATUS_OF_DECODE_ERROR
from tests.support import bad_inputs

# The cheap kinds that have bytes to decode (the just-under-the-limit image is left to the
# integration tests; a name no store holds, to the end-to-end test).
CASES = [c for c in bad_inputs.cases(heavy=False) if c.storable]


def test_the_corpus_has_thirty_kinds_and_every_status() -> None:
    assert len({c.kind for c in CASES}) >= 30
    statuses = {c.status for c in CASES}
    assert statuses == {"ok", "corrupt", "unsupported", "bomb", "empty", "too_large"}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # pytest re-enables what decode hides
@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_each_kind_decodes_to_its_status(case: bad_inputs.Case) -> None:
    try:
        features = extract(case.data, max_bytes=bad_inputs.MAX_DOWNLOAD)
    except DecodeError as error:
        assert status_label(STATUS_OF_DECODE_ERROR[error.kind]) == case.status, error
        assert error.reason
    else:
        assert case.status == "ok", f"{case.kind} decoded as {features.decoded.format}"
        assert features.decoded.rgb.size > 0
