"""Which record of a duplicate group survives, and the counted stage that drops the rest.

Keeper rules (both deterministic, whatever the element order or worker count):

* ``smallest_uid``: the highest ``clip_score`` if any member has one, then the smallest uid;
* ``random``: a seeded draw, the member with the smallest ``seeded_int(seed, uid, purpose)``
  (then the smallest uid), scores ignored: each member is equally likely, and another seed
  draws again.  MetaCLIP 2 picks one alt text per image URL this way (``random.choice``).

Records arrive annotated with ``_dup_of`` (the keeper's uid) when they lose;
:class:`DropAnnotated` turns that into a counted drop with the stage's reason.
"""
from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam

from clipcurate.dedupe.config import URL_KEEP
from clipcurate.pipelines.stage import CountingDoFn, apply_stage
from clipcurate.schemas.status import OK
from clipcurate.schemas.uid import seeded_int

DUP_OF = "_dup_of"
KEEP_RULES = URL_KEEP  # the rules dedupe.url_keep accepts (one list, in the config)


def rank(uid: str, score: float | None) -> tuple:
    """Sort key: the smallest one is kept (scored before unscored, high score first, then uid)."""
    if score is None:
        return (1, 0.0, uid)
    return (0, -float(score), uid)


def check_rule(rule: str) -> str:
    if rule not in KEEP_RULES:
        raise ValueError(f"keep rule {rule!r}: choose from {', '.join(KEEP_RULES)}")
    return rule


def choose(members: Iterable[tuple[str, float | None]], rule: str = "smallest_uid", seed: int = 0,
           purpose: str = "keep") -> tuple[str, list[str]]:
    """``(keeper uid, [dropped uids])`` of ``(uid, score)`` members (duplicates of a uid ignored).

    ``rule`` is one of :data:`KEEP_RULES`; ``seed`` and ``purpose`` feed the ``random`` draw.
    """
    best = {}
    for uid, score in members:
        best.setdefault(uid, score)
    if check_rule(rule) == "random":
        ordered = sorted(best, key=lambda u: (seeded_int(seed, u, purpose), u))
        return ordered[0], ordered[1:]
    ordered = sorted(best.items(), key=lambda m: rank(*m))
    return ordered[0][0], [u for u, _ in ordered[1:]]


class DropAnnotated(CountingDoFn):
    """Drop records carrying ``_dup_of`` with ``reason``; the reject keeps ``duplicate_of``."""

    def __init__(self, stage: str, reason: str, keep_rejects: bool = False):
        super().__init__(stage, keep_rejects)
        self.reason = reason

    def decide(self, record: dict[str, Any]):
        if DUP_OF not in record:
            return OK, record
        rec = dict(record)
        dup = rec.pop(DUP_OF)
        return self.reason, dict(rec, duplicate_of=dup)


def _annotate(element):
    """(uid, {"rec": [records], "drop": [keeper uids]}) -> records, losers annotated."""
    _, grouped = element
    drops = sorted(set(grouped["drop"]))
    for rec in grouped["rec"]:
        yield dict(rec, **{DUP_OF: drops[0]}) if drops else rec


def apply_drops(records, drops, label: str, stage: str, reason: str, keep_rejects: bool):
    """Join records with ``(uid, keeper uid)`` drop decisions; return the stage dict."""
    keyed = records | f"{label}/KeyByUid" >> beam.Map(lambda r: (r["uid"], r))
    joined = ({"rec": keyed, "drop": drops}
              | f"{label}/Join" >> beam.CoGroupByKey()
              | f"{label}/Annotate" >> beam.FlatMap(_annotate))
    return apply_stage(joined, f"{label}/Drop", DropAnnotated(stage, reason, keep_rejects))
