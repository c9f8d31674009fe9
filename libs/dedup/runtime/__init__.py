"""The stage runtime: the only package that imports aiokafka."""

from dedup.runtime.kafka import Publisher, ensure_topics
from dedup.runtime.stage import Output, Stage, StageRunner, main, serve

__all__ = ["Output", "Publisher", "Stage", "StageRunner", "ensure_topics", "main", "serve"]
