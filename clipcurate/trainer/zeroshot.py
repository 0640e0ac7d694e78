"""Zero-shot classification with prompt ensembling (CLIP paper, Sec. 3.1.4).

For each class every template is filled with the class name, the text embeddings are
L2-normalised, averaged and normalised again; an image is assigned the class whose
ensemble embedding has the largest cosine similarity with its normalised image embedding.
"""
from __future__ import annotations

from typing import Callable, Sequence

from clipcurate.extras import require_models

require_models("clipcurate zero-shot eval", ("torch",))

import numpy as np
import torch

from clipcurate.trainer.prompts import fill


@torch.no_grad()
def build_classifier(model: torch.nn.Module, tokenizer: Callable, classnames: Sequence[str],
                     templates: Sequence[str], device: str = "cpu", batch_size: int = 512) -> torch.Tensor:
    """(D, C) matrix of unit-length class embeddings, one column per class name."""
    if not classnames or not templates:
        raise ValueError("build_classifier: need at least one class name and one template")
    model.eval()
    texts = [fill(t, c) for c in classnames for t in templates]
    feats = []
    for s in range(0, len(texts), batch_size):
        feats.append(model.encode_text(tokenizer(texts[s:s + batch_size]).to(device), normalize=True).float())
    emb = torch.cat(feats).view(len(classnames), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1).T


def topk_accuracy(logits: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Fraction of rows whose label is among the k highest logits, as ``{"top1": .., "top5": ..}``
    (k capped at the number of classes)."""
    labels = np.asarray(labels)
    order = np.argsort(-logits, axis=1, kind="stable")
    return {f"top{k}": float((order[:, :min(k, logits.shape[1])] == labels[:, None]).any(axis=1).mean())
            for k in ks}


def zeroshot_classify(image_features: np.ndarray, classifier: torch.Tensor, classnames: Sequence[str],
                      labels: Sequence[int] | None = None, paths: Sequence[str] | None = None) -> dict:
    """Predictions (and top-1/top-5 when ``labels`` are given) for unit-length image features.

    Returns ``{"n", "classes", "top1"?, "top5"?, "per_class_top1"?, "predictions": [{"path"?,
    "pred", "pred_name", "top5", "label"?}]}``."""
    logits = 100.0 * image_features @ classifier.cpu().numpy()
    order = np.argsort(-logits, axis=1, kind="stable")[:, :min(5, len(classnames))]
    preds = []
    for i, row in enumerate(order):
        p = {"pred": int(row[0]), "pred_name": classnames[row[0]], "top5": [int(x) for x in row]}
        if paths is not None:
            p["path"] = str(paths[i])
        if labels is not None:
            p["label"] = int(labels[i])
        preds.append(p)
    result = {"n": len(preds), "classes": list(classnames)}
    if labels is not None:
        result.update(topk_accuracy(logits, labels))
        lab = np.asarray(labels)
        result["per_class_top1"] = {classnames[c]: float((order[lab == c, 0] == c).mean())
                                    for c in sorted(set(lab.tolist()))}
    result["predictions"] = preds
    return result
