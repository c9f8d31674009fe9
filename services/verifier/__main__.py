"""`python -m services.verifier`: hashed groups in, colour-checked groups out."""

from dedup.runtime.stage import main
from dedup.settings import load_settings
from services.verifier.handler import STAGE
from services.verifier.settings import VerifierSettings
from services.verifier.stage import open_stage

if __name__ == "__main__":
    main(STAGE, load_settings(VerifierSettings), open_stage)
