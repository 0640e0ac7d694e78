"""The scoring core: image bytes + captions -> clip_score, without Beam.

``clip_score`` is the cosine similarity of the L2-normalised image and text embeddings
(DataComp's convention: no 100x scale, no clamp at 0).  :class:`ClipScorer` holds one
loaded model and scores batches; Beam's handler (:mod:`.handler`) and the benchmark call
it.  On CUDA the forward runs under bf16/fp16 autocast when asked; on the CPU always fp32.
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from clipcurate.extras import require_models

require_models("clipcurate scoring", ("torch",))

import numpy as np
import torch
import torch.nn.functional as F

from clipcurate.scoring.images import GpuPreprocess, decode_cpu, preprocess_spec
from clipcurate.scoring.model import LoadedClip
from clipcurate.scoring.tokens import CaptionTokenizer

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DECODERS = ("cpu", "gpu", "auto")


@dataclass
class BatchScores:
    """Per-input results, aligned with the inputs: ``scores`` (float64, NaN where ``errors[i]``
    is set), ``truncated`` (caption longer than the context), and, when asked, float32
    ``image_emb`` / ``text_emb`` rows (zeros where the image failed)."""
    scores: np.ndarray
    errors: list[str | None]
    truncated: list[bool]
    image_emb: np.ndarray | None = None
    text_emb: np.ndarray | None = None


def tokenize(tokenizer, captions: Sequence[str], backend: str = "auto") -> tuple[torch.Tensor, list[bool]]:
    """Tokenise as the model's own tokenizer does (truncating to its context length);
    also return which captions were truncated (see :class:`~.tokens.CaptionTokenizer`)."""
    ids, truncated = CaptionTokenizer(tokenizer, backend)(captions)
    return torch.from_numpy(ids).long(), truncated


@dataclass
class ClipScorer:
    """Score batches with one loaded model.

    ``device``: a torch device string ('cpu', 'cuda'); ``precision``: fp32 | bf16 | fp16
    (autocast, CUDA only; the CPU always computes in fp32); ``decode``: 'cpu' (Pillow +
    the model's preprocess, exact), 'gpu' (nvjpeg on the device, CPU fallback) or 'auto'
    (gpu when the device is CUDA and the transform is a plain resize/crop/normalise);
    ``decode_threads``: Pillow decode threads for the CPU path (0: in the calling thread);
    ``chunk_size``: the model always runs on chunks of exactly this many rows (the last one
    padded), which makes every score bit-identical whatever the batch it arrived in
    (0: 8 on the CPU, 256 on CUDA); ``tokenizer_backend``: see :class:`.tokens.CaptionTokenizer`;
    ``overlap``: decode + preprocess the images of chunk k+1 in a background thread (on CUDA
    on a second stream) while the model runs on chunk k, inside one batch; the results are
    the same as without (tested), only the timing changes.  None (default): on CUDA only
    (on the CPU the thread competes with torch's own threads: slower on 2 cores).
    """
    loaded: LoadedClip
    device: str = "cpu"
    precision: str = "fp32"
    decode: str = "cpu"
    decode_threads: int = 0
    chunk_size: int = 0
    tokenizer_backend: str = "auto"
    overlap: bool | None = None
    _gpu: GpuPreprocess | None = field(default=None, init=False, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _prefetch: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _side: "torch.cuda.Stream | None" = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose {', '.join(PRECISIONS)}")
        if self.decode not in DECODERS:
            raise ValueError(f"decode={self.decode!r}: choose {', '.join(DECODERS)}")
        on_cuda = torch.device(self.device).type == "cuda"
        if self.chunk_size <= 0:
            self.chunk_size = 256 if on_cuda else 8
        if self.decode in ("gpu", "auto") and on_cuda:
            spec = preprocess_spec(self.loaded.preprocess)
            if spec is not None:
                self._gpu = GpuPreprocess(spec, self.loaded.preprocess, self.device)
            else:
                log.warning("clipcurate scoring: the model's transform is not resize/crop/normalise; "
                            "decoding on the CPU")
        elif self.decode == "gpu":
            log.warning("clipcurate scoring: decode='gpu' needs a CUDA device; decoding on the CPU")
        self.captions = CaptionTokenizer(self.loaded.tokenizer, self.tokenizer_backend)
        if self.decode_threads > 0:
            self._pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="clip-decode")
        if self.overlap is None:
            self.overlap = on_cuda
        if self.overlap:
            self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="clip-prefetch")
            if on_cuda:
                self._side = torch.cuda.Stream(device=self.device)

    # -- steps -------------------------------------------------------------------------
    def pixels(self, images: Sequence[bytes | None]) -> tuple[torch.Tensor, list[int], dict[int, str]]:
        """Decode + preprocess; returns (pixels on device, ok indices, {index: error})."""
        if self._gpu is not None:
            return self._gpu(images)
        pre = self.loaded.preprocess
        results = (list(self._pool.map(lambda b: decode_cpu(b, pre), images)) if self._pool
                   else [decode_cpu(b, pre) for b in images])
        ok = [i for i, (t, _) in enumerate(results) if t is not None]
        errors = {i: e for i, (_, e) in enumerate(results) if e is not None}
        if not ok:
            return torch.empty(0), ok, errors
        batch = torch.stack([results[i][0] for i in ok])
        if self.device != "cpu":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        return batch, ok, errors

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None or torch.device(self.device).type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=dtype)

    @torch.inference_mode()
    def embed(self, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised float32 image and text embeddings for aligned rows."""
        model = self.loaded.model
        with self._autocast():
            img = model.encode_image(pixels)
            txt = model.encode_text(tokens.to(self.device, non_blocking=True))
        return F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)

    def embed_padded(self, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`embed` of at most ``chunk_size`` rows, run as exactly ``chunk_size`` rows
        (padded with copies of row 0, results cut back), so a row's result does not depend
        on how many rows, or which, share its chunk."""
        c, m = self.chunk_size, pixels.shape[0]
        pad = c - m
        if pad:
            pixels = torch.cat([pixels, pixels[:1].expand(pad, *pixels.shape[1:])])
            tokens = torch.cat([tokens, tokens[:1].expand(pad, *tokens.shape[1:])])
        i, x = self.embed(pixels, tokens)
        return i[:m], x[:m]

    def pixel_chunks(self, images: Sequence[bytes | None], spans: Sequence[tuple[int, int]]):
        """Yield :meth:`pixels` of ``images[s:e]`` for each span, in order.  With ``overlap``,
        span k+1 is decoded in the prefetch thread (on CUDA: on the side stream, the main
        stream waits for it) while the caller works on span k."""
        if self._prefetch is None or len(spans) < 2:
            for s, e in spans:
                yield self.pixels(images[s:e])
            return
        futures = [self._prefetch.submit(self._pixels_async, images[spans[0][0]:spans[0][1]])]
        for k in range(len(spans)):
            if k + 1 < len(spans):
                s, e = spans[k + 1]
                futures.append(self._prefetch.submit(self._pixels_async, images[s:e]))
            pixels, ok, errors, event = futures[k].result()
            futures[k] = None
            if event is not None:  # the side stream's work must be done before the model reads it
                main = torch.cuda.current_stream(self.device)
                main.wait_event(event)
                if pixels.numel():
                    pixels.record_stream(main)  # allocated on the side stream, used on main
            yield pixels, ok, errors

    def _pixels_async(self, images):
        if self._side is None:
            return (*self.pixels(images), None)
        with torch.cuda.stream(self._side):
            out = self.pixels(images)
            event = torch.cuda.Event()
            event.record(self._side)
        return (*out, event)

    # -- the whole thing ---------------------------------------------------------------
    def score(self, images: Sequence[bytes | None], captions: Sequence[str] | None,
              with_embeddings: bool = False, tokens=None) -> BatchScores:
        """clip_score for each (image bytes, caption) pair; failures get NaN and an error.
        ``tokens``: optional ``(ids [n, context], truncated)`` made upstream by
        :class:`~.tokens.CaptionTokenizer` (then ``captions`` is not used)."""
        return next(self.score_many([(images, captions, tokens)], with_embeddings))

    def score_many(self, batches, with_embeddings: bool = False):
        """Yield :class:`BatchScores` for an iterable of (images, captions[, tokens]) batches
        (``tokens`` as in :meth:`score`), launching batch i+1 (tokenise, decode, encode:
        asynchronous on CUDA) before waiting for the results of batch i, so host work
        overlaps device work."""
        pending = None
        for images, captions, *tokens in batches:
            launched = self._launch(images, captions, with_embeddings, tokens[0] if tokens else None)
            if pending is not None:
                yield self._finish(*pending)
            pending = launched
        if pending is not None:
            yield self._finish(*pending)

    def _launch(self, images, captions, with_embeddings, tokens=None):
        if tokens is None:
            tokens = self.captions([c or "" for c in captions])
        ids, truncated = tokens
        if len(images) != len(ids) or len(truncated) != len(ids):
            raise ValueError(f"{len(images)} images but {len(ids)} token rows")
        tokens = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        if self.device != "cpu":
            tokens = tokens.pin_memory().to(self.device, non_blocking=True)
        c, n = self.chunk_size, len(images)
        spans = [(s, min(s + c, n)) for s in range(0, n, c)]
        ok, errors, imgs, txts = [], {}, [], []
        for (s, e), (pixels, ok_k, errors_k) in zip(spans, self.pixel_chunks(images, spans)):
            errors.update({s + i: m for i, m in errors_k.items()})
            if not ok_k:
                continue
            rows = [s + i for i in ok_k]
            ok += rows
            i, x = self.embed_padded(pixels, tokens[s:e] if len(rows) == e - s else tokens[rows])
            imgs.append(i)
            txts.append(x)
        img = torch.cat(imgs) if imgs else None
        txt = torch.cat(txts) if txts else None
        return n, ok, errors, truncated, img, txt, with_embeddings

    @staticmethod
    def _finish(n, ok, errors, truncated, img, txt, with_embeddings) -> BatchScores:
        scores = np.full(n, np.nan, dtype=np.float64)
        img_out = txt_out = None
        if ok:
            scores[ok] = (img * txt).sum(-1).double().cpu().numpy()
            if with_embeddings:
                img_out = np.zeros((n, img.shape[1]), np.float32)
                txt_out = np.zeros((n, txt.shape[1]), np.float32)
                img_out[ok], txt_out[ok] = img.cpu().numpy(), txt.cpu().numpy()
        return BatchScores(scores=scores, errors=[errors.get(i) for i in range(n)], truncated=truncated,
                           image_emb=img_out, text_emb=txt_out)
