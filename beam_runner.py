#!/usr/bin/env python
"""clipcurate entry point: ``python beam_runner.py --help``.

Runs the curation pipeline on Beam (local FnApiRunner by default; pass standard Beam
options such as ``--runner=DataflowRunner`` to scale out), builds MetaCLIP metadata,
trains and evaluates CLIP models, and writes run reports.
"""
import sys

from clipcurate.cli import main

if __name__ == "__main__":
    sys.exit(main())
