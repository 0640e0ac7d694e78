"""Connected components of the near-duplicate graph, computed distributedly in Beam.

In: a PCollection of edges ``(u, v)`` (uids, ``u != v``).  Out: ``(node, label)`` for every
node that has an edge, ``label`` = the smallest uid of its component, plus the number of
nodes whose labelling had not converged (0 in every run we measured).

Algorithm: alternating Large-Star / Small-Star rounds (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014), each a GroupByKey over edges; no step
collects more than one node's neighbourhood on a worker.  It converges in O(log^2 n)
rounds; Beam graphs are static, so ``rounds`` rounds are unrolled and a final check counts
nodes that are not yet in star form (not converged means some components stay split:
fewer removals, never a wrong one).  The result is a function of the edge set only, so it
does not depend on worker count or bundle order.
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam


def large_star(node: str, neighbours: Iterable[str]):
    """Connect every larger neighbour of ``node`` to the minimum of its closed neighbourhood."""
    nbrs = set(neighbours)
    m = min(nbrs | {node})
    for u in nbrs:
        if u > node:
            yield (u, m)


def small_star(node: str, smaller: Iterable[str]):
    """Connect ``node`` and its smaller neighbours to the minimum of them."""
    nbrs = set(smaller)
    m = min(nbrs)
    for u in nbrs | {node}:
        if u != m:
            yield (u, m)


def star_labels(node: str, links: Iterable[tuple[str, str]]):
    """``(node, label, ok)`` from a node's up-links (its parents) and down-links (its leaves)."""
    ups = {n for kind, n in links if kind == "up"}
    downs = any(kind == "down" for kind, _ in links)
    ok = len(ups) <= 1 and not (ups and downs)
    yield (node, min(ups) if ups else node, ok)


def _both_ways(edge):
    u, v = edge
    return [(u, v), (v, u)]


def _by_larger(edge):
    u, v = edge
    return (u, v) if u > v else (v, u)


def _links(edge):
    leaf, parent = _by_larger(edge)
    return [(leaf, ("up", parent)), (parent, ("down", leaf))]


class ConnectedComponents(beam.PTransform):
    """Edges ``(u, v)`` -> ``{"labels": (node, min node of component), "unconverged": n}``."""

    def __init__(self, rounds: int = 12):
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds={rounds} must be >= 1")
        self.rounds = rounds

    def expand(self, edges):
        for i in range(self.rounds):
            edges = (edges
                     | f"Large{i}/Both" >> beam.FlatMap(_both_ways)
                     | f"Large{i}/Group" >> beam.GroupByKey()
                     | f"Large{i}/Star" >> beam.FlatMapTuple(large_star)
                     | f"Small{i}/ByLarger" >> beam.Map(_by_larger)
                     | f"Small{i}/Group" >> beam.GroupByKey()
                     | f"Small{i}/Star" >> beam.FlatMapTuple(small_star))
        checked = (edges
                   | "Links" >> beam.FlatMap(_links)
                   | "GroupLinks" >> beam.GroupByKey()
                   | "Labels" >> beam.FlatMapTuple(star_labels))
        labels = checked | "Label" >> beam.Map(lambda t: (t[0], t[1]))
        unconverged = (checked
                       | "Bad" >> beam.Map(lambda t: 0 if t[2] else 1)
                       | "SumBad" >> beam.CombineGlobally(sum))
        return {"labels": labels, "unconverged": unconverged}


def components_reference(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find on one machine (tests only): node -> smallest node of its component."""
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        parent.setdefault(u, u)
        parent.setdefault(v, v)
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return {n: find(n) for n in parent}
