"""`python -m services.hasher`: blob events in, candidate groups out."""

from dedup.runtime.stage import main
from dedup.settings import load_settings
from services.hasher.handler import STAGE
from services.hasher.settings import HasherSettings
from services.hasher.stage import open_stage

if __name__ == "__main__":
    main(STAGE, load_settings(HasherSettings), open_stage)
