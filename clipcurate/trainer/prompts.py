"""Class names and prompt templates for zero-shot classification.

Sources, chosen by file type (``dataset`` picks one entry of a multi-dataset file):

* CLIP_benchmark JSON (``en_zeroshot_classification_templates.json``,
  ``en_classnames.json``): an object ``dataset -> list``; templates use ``{c}``.
* OpenAI CLIP ``prompts.md``: ``## Dataset`` sections with ``classes = [...]`` and
  ``templates = [...]`` Python literals (read with ``ast.literal_eval``, never executed).
* A JSON list, or a text file with one entry per line (``#`` comments allowed).
* A literal comma list (class names only), e.g. ``"cat,dog"``.

Templates may use ``{c}`` or ``{}`` as the class-name placeholder.
"""
from __future__ import annotations

import ast
import json
import os
import re

PROMPT_KINDS = ("classes", "templates")


def fill(template: str, classname: str) -> str:
    """Put ``classname`` into ``template`` (``{c}`` or ``{}``); ValueError if it has neither."""
    if "{c}" in template:
        return template.replace("{c}", classname)
    if "{}" in template:
        return template.replace("{}", classname)
    raise ValueError(f"template {template!r} has no {{c}} or {{}} placeholder")


def _pick(obj, path: str, dataset: str | None, kind: str) -> list[str]:
    if isinstance(obj, list):
        return [str(x) for x in obj]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON list or an object dataset -> list")
    if dataset is None:
        raise ValueError(f"{path} holds {kind} for several datasets; pick one with dataset=... "
                         f"(choices: {', '.join(sorted(obj))})")
    key = _match_key(obj, dataset)
    if key is None:
        raise ValueError(f"{path}: no dataset {dataset!r}; choices: {', '.join(sorted(obj))}")
    return [str(x) for x in obj[key]]


def _match_key(names, dataset: str) -> str | None:
    norm = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())  # noqa: E731
    return next((k for k in names if norm(k) == norm(dataset)), None)


def parse_prompts_md(text: str) -> dict[str, dict[str, list[str]]]:
    """OpenAI's prompts.md -> {dataset: {"classes": [...], "templates": [...]}}."""
    out: dict[str, dict[str, list[str]]] = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        name, _, body = section.partition("\n")
        entry = {}
        for kind in PROMPT_KINDS:
            m = re.search(kind + r"\s*=\s*(\[.*?^\])", body, flags=re.S | re.M)
            if m:
                entry[kind] = [str(x) for x in ast.literal_eval(m.group(1))]
        if entry:
            out[name.strip()] = entry
    return out


def load_list(spec: str, kind: str, dataset: str | None = None) -> list[str]:
    """Class names (``kind="classes"``) or templates (``kind="templates"``) from ``spec``
    (a file as described in the module docstring, or a literal comma list)."""
    if kind not in PROMPT_KINDS:
        raise ValueError(f"kind={kind!r}; choose from {PROMPT_KINDS}")
    if not os.path.isfile(spec):
        if kind == "classes" and ("," in spec or not os.path.splitext(spec)[1]):
            return [s.strip() for s in spec.split(",") if s.strip()]
        raise FileNotFoundError(f"{kind} file {spec!r} not found")
    with open(spec, encoding="utf-8") as f:
        text = f.read()
    if spec.endswith(".json"):
        items = _pick(json.loads(text), spec, dataset, kind)
    elif spec.endswith(".md"):
        sections = parse_prompts_md(text)
        key = _match_key(sections, dataset or "")
        if key is None or kind not in sections[key]:
            raise ValueError(f"{spec}: no {kind} for dataset {dataset!r}; choices: {', '.join(sorted(sections))}")
        items = sections[key][kind]
    else:
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not items:
        raise ValueError(f"{spec}: no {kind} found")
    if kind == "templates":
        for t in items:
            fill(t, "x")  # raises on a template without a placeholder
    return items
