"""Contrastive image-text pretraining (CLIP) on webdataset shards.

``train(cfg)`` builds an open_clip model (seeded random init, a pretrained tag or a
checkpoint), then runs ``cfg.steps`` AdamW steps over the symmetric cross-entropy of the
image-text similarity matrix scaled by the learnable temperature (open_clip's ``ClipLoss``;
``SigLipLoss`` for models with a logit bias), with linear warmup then cosine decay,
optional autocast (bf16/fp16, GradScaler for fp16) and gradient accumulation with feature
caching (the loss of a step sees all ``batch_size * accum_steps`` pairs).  On CPU the run is
deterministic given the seed (data is read in process); checkpoints resume the same curve.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Iterator

from clipcurate.extras import require_models

require_models("clipcurate training", ("torch", "open_clip"))

import torch
from open_clip.loss import ClipLoss, SigLipLoss

from clipcurate.scoring.model import load_clip, resolve_device
from clipcurate.trainer.checkpoint import (checkpoint_path, latest_checkpoint, load_training_checkpoint,
                                           save_training_checkpoint)
from clipcurate.trainer.config import TrainConfig
from clipcurate.trainer.data import Batch, batches, list_shards

log = logging.getLogger(__name__)

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips the temperature at 100


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup over ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))) * base_lr


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on gains, biases, embeddings-like 1-d tensors and the
    temperature (as open_clip does)."""
    def exclude(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale"))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
            {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": weight_decay}]


def model_outputs(model: torch.nn.Module, images: torch.Tensor, texts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Normalised image/text features, logit_scale (and logit_bias when the model has one)."""
    out = model(images, texts)
    if isinstance(out, dict):
        return {k: v for k, v in out.items() if k in ("image_features", "text_features", "logit_scale", "logit_bias")}
    keys = ("image_features", "text_features", "logit_scale", "logit_bias")
    return dict(zip(keys, out))


def make_loss(model: torch.nn.Module) -> torch.nn.Module:
    """ClipLoss (softmax, symmetric CE) or SigLipLoss for sigmoid models with a logit bias."""
    return SigLipLoss() if getattr(model, "logit_bias", None) is not None else ClipLoss()


def _loss(loss_fn, out: dict[str, torch.Tensor]) -> torch.Tensor:
    return loss_fn(out["image_features"], out["text_features"], out["logit_scale"],
                   **({"logit_bias": out["logit_bias"]} if "logit_bias" in out else {}))


def accumulated_backward(model, loss_fn, micro: list[Batch], autocast, scaler) -> float:
    """Backward of the full-batch contrastive loss over ``micro`` batches; returns the loss.

    One micro batch: plain forward/backward.  Several: features of all micro batches are
    computed without grad, then each micro batch is re-run with grad and its features
    spliced into the cached ones, so every backward sees all negatives (open_clip's
    ``--accum-freq``); the temperature gets its gradient once, not once per micro batch.
    """
    scale = (lambda t: scaler.scale(t)) if scaler is not None else (lambda t: t)
    if len(micro) == 1:
        with autocast():
            loss = _loss(loss_fn, model_outputs(model, micro[0].images, micro[0].texts))
        scale(loss).backward()
        return float(loss.detach())
    with torch.no_grad(), autocast():
        cached = [model_outputs(model, b.images, b.texts) for b in micro]
        full = {k: torch.cat([c[k] for c in cached]) for k in ("image_features", "text_features")}
        full_loss = float(_loss(loss_fn, {**cached[0], **full}))
    for j, b in enumerate(micro):
        with autocast():
            out = model_outputs(model, b.images, b.texts)
            merged = {k: torch.cat([c[k] if i != j else out[k] for i, c in enumerate(cached)])
                      for k in ("image_features", "text_features")}
            for k in ("logit_scale", "logit_bias"):
                if k in out:
                    merged[k] = out[k] if j == 0 else out[k].detach()
            loss = _loss(loss_fn, merged)
        scale(loss).backward()
    return full_loss


def _autocast_factory(device: str, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext
    if device == "cpu" and precision == "fp16":
        raise ValueError("precision=fp16 needs CUDA; use bf16 or fp32 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    return lambda: torch.autocast(device_type=dev_type, dtype=dtype)


def _resume_path(cfg: TrainConfig) -> str | None:
    if cfg.resume == "latest":
        return latest_checkpoint(cfg.output)
    return cfg.resume


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: str) -> None:
    fixed = ("model", "batch_size", "accum_steps", "seed", "shuffle_buffer")
    diff = {k: (saved.get(k), getattr(cfg, k)) for k in fixed if saved.get(k) != getattr(cfg, k)}
    if diff:
        raise ValueError(f"resume {path}: settings differ from the checkpoint's (saved, now): {diff}")


class _Progress:
    """tqdm bar (when enabled) plus a JSONL log of step, loss, lr and samples/s."""

    def __init__(self, cfg: TrainConfig, start: int):
        from tqdm import tqdm
        self.bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not cfg.progress,
                        dynamic_ncols=True)
        # a resumed run continues its log; a fresh run starts a new one
        self.log = open(os.path.join(cfg.output, "train_log.jsonl"), "a" if start else "w", encoding="utf-8")
        self.cfg = cfg

    def update(self, step: int, loss: float, lr: float, samples_per_s: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:.1f}", lr=f"{lr:.2e}")
        if (step + 1) % max(1, self.cfg.log_every) == 0 or step + 1 == self.cfg.steps:
            self.log.write(json.dumps({"step": step + 1, "loss": loss, "lr": lr,
                                       "samples_per_s": round(samples_per_s, 2)}) + "\n")
            self.log.flush()

    def close(self) -> None:
        self.bar.close()
        self.log.close()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training run; return a summary dict (also in ``output/summary.json``):
    model, steps, samples_seen, losses (per step, this invocation), final_checkpoint,
    seconds, samples_per_s, device, precision, seed, shards."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    os.makedirs(cfg.output, exist_ok=True)
    device = resolve_device(cfg.device)
    shards = list_shards(cfg.shards)
    resume = _resume_path(cfg)
    blob = load_training_checkpoint(resume) if resume else None
    if blob:
        _check_resume_config(blob["train_config"], cfg, resume)
    torch.manual_seed(cfg.seed)
    loaded = load_clip(cfg.model, pretrained=cfg.pretrained, checkpoint=cfg.init_checkpoint,
                       random_init=not (cfg.pretrained or cfg.init_checkpoint), device=device, seed=cfg.seed)
    model = loaded.model
    if blob:
        model.load_state_dict(blob["state_dict"])
    model.train()
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                            betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    state = {"step": 0, "position": 0}
    if blob:
        ts = blob["train_state"]
        opt.load_state_dict(ts["optimizer"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        state = {"step": int(ts["step"]), "position": int(ts["position"])}
        log.info("resumed from %s at step %d", resume, state["step"])
    stream = batches(shards, loaded.preprocess, loaded.tokenizer, cfg.batch_size, cfg.seed,
                     cfg.shuffle_buffer, start=state["position"])
    losses = _loop(cfg, model, opt, scaler, stream, state, device)
    final = _save(cfg, model, opt, scaler, state)
    summary = {"model": cfg.model, "steps": state["step"], "samples_seen": state["step"] * cfg.batch_size * cfg.accum_steps,
               "losses": losses["losses"], "final_checkpoint": final, "seconds": round(losses["seconds"], 3),
               "samples_per_s": round(losses["samples_per_s"], 2), "device": device, "precision": cfg.precision,
               "seed": cfg.seed, "shards": len(shards), "resumed_from": resume, "model_identity": loaded.identity}
    with open(os.path.join(cfg.output, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _to(batch: Batch, device: str) -> Batch:
    return Batch(batch.images.to(device, non_blocking=True), batch.texts.to(device, non_blocking=True), batch.position)


def _loop(cfg, model, opt, scaler, stream: Iterator[Batch], state: dict, device: str) -> dict[str, Any]:
    """Steps from ``state['step']`` to ``cfg.steps``; updates ``state`` in place."""
    loss_fn, autocast = make_loss(model), _autocast_factory(device, cfg.precision)
    progress, losses, t0 = _Progress(cfg, state["step"]), [], time.perf_counter()
    try:
        for step in range(state["step"], cfg.steps):
            t = time.perf_counter()
            lr = lr_at(step, cfg.lr, cfg.warmup_steps, cfg.steps)
            for g in opt.param_groups:
                g["lr"] = lr
            micro = [_to(next(stream), device) for _ in range(cfg.accum_steps)]
            opt.zero_grad(set_to_none=True)
            loss = accumulated_backward(model, loss_fn, micro, autocast, scaler)
            _optimizer_step(model, opt, scaler, cfg.grad_clip)
            state.update(step=step + 1, position=micro[-1].position)
            losses.append(loss)
            progress.update(step, loss, lr, cfg.batch_size * cfg.accum_steps / (time.perf_counter() - t))
            if cfg.save_every and state["step"] % cfg.save_every == 0 and state["step"] < cfg.steps:
                _save(cfg, model, opt, scaler, state)
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    n = len(losses) * cfg.batch_size * cfg.accum_steps
    return {"losses": losses, "seconds": seconds, "samples_per_s": n / seconds if seconds else 0.0}


def _optimizer_step(model, opt, scaler, grad_clip: float | None) -> None:
    if scaler is not None:
        scaler.unscale_(opt)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def _save(cfg, model, opt, scaler, state: dict) -> str:
    ts = {"optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
          "step": state["step"], "position": state["position"]}
    return save_training_checkpoint(checkpoint_path(cfg.output, state["step"]), model, cfg.model, ts,
                                    dataclasses.asdict(cfg))
