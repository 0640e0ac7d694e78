"""clipcurate.trainer: CLIP training on webdataset shards, zero-shot and linear-probe evaluation.

* :func:`clipcurate.trainer.train.train` (``TrainConfig`` in :mod:`.config`): contrastive training.
* :mod:`.zeroshot` (``build_classifier``, ``zeroshot_classify``) with templates from :mod:`.prompts`.
* :func:`clipcurate.trainer.linear_probe.linear_probe`; image sets and features in :mod:`.images`.
* :mod:`.cli`: ``add_parsers(subparsers)`` and ``run(args)`` for the ``train``,
  ``eval-zeroshot`` and ``eval-linear-probe`` subcommands.  See docs/trainer.md.
"""
