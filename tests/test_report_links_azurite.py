"""The report's links to blobs work: against a private Azurite (the set-up's, on a free
port, with an account of its own), a bare blob URL answers 403, the report's link (the
container's read-only SAS that the page appends) answers 200 with the blob, in
headless Chromium too (a linked working copy loads as the thumbnail); another container
stays closed. DEDUP_REPORT_LINK_BASE_URL moves the links under a base instead.

Needs no stack: Azurite is started here (stack/setup.sh installs it, and chromium).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from pydantic import SecretStr

from dedup.report import cli, gallery
from dedup.report.model import Row
from tests.support import cdp

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "stack" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
BROWSER = cdp.browser_path()
pytestmark = pytest.mark.skipif(
    not AZURITE.exists(), reason="no Azurite (stack/setup.sh installs it under stack/azurite)"
)
ACCOUNT = "reportlinks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def private_azurite(folder: Path) -> AsyncIterator[str]:
    """Azurite's blob service on a free port; its connection string."""
    port, key = free_port(), base64.b64encode(secrets.token_bytes(32)).decode()
    proc = await asyncio.create_subprocess_exec(
        str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--location", str(folder), "--skipApiVersionCheck", "--disableTelemetry", "--loose",
        env=os.environ | {"AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.1)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        proc.terminate()
        await proc.wait()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 160, 60)).save(out, "JPEG")
    return out.getvalue()


async def test_report_links_open_private_blobs(tmp_path: Path) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with private_azurite(tmp_path / "azurite") as conn:
        async with BlobServiceClient.from_connection_string(conn) as service:
            for name in ("uploads", "derived", "other"):
                await service.create_container(name)
            blob = service.get_blob_client("uploads", "holiday (1)/a b.jpg")
            await blob.upload_blob(b"the original")
            copy = service.get_blob_client("derived", "wc/a.jpg")
            await copy.upload_blob(jpeg())
            other = service.get_blob_client("other", "x.jpg")
            await other.upload_blob(b"not yours")
        r = Row(image_id="a", container="uploads", path="holiday (1)/a b.jpg", url=blob.url,
                cluster="a", decision="unique", keep=True, duplicate_of="", status="ok",
                reason="", quality=0.5, size_bytes=12, width=64, height=48,
                working_copy_url=copy.url, similar=("b",))  # fmt: skip
        # Another shot of the scene, so that the page shows the pair as pictures.
        shot = replace(
            r,
            image_id="b",
            path="b.jpg",
            url=blob.url.replace("holiday%20%281%29/a%20b", "b"),
            cluster="b",
            similar=("a",),
        )
        settings = cli.ReportSettings(blob_connection_string=SecretStr(conn))
        rows, thumbs, suffix = await cli.linked(settings, [r, shot], {"a": copy.url}, "sas", 1)
        assert sorted(suffix) == ["uploads"] and "sp=r" in suffix["uploads"]
        assert thumbs["a"].startswith(copy.url + "?") and "sr=c" in thumbs["a"]

        async with aiohttp.ClientSession() as http:

            async def get(url: str) -> tuple[int, bytes]:
                async with http.get(url) as response:
                    return response.status, await response.read()

            assert (await get(blob.url))[0] == 403  # the bare URL: what the old report linked
            assert await get(blob.url + suffix["uploads"]) == (200, b"the original")
            assert (await get(other.url + suffix["uploads"]))[0] == 403  # that container only

            page = tmp_path / "report.html"
            page.write_text(gallery.render(rows, thumbs, link_suffix=suffix), encoding="utf-8")
            if BROWSER is not None:  # the link as the page makes it, and the thumbnail
                async with cdp.chromium(BROWSER) as browser:
                    tab = await browser.new_page()
                    await tab.navigate(page.as_uri())
                    await tab.wait_for("!!document.querySelector('#list .item')")
                    await tab.click("#tab-similar")
                    href = await tab.wait_for("document.querySelector('#list .pair .name').href")
                    assert href == blob.url + suffix["uploads"]
                    assert await get(href) == (200, b"the original")
                    # The working copy, linked with its own container's SAS, loads.
                    assert (
                        await tab.wait_for(
                            "(document.querySelector('#list .pair img') || {}).naturalWidth"
                        )
                        == 64
                    )
            moved, moved_thumbs, none = await cli.linked(
                settings, [r], {"a": copy.url}, "sas", 1, "https://proxy.example/b/"
            )
            assert (
                none == {}
                and moved[0].url == "https://proxy.example/b/uploads/holiday%20%281%29/a%20b.jpg"
            )
            assert moved_thumbs["a"] == "https://proxy.example/b/derived/wc/a.jpg"
            plain, plain_thumbs, empty = await cli.linked(
                settings, [r], {"a": copy.url}, "plain", 1
            )
            assert empty == {} and plain[0].url == blob.url and plain_thumbs["a"] == copy.url
