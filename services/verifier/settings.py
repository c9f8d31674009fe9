"""The verifier's settings: environment variables DEDUP_VERIFIER_*."""

from pydantic import Field

from dedup import topics
from dedup.settings import KafkaTopic, RuntimeSettings, service_config
from services.verifier.colour_check import ColourPolicy

POLICY = ColourPolicy()


class VerifierSettings(RuntimeSettings):
    model_config = service_config("verifier")

    input_topic: KafkaTopic = topics.HASHED
    output_topic: KafkaTopic = topics.VERIFIED
    http_port: int = 9102

    # The colour policy (services/verifier/colour_check.py; chosen on data with
    # bench/verifier_eval.py): a candidate is rejected only when its lightness layout is
    # inverted or unrelated (correlation below the first) AND its colours are far apart
    # (distance above the second).
    min_lightness_correlation: float = Field(POLICY.min_lightness_correlation, ge=-1.0, le=1.0)
    max_colour_distance: float = Field(POLICY.max_colour_distance, ge=0.0, le=1.0)
