"""The report's links: a read-only container SAS signed by the account key or by a user
delegation key (Entra ID), or a base URL. Against Azurite (a real GET of each link):
tests/test_report_links_azurite.py."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
from azure.storage.blob import UserDelegationKey

from dedup.report import cli, links

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class FakeService:
    """What container_sas reads of a BlobServiceClient: account, credential, url."""

    def __init__(self, credential: object, url: str = "https://acct.blob.core.windows.net/"):
        self.account_name = "acct"
        self.credential = credential
        self.url = url
        self.asked: list[tuple[dt.datetime, dt.datetime]] = []

    async def get_user_delegation_key(self, start: dt.datetime, expiry: dt.datetime) -> Any:
        self.asked.append((start, expiry))
        key = UserDelegationKey()  # type: ignore[no-untyped-call]
        key.signed_oid, key.signed_tid = "oid-1", "tid-1"
        key.signed_start, key.signed_expiry = "2026-12-02T11:55:00Z", "2026-12-03T12:00:00Z"
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = "dGhlIGRlbGVnYXRpb24ga2V5"
        return key


async def test_under_entra_id_the_sas_is_signed_by_a_user_delegation_key() -> None:
    service = FakeService(credential=object())  # a token credential: no account key
    sas = await links.container_sas(service, ["uploads", "derived", "", "uploads"], 24, NOW)  # type: ignore[arg-type]
    assert sorted(sas) == ["derived", "uploads"]
    q = parse_qs(sas["uploads"].removeprefix("?"))
    assert q["sp"] == ["r"] and q["sr"] == ["c"] and q["spr"] == ["https"]
    assert q["skoid"] == ["oid-1"] and q["sktid"] == ["tid-1"]  # a user delegation SAS
    assert q["se"] == ["2026-12-03T12:00:00Z"] and q["st"] == ["2026-12-02T11:55:00Z"]
    assert service.asked == [(NOW - links.CLOCK_SKEW, NOW + dt.timedelta(hours=24))]


async def test_with_an_account_key_the_sas_is_a_service_sas() -> None:
    key = SimpleNamespace(account_name="acct", account_key="a2V5")
    service = FakeService(credential=key, url="http://127.0.0.1:10000/devstoreaccount1")
    sas = await links.container_sas(service, ["uploads"], 1, NOW)  # type: ignore[arg-type]
    q = parse_qs(sas["uploads"].removeprefix("?"))
    assert q["sp"] == ["r"] and q["sr"] == ["c"] and "skoid" not in q and "spr" not in q
    assert service.asked == []
    assert await links.container_sas(service, [""], 1, NOW) == {}  # type: ignore[arg-type]


async def test_a_link_lasts_at_most_a_week() -> None:
    for hours in (0, -1, links.MAX_HOURS + 1):
        with pytest.raises(ValueError, match="at most 168 hours"):
            await links.container_sas(FakeService(object()), ["c"], hours)  # type: ignore[arg-type]


def test_a_base_url_link_names_container_and_blob() -> None:
    assert (
        links.base_url_link("https://photos.example.com/blobs/", "uploads", "a b/c#1.jpg")
        == "https://photos.example.com/blobs/uploads/a%20b/c%231.jpg"
    )


def test_the_report_command_checks_its_link_options_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--link-hours", "500"]) == 2
    assert "--link-hours must be more than 0 and at most 168" in capsys.readouterr().err
    assert cli.main(["--max-thumbnails", "-1"]) == 2
    ns = cli.parser().parse_args([])
    assert (ns.links, ns.link_hours, ns.max_thumbnails) == ("sas", 24.0, 2000)
    assert cli.ReportSettings(link_base_url="https://proxy/").link_base_url == "https://proxy/"
