"""`python -m services.ranker`: matched groups in, decisions out (one replica only)."""

from dedup.runtime.stage import main
from dedup.settings import load_settings
from services.ranker.settings import RankerSettings
from services.ranker.stage import STAGE, open_stage

if __name__ == "__main__":
    main(STAGE, load_settings(RankerSettings), open_stage)
