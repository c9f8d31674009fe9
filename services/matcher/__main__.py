"""`python -m services.matcher`: embedded groups in, matched groups out."""

from dedup.runtime.stage import main
from dedup.settings import load_settings
from services.matcher.handler import STAGE
from services.matcher.settings import MatcherSettings
from services.matcher.stage import open_stage

if __name__ == "__main__":
    main(STAGE, load_settings(MatcherSettings), open_stage)
