"""Every rule of dedup.invariants, one test each, and the runtime's DLQ path for them."""

from collections.abc import Sequence

import pytest

from dedup.errors import InvalidMessageError
from dedup.invariants import check, problems
from dedup.runtime.contract import Output, Stage
from dedup.runtime.stage import StageRunner
from dedup.tests.test_stage_outages import QuickSettings
from dedup.tests.test_stage_parts import record
from dedup.v1.events_pb2 import BlobEvent, BlobEventData
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict

OK = ImageStatus.IMAGE_STATUS_OK
KEY = b"img-1"


def good() -> CandidateGroup:
    return CandidateGroup(
        image_id="img-1",
        image=ImageFeatures(
            image_id="img-1",
            status=OK,
            width=640,
            height=480,
            size_bytes=12345,
            quality=0.7,
            pdq_quality=90,
            pdq_hash=bytes(32),
            wavelet_hash=bytes(32),
            pdq_dihedral=[bytes(32)] * 8,
        ),
        candidates=[
            Candidate(
                image_id="img-2",
                verdict=Verdict.VERDICT_PENDING,
                quality=0.5,
                scores=Scores(
                    pdq_distance=12,
                    wavelet_distance=20,
                    pdq_transform=3,
                    colour_distance=0.1,
                    embedding_similarity=0.93,
                    inliers=40,
                    inlier_ratio=0.8,
                    aligned_residual=0.02,
                ),
            )
        ],
        stages=["hasher", "verifier"],
    )


def broken(**changes: object) -> CandidateGroup:
    group = good()
    for path, value in changes.items():
        target: object = group
        *parents, name = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else getattr(target, part)  # type: ignore[index]
        setattr(target, name, value)
    return group


def test_a_good_group_and_a_good_event_pass() -> None:
    assert problems(good(), KEY, complete=True) == []
    event = BlobEvent(image_id="img-1", data=BlobEventData(content_length=10))
    assert problems(event, KEY) == []


def test_the_issue_s_nonsense_group_is_refused_with_every_reason() -> None:
    group = broken(image__image_id="other", image__width=-5, image__quality=float("nan"))
    group.image_id = "img-9"
    with pytest.raises(InvalidMessageError) as error:
        check(group, KEY)
    text = str(error.value)
    assert "key 'img-1' is not the image id 'img-9'" in text
    assert "image.image_id 'other' is not the group's 'img-9'" in text
    group = broken(image__width=-5, image__quality=float("nan"))
    text = "; ".join(problems(group, KEY))
    assert "image.width -5 is negative" in text and "image.quality nan is not in [0, 1]" in text


@pytest.mark.parametrize(
    ("key", "expected"),
    [(None, "has no key"), (b"img-2", "is not the image id"), (b"\xff", "is not the image id")],
)
def test_the_key_is_the_image_id(key: bytes | None, expected: str) -> None:
    (problem,) = problems(good(), key)
    assert expected in problem


def test_ids_are_not_empty() -> None:
    group = good()
    group.image_id = ""
    assert problems(group, b"") == [
        "image_id is empty",
        "image.image_id 'img-1' is not the group's ''",
    ]
    assert "candidates[0]: image_id is empty" in problems(broken(candidates__0__image_id=""), KEY)


@pytest.mark.parametrize("name", ["width", "height", "size_bytes"])
def test_sizes_are_never_negative_and_known_for_a_complete_ok_image(name: str) -> None:
    assert problems(broken(**{f"image__{name}": -1}), KEY) == [f"image.{name} -1 is negative"]
    zero = broken(**{f"image__{name}": 0})
    assert problems(zero, KEY) == []  # before the ranker, an OK image may not carry sizes
    assert problems(zero, KEY, complete=True) == [f"image.{name} is 0 for a readable image"]
    unreadable = broken(**{f"image__{name}": 0, "image__status": ImageStatus.IMAGE_STATUS_CORRUPT})
    assert problems(unreadable, KEY, complete=True) == []


def test_status_is_set_and_known() -> None:
    assert problems(broken(image__status=0), KEY) == ["image.status is unspecified"]
    assert problems(broken(image__status=99), KEY) == ["image.status 99 is unknown"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.5])
def test_qualities_are_finite_and_in_0_1(value: float) -> None:
    assert problems(broken(image__quality=value), KEY) == [
        f"image.quality {value} is not in [0, 1]"
    ]
    assert problems(broken(candidates__0__quality=value), KEY) == [
        f"candidates[0]: quality {value} is not in [0, 1]"
    ]


def test_quality_parts_are_finite() -> None:
    assert problems(broken(image__quality_parts__noise=float("nan")), KEY) == [
        "image.quality_parts.noise nan is not finite"
    ]


def test_pdq_quality_is_0_to_100() -> None:
    assert problems(broken(image__pdq_quality=101), KEY) == [
        "image.pdq_quality 101 is not in [0, 100]"
    ]


def test_hashes_of_an_ok_image_are_256_bits() -> None:
    assert problems(broken(image__pdq_hash=bytes(31)), KEY) == [
        "image.pdq_hash has 31 bytes, not 32"
    ]
    group = good()
    group.image.pdq_dihedral.append(b"x")
    assert problems(group, KEY) == ["image.pdq_dihedral holds a hash that is not 32 bytes"]


def test_a_candidate_is_not_the_image_itself() -> None:
    assert problems(broken(candidates__0__image_id="img-1"), KEY) == [
        "candidates[0] is the image itself ('img-1')"
    ]


def test_no_candidate_twice() -> None:
    group = good()
    group.candidates.append(group.candidates[0])
    assert problems(group, KEY) == ["candidates[1]: 'img-2' is listed twice"]


def test_enums_are_known() -> None:
    assert problems(broken(candidates__0__verdict=42), KEY) == [
        "candidates[0]: verdict 42 is unknown"
    ]
    assert problems(broken(candidates__0__source=42), KEY) == [
        "candidates[0]: source 42 is unknown"
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("pdq_distance", 257, "pdq_distance 257 is not in [0, 256]"),
        ("wavelet_distance", -1, "wavelet_distance -1 is not in [0, 256]"),
        ("pdq_transform", 8, "pdq_transform 8 is not in [0, 7]"),
        ("embedding_similarity", 1.5, "is not a cosine similarity in [-1, 1]"),
        ("embedding_similarity", float("nan"), "is not a cosine similarity in [-1, 1]"),
        ("inliers", -3, "inliers -3 is negative"),
        ("inlier_ratio", 1.2, "is not in [0, 1]"),
        ("colour_distance", float("inf"), "colour_distance inf is not a finite distance >= 0"),
        ("aligned_residual", -0.5, "aligned_residual -0.5 is not a finite distance >= 0"),
    ],
)
def test_scores_are_in_range(name: str, value: float, expected: str) -> None:
    (problem,) = problems(broken(**{f"candidates__0__scores__{name}": value}), KEY)
    assert problem.startswith("candidates[0]: ") and expected in problem


def test_absent_scores_are_not_checked() -> None:
    group = good()
    group.candidates[0].ClearField("scores")
    assert problems(group, KEY) == []


def test_stage_names_are_not_empty() -> None:
    group = good()
    group.stages.append("")
    assert problems(group, KEY) == ["stages holds an empty name"]


def test_event_rules() -> None:
    event = BlobEvent(image_id="img-1", data=BlobEventData(content_length=-1))
    assert problems(event, KEY) == ["data.content_length -1 is negative"]
    unknown = BlobEvent(image_id="img-1")
    unknown.schema = 9  # type: ignore[assignment]
    assert problems(unknown, KEY) == ["unknown schema 9"]


async def test_the_runtime_dead_letters_an_invalid_group_with_the_reasons() -> None:
    handled: list[CandidateGroup] = []

    async def handle(group: CandidateGroup) -> Sequence[Output]:
        handled.append(group)
        return []

    runner = StageRunner(
        Stage("ranker", CandidateGroup, handle, complete_input=True), QuickSettings()
    )
    bad = broken(image__width=-5, image__quality=float("nan"))
    (out,) = await runner._process(record(3, bad.SerializeToString()))
    assert handled == []
    assert out.topic == "t.in.dlq" and out.value == bad.SerializeToString()
    headers = dict(out.headers)
    assert headers["dedup-error-kind"] == b"parse"
    assert b"image.width -5 is negative" in headers["dedup-error"]
    assert b"image.quality nan is not in [0, 1]" in headers["dedup-error"]
    # A valid group goes through.
    await runner._process(record(4, good().SerializeToString()))
    assert len(handled) == 1
