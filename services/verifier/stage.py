"""The verifier's stage: its handler with the clients and metrics it needs.

Hashed groups in, colour-checked groups out. `python -m services.verifier` runs it with the
Kafka runner (__main__.py); `dedup scan` opens it in its own process, with no Kafka.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dedup.runtime.contract import Stage
from dedup.v1.groups_pb2 import CandidateGroup
from services.verifier.colour_check import ColourPolicy
from services.verifier.handler import STAGE, Verifier
from services.verifier.settings import VerifierSettings


@asynccontextmanager
async def open_stage(settings: VerifierSettings) -> AsyncIterator[Stage[CandidateGroup]]:
    verifier = Verifier(
        ColourPolicy(
            min_lightness_correlation=settings.min_lightness_correlation,
            max_colour_distance=settings.max_colour_distance,
        )
    )
    yield Stage(STAGE, CandidateGroup, verifier.handle)
