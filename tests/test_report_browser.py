"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools
protocol (tests/support/cdp.py). A 100,000-image report opens in under 3 s, search finds a
file, a sort reorders, hostile names stay text, and screenshots are written under the
test's tmp_path (report-100k.png, report-small.png; pytest prints where).

Needs no stack: the rows are made here. stack/setup.sh installs chromium; without it the
test is skipped and says so.
"""

from __future__ import annotations

import base64
import io
import random
import time
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

from dedup.report import gallery
from dedup.report.model import Row
from tests.support import cdp

BROWSER = cdp.browser_path()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium (Debian's package; stack/setup.sh installs it)"
)
OPEN_LIMIT_S = 3.0
NEEDLE = "holidays/2019/needle-kitten-on-the-roof.jpg"
HOSTILE = "</script><img src=x onerror=\"document.title='pwned'\">.jpg"
PARTS = {"resolution": 0.86, "sharpness": 0.61, "noise": 0.93, "jpeg_quality": 0.9, "exposure": 1.0}


def image(n: int, name: str, **kw: object) -> Row:
    base: dict[str, object] = {
        "image_id": f"{n:08x}",
        "container": "",
        "path": name,
        "url": f"file:///photos/{name}",
        "cluster": f"{n:08x}",
        "decision": "unique",
        "keep": True,
        "duplicate_of": "",
        "status": "ok",
        "reason": "unique: no copy found",
        "quality": 0.5,
        "size_bytes": 100_000 + n % 5_000_000,
        "width": 4000,
        "height": 3000,
        "quality_parts": PARTS,
    }
    return Row(**(base | kw))  # type: ignore[arg-type]


def synthetic_rows(total: int, seed: int = 13) -> list[Row]:
    """`total` images: about 60% in clusters of 2 to 6, similar pairs, unique images, a few
    unreadable ones and files that are no image; one named NEEDLE, one HOSTILE."""
    rng = random.Random(seed)
    rows: list[Row] = []
    n = 0
    while n < total * 0.6:
        size = rng.randint(2, 6)
        kept = f"{n:08x}"
        for k in range(size):
            name = f"camera/{n // 1000:03d}/IMG_{n:06d}{'_copy' * k}.jpg"
            if k == 0:
                rows.append(
                    image(n, name, cluster=kept, decision="keep", quality=0.8,
                          reason=f"kept: the others are resized copies of it ({size} copies)")
                )  # fmt: skip
            else:
                rows.append(
                    image(n, name, cluster=kept, decision="duplicate", keep=False,
                          duplicate_of=kept, quality=0.6, size_bytes=rng.randint(1, 9) * 10**5,
                          scores={"wavelet_distance": rng.randint(0, 8),
                                  "inliers": rng.randint(40, 400),
                                  "aligned_residual": round(rng.random() / 10, 4)},
                          reason="resized copy of the kept copy; matcher (aligned-residual): 0.03")
                )  # fmt: skip
            n += 1
    while n < total - 3000:
        pair = n % 50 == 0
        a = image(n, f"scenes/{n:06d}.jpg", similar=(f"{n + 1:08x}",) if pair else ())
        rows.append(a)
        if pair:
            rows.append(image(n + 1, f"scenes/{n + 1:06d}-b.jpg", similar=(f"{n:08x}",)))
            n += 1
        n += 1
    while n < total - 1000:
        rows.append(image(n, f"broken/{n:06d}.jpg", decision="unreadable", status="corrupt",
                          reason="truncated JPEG", quality=0.0, quality_parts={}))  # fmt: skip
        n += 1
    while n < total:
        rows.append(image(n, f"docs/{n:06d}.txt", decision="unreadable", status="not_an_image",
                          reason="no image format recognises its bytes", quality=0.0))  # fmt: skip
        n += 1
    # A file to search for, in a cluster of its own; and a name that is markup.
    rows[1] = image(1, NEEDLE, cluster=rows[0].cluster, decision="duplicate", keep=False,
                    duplicate_of=rows[0].image_id, scores={"inliers": 99})  # fmt: skip
    rows[-3000] = image(total - 3000, HOSTILE)
    return rows


def thumbnail(colour: tuple[int, int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", (160, 120), colour).save(out, "JPEG", quality=70)
    return gallery.DATA_URI_PREFIX + base64.b64encode(out.getvalue()).decode()


LIST_NAMES = "[...document.querySelectorAll('#list .item .name')].map(e => e.textContent)"
KEPT_NAMES = (
    "[...document.querySelectorAll('#list .cluster figure.kept a')].map(e => e.textContent)"
)
PRESSED = (
    "document.querySelector(\"button[data-sort='{}']\").getAttribute('aria-pressed') === 'true'"
)
HEADINGS = "[...document.querySelectorAll('#list .cluster h2')].map(e => e.textContent)"


COUNT = "Number(document.querySelector('.pager .count').dataset.count)"


async def choose(page: cdp.Page, selector: str, value: str) -> None:
    """Pick an option of a <select>, as a person would (the change event follows)."""
    chosen = await page.evaluate(
        f"(() => {{ const s = document.querySelector({selector!r}); s.value = {value!r};"
        " s.dispatchEvent(new Event('change')); return s.value; })()"
    )
    assert chosen == value, f"{selector} has no option {value!r}"


async def open_report(page: cdp.Page, path: Path) -> tuple[float, int]:
    """Open the file; (seconds from the navigation to the first page of items shown,
    the page's own performance.now() at that moment in ms)."""
    started = time.perf_counter()
    await page.navigate(path.as_uri())
    rendered = await page.wait_for(
        "document.querySelector('#list .item') && document.documentElement.dataset.renderedMs",
        seconds=60,
    )
    return time.perf_counter() - started, int(rendered)


async def test_a_100000_image_report_opens_quickly_searches_and_sorts(tmp_path: Path) -> None:
    assert BROWSER is not None
    total = 100_000
    rows = synthetic_rows(total)
    t0 = time.perf_counter()
    page_html = gallery.render(rows, {}, title="100,000 images", source="synthetic")
    built = time.perf_counter() - t0
    report = tmp_path / "report-100k.html"
    report.write_text(page_html, encoding="utf-8")
    size_mb = report.stat().st_size / 1e6
    async with cdp.chromium(BROWSER) as browser:
        page = await browser.new_page()
        seconds, in_page_ms = await open_report(page, report)
        heap = await page.evaluate("performance.memory.usedJSHeapSize") / 1e6
        print(
            f"\n100k report: {size_mb:.1f} MB, built in {built:.2f} s, first page shown "
            f"{seconds:.2f} s after navigation (in-page performance.now {in_page_ms} ms), "
            f"JS heap {heap:.0f} MB"
        )
        assert seconds < OPEN_LIMIT_S, f"the 100k report took {seconds:.2f} s to show"
        assert await page.evaluate("document.querySelectorAll('#list .cluster').length") == 25
        tabs = await page.evaluate(
            "[...document.querySelectorAll('nav.tabs button')].map(b => b.textContent)"
        )
        assert any(t.startswith("All files (100000)") for t in tabs), tabs
        assert any(t.startswith("Unique (") for t in tabs) and any(
            t.startswith("Not images (1000)") for t in tabs
        )

        # The default order: the most bytes to free first. A sort by name reorders.
        before = await page.evaluate(KEPT_NAMES)
        freed = [h.split(" · ")[1] for h in await page.evaluate(HEADINGS)]
        assert all(f.endswith(" MB to free") for f in freed), freed
        megabytes = [float(f.split()[0]) for f in freed]
        assert megabytes == sorted(megabytes, reverse=True), freed
        await page.click("button[data-sort='name']")
        await page.wait_for(PRESSED.format("name"))
        after = await page.evaluate(KEPT_NAMES)
        assert after != before and after == sorted(after), after
        await page.click("button[data-sort='cluster size']")
        await page.wait_for(PRESSED.format("cluster size"))
        sizes = [int(h.split(" images")[0]) for h in await page.evaluate(HEADINGS)]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] == 6, sizes
        await page.click("button[data-sort='cluster size']")  # again: the other way round
        await page.wait_for(f"{HEADINGS}[0].startsWith('2 images')")

        # Filters: clusters of five and more, then those freeing at least 1 MB too.
        total_clusters = await page.evaluate(COUNT)
        await choose(page, "#min-size", "5")
        big = await page.wait_for(f"{COUNT} < {total_clusters} && {COUNT}")
        assert {int(h.split(" images")[0]) for h in await page.evaluate(HEADINGS)} <= {5, 6}
        await choose(page, "#min-freed", "1000000")
        assert await page.wait_for(f"{COUNT} < {big} && {COUNT}")
        await choose(page, "#min-size", "2")
        await choose(page, "#min-freed", "0")
        assert await page.wait_for(f"{COUNT} === {total_clusters}")

        # Search finds the file among 100,000 (it is in a cluster on some page).
        t1 = time.perf_counter()
        await page.type_into("#search", "needle-kitten")
        found = await page.wait_for(f"{LIST_NAMES}.filter(n => n === {NEEDLE!r}).length")
        print(f"search: {time.perf_counter() - t1:.2f} s")
        assert found == 1
        assert await page.evaluate("document.querySelectorAll('#list .cluster').length") == 1
        assert "1\N{EN DASH}1 of 1" in await page.evaluate(
            "document.querySelector('.pager .count').textContent"
        )
        shot = await page.screenshot(tmp_path / "report-100k.png")
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000

        # The unique images are listed, and a hostile name is text, not markup.
        await page.click("#tab-unique")
        await page.wait_for(
            "document.querySelector('#tab-unique').getAttribute('aria-selected') === 'true'"
        )
        await page.evaluate(
            "(() => { const s = document.querySelector('#search'); s.value = '';"
            " s.dispatchEvent(new Event('input')); })()"
        )
        await page.type_into("#search", "onerror")
        assert await page.wait_for(f"{LIST_NAMES}.includes({HOSTILE!r})")
        assert await page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert await page.evaluate("document.title") == "100,000 images"


async def test_a_small_report_shows_pictures_the_why_and_the_quality_parts(tmp_path: Path) -> None:
    assert BROWSER is not None
    red, pink, sky = thumbnail((200, 30, 30)), thumbnail((230, 120, 130)), thumbnail((40, 90, 220))
    rows = [
        image(1, "best.jpg", cluster="c1", decision="keep", quality=0.81,
              reason="kept: the other copy is a resized copy of it"),
        image(2, "best-small.jpg", cluster="c1", decision="duplicate", keep=False,
              duplicate_of=f"{1:08x}", quality=0.42,
              scores={"inliers": 210, "aligned_residual": 0.018},
              reason="resized copy of the kept copy; matcher (aligned-residual): 0.018"),
        image(3, "stereo-left.jpg", similar=(f"{4:08x}",),
              similar_reasons={f"{4:08x}": "matcher: residual 0.21 after alignment: another shot"}),
        image(4, "stereo-right.jpg", similar=(f"{3:08x}",)),
        image(5, "notes.txt", decision="unreadable", status="not_an_image", reason="not an image"),
    ]  # fmt: skip
    thumbs = {f"{1:08x}": red, f"{2:08x}": pink, f"{3:08x}": sky, f"{4:08x}": sky}
    report = tmp_path / "report-small.html"
    report.write_text(gallery.render(rows, thumbs, title="small"), encoding="utf-8")
    async with cdp.chromium(BROWSER) as browser:
        page = await browser.new_page()
        await open_report(page, report)
        assert await page.evaluate("document.querySelector('.cluster .why').textContent") == (
            "kept: the other copy is a resized copy of it"
        )
        parts = await page.evaluate("document.querySelector('.cluster .parts').textContent")
        assert parts.startswith("resolution 0.86 · sharpness 0.61")
        assert await page.evaluate("document.querySelectorAll('.cluster figure img').length") == 2
        assert (
            await page.evaluate("document.querySelector('.cluster a').href")
            == "file:///photos/best.jpg"
        )
        await page.click("#tab-similar")
        await page.wait_for("document.querySelectorAll('.pair figure img').length === 2")
        names = await page.evaluate(LIST_NAMES)
        assert names == ["stereo-left.jpg", "stereo-right.jpg"]
        assert await page.evaluate("document.querySelector('.pair .why').textContent") == (
            "matcher: residual 0.21 after alignment: another shot"
        )
        # The thumbnails decode (data URIs, which the page's policy allows); lazily, so wait.
        assert await page.wait_for(
            "[...document.querySelectorAll('.pair img')]"
            ".every(i => i.complete && i.naturalWidth === 160)"
        )
        await page.screenshot(tmp_path / "report-small.png")


async def test_the_pages_links_are_the_files_urls(tmp_path: Path) -> None:
    """The page rebuilds most links from a prefix and the name (a smaller file): the URL
    it makes must be the file's own, whatever the name holds."""
    assert BROWSER is not None
    names = ["a b/ü #1?.jpg", "(it's)!~*.jpg", "x%20y&z=1.jpg", "emoji 📷/ok.jpg", "plain.jpg"]
    root = PurePosixPath("/photos/trip")
    rows = [image(n, name, url=(root / name).as_uri()) for n, name in enumerate(names)]
    data = gallery.data(rows, {})
    assert all(isinstance(r[gallery.IMAGE_COLUMNS.index("url")], int) for r in data["images"])
    report = tmp_path / "links.html"
    report.write_text(gallery.render(rows, {}), encoding="utf-8")
    async with cdp.chromium(BROWSER) as browser:
        page = await browser.new_page()
        await open_report(page, report)  # no clusters: it opens on all files
        hrefs = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#list .name')]"
            ".map(a => [a.textContent, a.getAttribute('href')]))"
        )
        # An empty folder's report opens too, and says so.
        empty = tmp_path / "empty.html"
        empty.write_text(gallery.render([], {}), encoding="utf-8")
        await page.navigate(empty.as_uri())
        assert (
            await page.wait_for(
                "document.documentElement.dataset.renderedMs && "
                "document.querySelector('#list .empty').textContent"
            )
            == "Nothing here."
        )
    assert hrefs == {name: (root / name).as_uri() for name in names}
