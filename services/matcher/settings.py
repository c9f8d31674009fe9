"""The matcher's settings: environment variables DEDUP_MATCHER_*."""

from pydantic import Field

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import RuntimeSettings, service_config
from services.matcher.geometry import Detector, MatchParams
from services.matcher.handler import MatchPolicy

PARAMS = MatchParams()
POLICY = MatchPolicy()


class MatcherSettings(RuntimeSettings, BlobSettings):
    model_config = service_config("matcher")

    input_topic: str = topics.EMBEDDED
    output_topic: str = topics.MATCHED
    http_port: int = 9104

    # Local features (services/matcher/geometry.py).
    detector: Detector = PARAMS.detector
    max_features: int = Field(PARAMS.max_features, ge=50, le=10_000)
    # Working copies shorter than this (longer side, px) are enlarged before detection.
    min_side: int = Field(PARAMS.min_side, ge=64, le=2048)
    # Lowe's ratio test: best match distance < ratio * second best.
    ratio: float = Field(PARAMS.ratio, gt=0.0, le=1.0)
    # RANSAC reprojection threshold, in pixels of the new image's working copy.
    ransac_threshold: float = Field(PARAMS.ransac_threshold, gt=0.0, le=50.0)

    # The verdict, chosen on data (bench/matcher_eval.py): DUPLICATE needs at least
    # min_inliers RANSAC inliers and an aligned residual of at most max_residual; as many
    # inliers with a larger residual is another shot of the scene (SIMILAR).
    min_inliers: int = Field(POLICY.min_inliers, ge=4)
    max_residual: float = Field(POLICY.max_residual, gt=0.0, le=1.0)
    # ...and at most this fraction of the aligned overlap's textured pixels displaced
    # (dense optical flow after alignment: parallax or motion; README, "Other shots").
    max_displaced: float = Field(POLICY.max_displaced, gt=0.0, le=1.0)

    # Features of recently seen working copies, by image id (LRU, bounded in bytes: a
    # 512-px working copy takes about 0.3 MB with its features).
    cache_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # A working copy is small (<= 512 px JPEG); anything bigger is refused unread.
    working_copy_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
