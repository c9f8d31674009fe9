"""The stage runtime: the only package that imports aiokafka."""

from dedup.runtime.kafka import Publisher, Record, ensure_topics, read_topic
from dedup.runtime.stage import OpenStage, Output, Stage, StageRunner, main, serve

__all__ = [
    "OpenStage",
    "Output",
    "Publisher",
    "Record",
    "Stage",
    "StageRunner",
    "ensure_topics",
    "main",
    "read_topic",
    "serve",
]
