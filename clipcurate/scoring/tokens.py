"""Captions -> token ids, exactly as the model's open_clip tokenizer makes them, but faster.

:class:`CaptionTokenizer` wraps a model's tokenizer (``LoadedClip.tokenizer``) and returns
``(ids int32 [n, context], truncated flags)``.  For open_clip's ``SimpleTokenizer`` (all
OpenAI/LAION/DFN CLIPs) it

* encodes each caption once (open_clip's ``__call__`` plus a length count encoded twice),
* skips ftfy + ``html.unescape`` for captions that are printable ASCII without ``&``
  (for those both are the identity; the whitespace/lower-casing is applied as open_clip
  does), and
* with ``backend="hf"`` (the default when the ``tokenizers`` package is installed) runs
  the byte-level BPE in Rust (HF ``tokenizers``), built from the tokenizer's own vocabulary
  and merges, with the same pre-tokenising pattern.  Captions holding a special-token
  string (``<start_of_text>``...) take the Python path.

The ids equal ``tokenizer(captions)`` (tests check all real captions in
``../shared/data``); truncation keeps the end token like open_clip.  Other tokenizers
(HF, SigLIP) are called as they are, with ``truncated`` all False.
"""
from __future__ import annotations

import logging
import re
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "hf", "python")
# printable ASCII except '&', plus tab/newline/CR: ftfy.fix_text and html.unescape leave it as is
_PLAIN_ASCII = re.compile(r"[\x20-\x25\x27-\x7e\t\n\r]*\Z")


def _is_simple(tokenizer) -> bool:
    return (hasattr(tokenizer, "bpe_ranks") and hasattr(tokenizer, "sot_token_id")
            and getattr(tokenizer, "reduction_fn", None) is None)


def fast_clean(tokenizer) -> Callable[[str], str]:
    """The tokenizer's clean function with a shortcut for plain-ASCII captions ('lower' and
    'whitespace' cleaning; others are returned unchanged)."""
    from open_clip import tokenizer as oct
    clean = tokenizer.clean_fn
    if clean is oct._clean_lower:
        return lambda t: " ".join(t.split()).lower() if _PLAIN_ASCII.match(t) else clean(t)
    if clean is oct._clean_whitespace:
        return lambda t: " ".join(t.split()) if _PLAIN_ASCII.match(t) else clean(t)
    return clean


def hf_bpe(tokenizer):
    """A ``tokenizers.Tokenizer`` doing SimpleTokenizer's pre-tokenising + byte-level BPE
    (no cleaning, no special tokens); None when ``tokenizers`` is not installed."""
    try:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    except ImportError:
        return None
    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
    bpe = models.BPE(vocab=dict(tokenizer.encoder), merges=merges, end_of_word_suffix="</w>",
                     continuing_subword_prefix="", fuse_unk=False)
    tk = Tokenizer(bpe)
    pattern = r"""(?i)'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return tk


class CaptionTokenizer:
    """``__call__(captions) -> (ids int32 [n, context], truncated list[bool])``.

    ``backend``: 'auto' (Rust BPE when ``tokenizers`` is installed, else Python), 'hf' or
    'python' (open_clip's own BPE, still with one encode per caption and the ASCII shortcut).
    Picklable: the heavy parts are rebuilt lazily in each process.
    """

    def __init__(self, tokenizer, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"tokenizer backend={backend!r}: choose {', '.join(BACKENDS)}")
        self.tokenizer, self.backend = tokenizer, backend
        self.simple = _is_simple(tokenizer)
        self.context_length = int(getattr(tokenizer, "context_length", 0) or 77)
        self._clean = self._hf = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_clean", "_hf")}

    def __setstate__(self, state):
        self.__dict__.update(state, _clean=None, _hf=None)

    @property
    def uses_hf(self) -> bool:
        self._prepare()
        return self._hf is not None

    def _prepare(self):
        if self._clean is None and self.simple:
            self._clean = fast_clean(self.tokenizer)
            if self.backend in ("auto", "hf"):
                self._hf = hf_bpe(self.tokenizer)
                if self._hf is None and self.backend == "hf":
                    raise ImportError("tokenizer backend 'hf' needs the tokenizers package: "
                                      "pip install 'tokenizers>=0.20'")

    def encode(self, captions: Sequence[str]) -> list[list[int]]:
        """Untruncated ids (without start/end tokens) for each caption."""
        self._prepare()
        tok = self.tokenizer
        cleaned = [self._clean(c or "") for c in captions]
        special = [i for i, c in enumerate(cleaned) if "<start_of_text>" in c or "<end_of_text>" in c]
        if self._hf is not None:
            ids = [e.ids for e in self._hf.encode_batch(cleaned, add_special_tokens=False)]
        else:
            special = range(len(cleaned))
            ids = [None] * len(cleaned)
        enc, bpe, byte_enc = tok.encoder, tok.bpe, tok.byte_encoder
        for i in special:
            ids[i] = [enc[b] for w in tok.pat.findall(cleaned[i])
                      for b in bpe("".join(byte_enc[x] for x in w.encode("utf-8"))).split(" ")]
        return ids

    def __call__(self, captions: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        captions = [c or "" for c in captions]
        if not self.simple:
            return np.asarray(self.tokenizer(captions), dtype=np.int32), [False] * len(captions)
        ctx, sot, eot = self.context_length, self.tokenizer.sot_token_id, self.tokenizer.eot_token_id
        out = np.zeros((len(captions), ctx), dtype=np.int32)
        truncated = []
        for row, ids in zip(out, self.encode(captions)):
            ids = [sot, *ids, eot]
            truncated.append(len(ids) > ctx)
            if len(ids) > ctx:
                ids = ids[:ctx]
                ids[-1] = eot
            row[:len(ids)] = ids
        return out, truncated


def load_caption_tokenizer(model: str, checkpoint: str | None = None, backend: str = "auto") -> CaptionTokenizer:
    """The :class:`CaptionTokenizer` of a model by open_clip name, or of the model stored in a
    clipcurate-clip-v1 ``checkpoint`` (its ``model_name``), without building the model."""
    import open_clip
    from clipcurate.scoring.model import read_checkpoint
    if checkpoint:
        model = read_checkpoint(checkpoint).get("model_name") or model
    if not model:
        raise ValueError("load_caption_tokenizer: model name is required")
    return CaptionTokenizer(open_clip.get_tokenizer(model), backend)
