"""`python -m services.ranker`: matched groups in, decisions out (one replica only)."""

from dedup.runtime import main
from services.ranker.service import STAGE, open_stage
from services.ranker.settings import RankerSettings

if __name__ == "__main__":
    main(STAGE, RankerSettings(), open_stage)
