"""Command-line subcommands: ``train``, ``eval-zeroshot``, ``eval-linear-probe``.

The host CLI calls :func:`add_parsers` with its ``subparsers`` object and :func:`run` with
the parsed namespace of one of these subcommands; ``run`` returns the exit code.  Each
subcommand writes its JSON result to ``--output`` (and prints a one-line summary).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from typing import Any

from clipcurate.trainer.config import TrainConfig

log = logging.getLogger(__name__)

SUBCOMMANDS = ("train", "eval-zeroshot", "eval-linear-probe")


def _add_dataclass_args(p: argparse.ArgumentParser, cls) -> None:
    """One ``--field-name`` option per dataclass field, typed from its annotation."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        inner = next((a for a in typing.get_args(typ) if a is not type(None)), typ)
        flag = "--" + f.name.replace("_", "-")
        if inner is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument(flag, type=inner if inner in (int, float) else str, default=None,
                           dest=f.name, help=f"default: {f.default!r}")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="clipcurate-tiny", help="open_clip model name")
    p.add_argument("--checkpoint", help="weights file (clipcurate checkpoint or open_clip state dict)")
    p.add_argument("--pretrained", help="open_clip pretrained tag present in the local cache")
    p.add_argument("--random-init", action="store_true", help="seeded untrained model (smoke tests)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--output", required=True, help="JSON file for the results")


def add_parsers(subparsers) -> None:
    """Add the ``train``, ``eval-zeroshot`` and ``eval-linear-probe`` subcommands."""
    p = subparsers.add_parser("train", help="contrastive CLIP training on webdataset shards")
    p.add_argument("--config", help="TOML/JSON file with TrainConfig fields (flags override it)")
    _add_dataclass_args(p, TrainConfig)
    p.set_defaults(_trainer_cmd="train")

    p = subparsers.add_parser("eval-zeroshot", help="zero-shot classification with prompt ensembling")
    _add_model_args(p)
    p.add_argument("--images", required=True, help="ImageFolder layout (root/<class>/img) or a flat folder")
    p.add_argument("--classnames", help="file (json/md/txt) or comma list; default: folder names")
    p.add_argument("--templates", required=True, help="templates file (CLIP_benchmark json, prompts.md, txt)")
    p.add_argument("--dataset", help="dataset key inside multi-dataset files (e.g. cifar10, imagenet1k)")
    p.set_defaults(_trainer_cmd="eval-zeroshot")

    p = subparsers.add_parser("eval-linear-probe", help="logistic-regression probe on frozen image features")
    _add_model_args(p)
    p.add_argument("--train", required=True, help="ImageFolder layout with the training images")
    p.add_argument("--test", help="ImageFolder layout with the test images (default: split --train)")
    p.add_argument("--test-fraction", type=float, default=0.5)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--c-values", help="comma list of C values (default: 13 values 1e-6..1e6)")
    p.set_defaults(_trainer_cmd="eval-linear-probe")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` was parsed for; return the process exit code."""
    handler = {"train": _train, "eval-zeroshot": _zeroshot, "eval-linear-probe": _linear_probe}
    cmd = getattr(args, "_trainer_cmd", None)
    if cmd not in handler:
        raise ValueError(f"not a trainer subcommand: {cmd!r}; choose from {', '.join(SUBCOMMANDS)}")
    try:
        return handler[cmd](args)
    except (ValueError, FileNotFoundError) as e:
        print(f"clipcurate {cmd}: error: {e}", file=sys.stderr)
        return 2


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from ``--config`` (if any) with the given flags on top."""
    data: dict[str, Any] = {}
    if args.config:
        from clipcurate.config import _tomllib
        with open(args.config, "rb") as f:
            data = json.load(f) if args.config.endswith(".json") else _tomllib().load(f)
        unknown = set(data) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ValueError(f"{args.config}: unknown key(s) {sorted(unknown)}")
    for f in dataclasses.fields(TrainConfig):
        if getattr(args, f.name, None) is not None:
            data[f.name] = getattr(args, f.name)
    return TrainConfig(**data)


def _train(args) -> int:
    from clipcurate.trainer.train import train
    summary = train(train_config_from_args(args))
    losses = summary["losses"]
    print(f"trained {summary['steps']} steps, loss {losses[0] if losses else float('nan'):.4f} -> "
          f"{losses[-1] if losses else float('nan'):.4f}, {summary['samples_per_s']} samples/s; "
          f"checkpoint {summary['final_checkpoint']}")
    return 0


def _load(args):
    from clipcurate.scoring.model import load_clip
    return load_clip(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                     random_init=args.random_init, device=args.device, seed=args.seed)


def _write(path: str, result: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


def _classnames(args, folders: list[str]) -> list[str]:
    from clipcurate.trainer.prompts import load_list
    if not args.classnames:
        if not folders:
            raise ValueError("--classnames is required for a flat (unlabelled) image folder")
        return [f.replace("_", " ") for f in folders]
    names = load_list(args.classnames, "classes", args.dataset)
    if folders and len(names) != len(folders):
        raise ValueError(f"{len(names)} class names but {len(folders)} class folders in {args.images}")
    return names


def _zeroshot(args) -> int:
    from clipcurate.trainer.images import encode_images, image_folder
    from clipcurate.trainer.prompts import load_list
    from clipcurate.trainer.zeroshot import build_classifier, zeroshot_classify
    images = image_folder(args.images)
    classnames = _classnames(args, images.folders)
    templates = load_list(args.templates, "templates", args.dataset)
    loaded = _load(args)
    device = next(loaded.model.parameters()).device
    clf = build_classifier(loaded.model, loaded.tokenizer, classnames, templates, device)
    feats = encode_images(loaded.model, loaded.preprocess, images.paths, args.batch_size, device)
    result = zeroshot_classify(feats, clf, classnames, images.labels, images.paths)
    result.update(model=loaded.identity, templates=templates, images=args.images)
    _write(args.output, result)
    acc = f"top1 {result['top1']:.4f} top5 {result['top5']:.4f}" if "top1" in result else "no labels"
    print(f"zero-shot on {result['n']} images, {len(classnames)} classes x {len(templates)} templates: {acc}")
    return 0


def _linear_probe(args) -> int:
    from clipcurate.trainer.images import encode_images, image_folder, split_balanced
    from clipcurate.trainer.linear_probe import linear_probe
    train_set = image_folder(args.train)
    if train_set.labels is None:
        raise ValueError(f"--train {args.train}: needs class subfolders")
    loaded = _load(args)
    device = next(loaded.model.parameters()).device
    enc = lambda paths: encode_images(loaded.model, loaded.preprocess, paths, args.batch_size, device)  # noqa: E731
    if args.test:
        test_set = image_folder(args.test)
        if test_set.folders != train_set.folders:
            raise ValueError(f"--test {args.test}: class folders differ from --train's")
        tr_x, tr_y, te_x, te_y = enc(train_set.paths), train_set.labels, enc(test_set.paths), test_set.labels
    else:
        tr, te = split_balanced(train_set.labels, args.test_fraction, args.seed)
        x = enc(train_set.paths)
        y = train_set.labels
        tr_x, tr_y, te_x, te_y = x[tr], [y[i] for i in tr], x[te], [y[i] for i in te]
    c_values = [float(c) for c in args.c_values.split(",")] if args.c_values else None
    result = linear_probe(tr_x, tr_y, te_x, te_y, c_values, args.val_fraction, args.seed)
    result.update(model=loaded.identity, classes=train_set.folders)
    _write(args.output, result)
    print(f"linear probe: top1 {result['top1']:.4f} (best C {result['best_C']:g}, "
          f"{result['n_train']}+{result['n_val']} train, {result['n_test']} test)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m clipcurate.trainer.cli train ...``)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="clipcurate-trainer")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
