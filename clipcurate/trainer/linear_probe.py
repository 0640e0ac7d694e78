"""Linear probe on frozen features (CLIP paper, Appendix A.3).

scikit-learn's L-BFGS logistic regression; the L2 strength is swept over log-spaced values
on a class-balanced validation split of the training set, then the best setting is refit on
train + validation and scored on the test set.
"""
from __future__ import annotations

import warnings
from typing import Sequence

from clipcurate.extras import require_models

require_models("clipcurate linear probe", ("sklearn",))

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from clipcurate.trainer.images import split_balanced


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> LogisticRegression:
    clf = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(x, y)


def linear_probe(train_x: np.ndarray, train_y: Sequence[int], test_x: np.ndarray, test_y: Sequence[int],
                 c_values: Sequence[float] | None = None, val_fraction: float = 0.2, seed: int = 0,
                 max_iter: int = 1000) -> dict:
    """Sweep ``C`` (inverse L2 strength; default 13 values 1e-6..1e6) on a validation split,
    refit on all training data, report test top-1.

    Returns ``{"top1", "best_C", "sweep": [{"C", "val_top1"}], "n_train", "n_val", "n_test",
    "n_features"}``."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if len(set(train_y.tolist())) < 2:
        raise ValueError("linear_probe: training labels need at least two classes")
    c_values = list(c_values) if c_values is not None else [float(c) for c in np.logspace(-6, 6, 13)]
    fit_idx, val_idx = split_balanced(train_y.tolist(), val_fraction, seed)
    sweep = []
    for c in c_values:
        clf = _fit(train_x[fit_idx], train_y[fit_idx], c, max_iter)
        sweep.append({"C": c, "val_top1": float((clf.predict(train_x[val_idx]) == train_y[val_idx]).mean())})
    best = max(sweep, key=lambda s: (s["val_top1"], -s["C"]))  # ties: stronger regularisation
    clf = _fit(train_x, train_y, best["C"], max_iter)
    top1 = float((clf.predict(test_x) == test_y).mean())
    return {"top1": top1, "best_C": best["C"], "sweep": sweep, "n_train": len(fit_idx), "n_val": len(val_idx),
            "n_test": len(test_y), "n_features": int(train_x.shape[1])}
