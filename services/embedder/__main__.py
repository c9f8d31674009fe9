"""`python -m services.embedder`: candidate groups in, groups with embedding evidence out."""

from dedup.runtime.stage import main
from dedup.settings import load_settings
from services.embedder.handler import STAGE
from services.embedder.settings import EmbedderSettings
from services.embedder.stage import open_stage

if __name__ == "__main__":
    main(STAGE, load_settings(EmbedderSettings), open_stage)
