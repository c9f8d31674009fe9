"""The matcher's settings: environment variables DEDUP_MATCHER_*."""

from pydantic import Field

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import KafkaTopic, RuntimeSettings, service_config
from services.matcher.geometry import DescriptorMatching, Detector, MatchParams, MatchPolicy

PARAMS = MatchParams()
POLICY = MatchPolicy()


class MatcherSettings(RuntimeSettings, BlobSettings):
    model_config = service_config("matcher")

    input_topic: KafkaTopic = topics.EMBEDDED
    output_topic: KafkaTopic = topics.MATCHED
    http_port: int = 9104

    # Local features (services/matcher/geometry.py).
    detector: Detector = PARAMS.detector
    max_features: int = Field(PARAMS.max_features, ge=50, le=10_000)
    # A copy is tried on this many of each side's strongest features first (0: never).
    first_features: int = Field(PARAMS.first_features, ge=0, le=10_000)
    # Working copies shorter than this (longer side, px) are enlarged before detection.
    min_side: int = Field(PARAMS.min_side, ge=64, le=2048)
    # Lowe's ratio test: best match distance < ratio * second best.
    ratio: float = Field(PARAMS.ratio, gt=0.0, le=1.0)
    # RANSAC reprojection threshold, in pixels of the new image's working copy.
    ransac_threshold: float = Field(PARAMS.ransac_threshold, gt=0.0, le=50.0)
    # The ratio test's two nearest neighbours: an LSH index (ORB) or brute force.
    descriptor_matching: DescriptorMatching = PARAMS.descriptor_matching
    # LSH: each orientation screened first by the index's own buckets (no multi-probe);
    # fewer RANSAC inliers there than this reject it without the full matching (0: never).
    screen_inliers: int = Field(PARAMS.screen_inliers, ge=0, le=1000)
    # Skip the checks that cannot change the verdict (README, "What it does"):
    # ECC only for residuals in (min(refine_above, flow_above), refine_until] (above it
    # with < 50 inliers), the displacement check only in (flow_above, max_residual].
    skip_decided: bool = PARAMS.skip_decided
    refine_until: float = Field(PARAMS.refine_until, gt=0.0, le=1.0)
    flow_above: float = Field(PARAMS.flow_above, ge=0.0, le=1.0)

    # The verdict, chosen on data (bench/matcher_eval.py): DUPLICATE needs at least
    # min_inliers RANSAC inliers and an aligned residual of at most max_residual; as many
    # inliers with a larger residual is another shot of the scene (SIMILAR).
    min_inliers: int = Field(POLICY.min_inliers, ge=4)
    # ...or, where the pair is too flat to check the alignment, min_unchecked_inliers.
    min_unchecked_inliers: int = Field(POLICY.min_unchecked_inliers, ge=4)
    max_residual: float = Field(POLICY.max_residual, gt=0.0, le=1.0)
    # ...and at most this fraction of the aligned overlap's textured pixels displaced
    # (dense optical flow after alignment: parallax or motion; README, "Other shots").
    max_displaced: float = Field(POLICY.max_displaced, gt=0.0, le=1.0)
    # ...and textured windows spanning at least this share of either picture's height and
    # width (two pictures under one caption or logo align on it alone; README, step 6).
    min_spread: float = Field(POLICY.min_spread, ge=0.0, le=1.0)
    # Aligned copies, no features: a hash candidate at most aligned_max_pdq from the new
    # image (at its pdq_transform) whose content has the same aspect ratio once turned
    # (log ratio within aligned_aspect_tolerance) is aligned by the turn and a scale, and
    # DUPLICATE at a residual of at most aligned_max_residual; otherwise the full path.
    # aligned_max_pdq -1: never.
    aligned_max_pdq: int = Field(POLICY.aligned_max_pdq, ge=-1, le=256)
    aligned_aspect_tolerance: float = Field(POLICY.aligned_aspect_tolerance, ge=0.0, le=1.0)
    aligned_max_residual: float = Field(POLICY.aligned_max_residual, ge=0.0, le=1.0)

    # Features of recently seen working copies, by image id and e_tag (LRU, bounded in
    # bytes: a 512-px working copy takes about 0.3 MB with its features).
    cache_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # Verdicts of recently verified pairs (both e_tags known), by the two (id, e_tag): the
    # other direction is answered from it. About 0.8 kB a pair (cache.pair_bytes).
    pair_cache_bytes: int = Field(32 * 1024 * 1024, ge=0)
    # A working copy is small (<= 512 px JPEG); anything bigger is refused unread.
    working_copy_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
