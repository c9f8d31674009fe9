"""Clusters compared by their members, whatever their ids are."""

from collections import defaultdict


def partition(clusters: dict[str, str]) -> set[frozenset[str]]:
    """The grouping of names (name -> cluster id), whatever the cluster ids are."""
    members: dict[str, set[str]] = defaultdict(set)
    for name, cluster in clusters.items():
        members[cluster].add(name)
    return {frozenset(m) for m in members.values()}
