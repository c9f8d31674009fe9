"""The matcher's settings: environment variables DEDUP_MATCHER_*."""

from pydantic import Field

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import RuntimeSettings, service_config
from services.matcher.geometry import Detector


class MatcherSettings(RuntimeSettings, BlobSettings):
    model_config = service_config("matcher")

    input_topic: str = topics.EMBEDDED
    output_topic: str = topics.MATCHED
    http_port: int = 9104

    # Local features (services/matcher/geometry.py).
    detector: Detector = Detector.ORB
    max_features: int = Field(1000, ge=50, le=10_000)
    # Working copies shorter than this (longer side, px) are enlarged before detection.
    min_side: int = Field(384, ge=64, le=2048)
    # Lowe's ratio test: best match distance < ratio * second best.
    ratio: float = Field(0.8, gt=0.0, le=1.0)
    # RANSAC reprojection threshold, in pixels of the new image's working copy.
    ransac_threshold: float = Field(4.0, gt=0.0, le=50.0)

    # The verdict, chosen on data (bench/matcher_eval.py): DUPLICATE needs at least
    # min_inliers RANSAC inliers and an aligned residual of at most max_residual; as many
    # inliers with a larger residual is another shot of the scene (SIMILAR).
    min_inliers: int = Field(12, ge=4)
    max_residual: float = Field(0.2, gt=0.0, le=1.0)

    # Features of recently seen working copies, by image id (LRU, bounded in bytes: a
    # 512-px working copy takes about 0.3 MB with its features).
    cache_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # A working copy is small (<= 512 px JPEG); anything bigger is refused unread.
    working_copy_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
