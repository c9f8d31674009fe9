"""Blob URLs back to (container, name), and ETags quoted for HTTP."""

import pytest

from dedup.blob import quoted_etag, split_blob_url

AZURITE = "http://127.0.0.1:10000/devstoreaccount1/"
AZURE = "https://acct.blob.core.windows.net/"


@pytest.mark.parametrize(
    ("account", "url", "expected"),
    [
        (AZURITE, AZURITE + "dedup-working/abc.jpg", ("dedup-working", "abc.jpg")),
        (AZURITE, AZURITE + "c/a%20b/%3Cx%3E.jpg", ("c", "a b/<x>.jpg")),
        (AZURE, AZURE + "uploads/2024/IMG 1.jpg", ("uploads", "2024/IMG 1.jpg")),
        (AZURE.rstrip("/"), AZURE + "uploads/x.jpg", ("uploads", "x.jpg")),
        (AZURE, "https://other.blob.core.windows.net/uploads/x.jpg", None),
        (AZURITE, "http://127.0.0.1:10000/otheraccount/c/x.jpg", None),
        (AZURE, AZURE + "only-a-container", None),
        (AZURE, "file:///etc/passwd", None),
    ],
)
def test_split_blob_url(account: str, url: str, expected: tuple[str, str] | None) -> None:
    assert split_blob_url(account, url) == expected


def test_etags_are_quoted_once() -> None:
    assert quoted_etag("0x8DC") == '"0x8DC"'
    assert quoted_etag('"0x8DC"') == '"0x8DC"'
