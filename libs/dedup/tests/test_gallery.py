"""The HTML report's builder: the data embedded once as JSON that no name can break out
of, every image in it (no limit), a script the page's policy names by its hash, safe
image sources and links. The page in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html import unescape
from pathlib import PurePosixPath

from PIL import Image

from dedup.report import gallery, model
from dedup.tests.helpers import row
from dedup.tests.test_report import DECISIONS, EVIL, K, decision
from dedup.v1.features_pb2 import QualityParts
from dedup.v1.groups_pb2 import Scores, Verdict

HOSTILE = "</script><img src=x onerror=alert(1)>"


def test_a_hostile_name_cannot_close_the_data_script_or_make_markup() -> None:
    rows = [
        row("x", HOSTILE, cluster="x", reason=HOSTILE, url="https://b/x.jpg"),
        row("y", EVIL, cluster="x", decision="duplicate", keep=False, duplicate_of="x",
            reason="</SCRIPT ><!--", url='http://blob/"><script>alert(3)</script>'),
        row("z", "a & b <\u2028> \udcff.jpg", cluster="z", decision="unique"),
    ]  # fmt: skip
    page = gallery.render(rows, {}, title=HOSTILE, source=EVIL)
    # The page's own two script elements, and no other tag from the data.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page and "<!--" not in page and "</SCRIPT" not in page
    body = page[page.index(f'id="{gallery.DATA_ID}">') :]
    body = body[: body.index("</script>")]
    assert not re.search("[<>&\u2028\u2029]", body.removeprefix(f'id="{gallery.DATA_ID}">'))
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in body
    # The title and source, in the markup, are HTML-escaped text.
    assert "<title>&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</title>" in page
    # JSON.parse (here json.loads) reads every name and reason back exactly.
    entries = gallery.image_entries(page)
    assert [e["name"] for e in entries] == [HOSTILE, EVIL, "a & b <\u2028> \udcff.jpg"]
    assert [e["reason"] for e in entries][:2] == [HOSTILE, "</SCRIPT ><!--"]
    # The script puts names in the page as text only.
    code = gallery.script()
    assert "innerHTML" not in code and "insertAdjacentHTML" not in code
    assert "document.write" not in code and "eval(" not in code
    # And nothing in it could end its own script element early.
    assert "</script" not in code.lower() and "<!--" not in code


def test_only_the_pages_own_script_may_run() -> None:
    page = gallery.render(model.rows(DECISIONS), {})
    digest = base64.b64encode(hashlib.sha256(gallery.script().encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    rules = unescape(policy[1])
    assert f"script-src 'sha256-{digest}'" in rules and "default-src 'none'" in rules
    assert f"<script>{gallery.script()}</script>" in page
    # Self-contained: nothing is fetched from anywhere (no CDN, no stylesheet, no font).
    assert not re.search(r"<(link|script)[^>]+(src|href)=", page)


def test_every_image_is_embedded_with_its_cluster_why_evidence_and_quality_parts() -> None:
    kept = decision("b", K.DECISION_KIND_KEEP, cluster_id="a", quality=0.9,
                    reason="kept: the other copies are resized copies of it",
                    quality_parts=QualityParts(resolution=0.5, sharpness=0.25, noise=1.0,
                                               jpeg_quality=0.9, exposure=0.0))  # fmt: skip
    rows = model.rows([kept, *DECISIONS[1:]])
    page = gallery.render(rows, {"b": "data:image/jpeg;base64,AAAA"})
    d = gallery.embedded(page)
    by_name = {e["name"]: e for e in gallery.image_entries(page)}
    assert set(by_name) == {r.name for r in rows}  # all 7: unique, unreadable, deleted too
    b, a = by_name["uploads/b.jpg"], by_name["uploads/a.jpg"]
    assert b["decision"] == "keep" and b["reason"].startswith("kept: the other copies")
    assert b["thumbnail"] == "data:image/jpeg;base64,AAAA" and a["thumbnail"] == ""
    # The parts as the hasher recorded them, a zero one too; none for an image without.
    assert b["quality_parts"] == {
        "resolution": 0.5, "sharpness": 0.25, "noise": 1.0, "jpeg_quality": 0.9, "exposure": 0.0
    }  # fmt: skip
    assert a["quality_parts"] == {}
    assert a["scores"] == {"pdq_distance": 4, "inliers": 120, "aligned_residual": 0.02}
    assert by_name["uploads/f.jpg"]["quality"] is None  # not read: no quality
    # One cluster (the kept copy's index first), the similar pair once.
    index = {e["name"]: n for n, e in enumerate(by_name.values())}
    assert d["clusters"] == [[index["uploads/b.jpg"], [index[f"uploads/{x}.jpg"] for x in "bac"]]]
    [(first, second, why)] = d["similar"]
    assert (first, second, d["reasons"][why]) == (
        index["uploads/d.jpg"],
        index["uploads/e.jpg"],
        "",
    )
    assert d["totals"] == vars(model.totals(rows))


def test_links_are_compact_and_come_back_whole() -> None:
    names = ["a b/ü #1?.jpg", "plain/x.jpg", "(it's)!~*.jpg", "x%20y.jpg"]
    root = PurePosixPath("/photos")
    rows = [
        row(f"i{n}", name, cluster=f"i{n}", decision="unique", url=(root / name).as_uri())
        for n, name in enumerate(names)
    ]
    rows.append(row("j", "elsewhere.jpg", cluster="j", url="https://h/other/name.jpg"))
    rows.append(row("k", "bad.jpg", cluster="k", url="javascript:alert(1)"))
    page = gallery.render(rows, {})
    d = gallery.embedded(page)
    assert d["url_prefixes"] == ["file:///photos/"]
    assert [e[gallery.IMAGE_COLUMNS.index("url")] for e in d["images"]] == [
        0, 0, 0, 0, "https://h/other/name.jpg", ""
    ]  # fmt: skip
    assert [e["url"] for e in gallery.image_entries(page)] == [r.url for r in rows[:5]] + [""]


def test_per_container_link_suffixes_are_embedded_once() -> None:
    rows = model.rows(DECISIONS)
    page = gallery.render(rows, {}, link_suffix={"uploads": "?sv=1&sig=a%2Bb"})
    d = gallery.embedded(page)
    assert d["link_suffix"] == {"uploads": "?sv=1&sig=a%2Bb"}
    assert d["containers"] == ["uploads"] and d["container_of"] == [0] * len(rows)
    assert page.count("sig=") == 1 and "?sv=1\\u0026sig=a%2Bb" in page
    assert gallery.embedded(gallery.render(rows, {}))["container_of"] == []


def test_only_our_data_uris_and_http_urls_are_image_sources() -> None:
    assert gallery.safe_src("data:image/jpeg;base64,AAAA")
    assert gallery.safe_src("https://acct.blob.core.windows.net/c/x.jpg")
    for bad in ("javascript:alert(1)", "data:text/html,<script>", "file:///etc/passwd", "", None):
        assert gallery.safe_src(bad) is None
    page = gallery.render(
        [row("x", "x.jpg", cluster="x")], {"x": 'javascript:alert(4)"'}, title="t"
    )
    assert gallery.image_entries(page)[0]["thumbnail"] == ""


def test_links_are_http_https_or_file_only() -> None:
    for good in ("https://a/b", "HTTP://a/b", "file:///x/y.jpg"):
        assert gallery.safe_link(good) == good
    for bad in ("javascript:alert(1)", " javascript:alert(1)", "java\tscript:x", "data:x", "",
                None, "no-scheme"):  # fmt: skip
        assert gallery.safe_link(bad) is None


def test_thumbnails_are_small_jpeg_data_uris() -> None:
    out = io.BytesIO()
    Image.new("RGB", (512, 384), (200, 30, 30)).save(out, "JPEG")
    uri = gallery.thumbnail_data_uri(out.getvalue())
    assert uri is not None and uri.startswith(gallery.DATA_URI_PREFIX)
    data = base64.b64decode(uri.removeprefix(gallery.DATA_URI_PREFIX))
    with Image.open(io.BytesIO(data)) as small:
        assert max(small.size) <= gallery.THUMBNAIL_SIDE and small.format == "JPEG"
    assert gallery.thumbnail_data_uri(b"not an image") is None


def test_thumbnails_go_to_the_largest_clusters_and_the_similar_pairs_in_turn() -> None:
    many = [
        d
        for k in range(5)
        for d in (
            decision(f"k{k}", K.DECISION_KIND_KEEP, cluster_id=f"c{k}"),
            decision(f"d{k}", K.DECISION_KIND_DUPLICATE, cluster_id=f"c{k}", size_bytes=10 * k),
        )
    ] + [decision("s1", K.DECISION_KIND_UNIQUE, similar=["s2"]),
         decision("s2", K.DECISION_KIND_UNIQUE, similar=["s1"])]  # fmt: skip
    rows = model.rows(many)
    assert [c.id for c in model.clusters(rows)] == ["c4", "c3", "c2", "c1", "c0"]
    assert [r.image_id for r in gallery.shown_images(rows, 4)] == ["k4", "s1", "d4", "s2"]
    assert len(gallery.shown_images(rows)) == 12
    # Every cluster is in the page, however many: the limit is on thumbnails only.
    assert len(gallery.embedded(gallery.render(rows, {}))["clusters"]) == 5


def test_the_score_and_part_names_are_the_protos() -> None:
    assert tuple(gallery.PART_NAMES) == tuple(f.name for f in QualityParts.DESCRIPTOR.fields)
    assert gallery.embedded(gallery.render([], {}))["score_names"] == [
        f.name for f in Scores.DESCRIPTOR.fields
    ]
    assert json.loads(gallery.script_json({"a": "<&>"})) == {"a": "<&>"}


def test_a_similar_pair_carries_why_it_is_another_shot() -> None:
    why = "matcher (aligned-residual): residual 0.21 > 0.08: another capture"
    d = decision("d", K.DECISION_KIND_UNIQUE, similar=["e"])
    d.links.add(image_id="e", verdict=Verdict.VERDICT_SIMILAR, reason=why)
    d.links.add(image_id="x", verdict=Verdict.VERDICT_DUPLICATE, reason="a copy")
    rows = model.rows([d, decision("e", K.DECISION_KIND_UNIQUE, similar=["d"])])
    assert rows[0].similar_reasons == {"e": why}
    page = gallery.embedded(gallery.render(rows, {}))
    [(a, b, reason)] = page["similar"]
    assert (a, b, page["reasons"][reason]) == (0, 1, why)
