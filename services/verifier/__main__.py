"""`python -m services.verifier`: hashed groups in, colour-checked groups out."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dedup.runtime.contract import Stage
from dedup.settings import load_settings
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


if __name__ == "__main__":
    # The Kafka runner, imported here: `dedup scan` opens the stage without it.
    from dedup.runtime.stage import main

    main(STAGE, load_settings(VerifierSettings), open_stage)
