"""The Dataflow job, built offline: ``--runner=DataflowRunner --dry_run=True --no_auth`` with a
placeholder project, region and bucket returns the complete job (pipeline proto, environments,
staged package) without submitting it.  Also: install roles (extras) and worker containers.

The dry-run tests need the ``dataflow`` extra (Beam's GCP client) and skip without it; the
network guard of conftest.py fails them if building the job tries to leave the machine.
"""
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest

from clipcurate.config import RunConfig
from clipcurate.demo import demo_dir
from clipcurate.pipelines.curate import build
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
INPUT = DATA / "img2dataset-tests" / "test_1000.parquet"
EVAL_SET = DATA / "cifar10-test-jpeg" / "test"
GPU = "type:nvidia-l4;count:1;install-nvidia-driver"
ACCELERATOR_URN = "beam:resources:accelerator:v1"
MB = 1 << 20
REQUEST_LIMIT = 20 * MB  # Dataflow: JSON job request
GRAPH_LIMIT = 10 * MB    # Dataflow: job graph

TEXT_STAGES = ["Ingest", "TextFilter", "DedupeUrl", "NearDupCaption", "MetaCLIP"]
IMAGE_STAGES = ["Download", "DedupeContent", "NearDup", "Decontaminate", "Score", "ScoreFilter"]
SINKS = ["WriteShards", "WriteRejects", "WriteManifest"]


def _apiclient():
    try:
        from apache_beam.runners.dataflow.internal import apiclient
        from google.cloud import dataflow  # noqa: F401
    except ImportError:
        pytest.skip("needs the dataflow extra (Beam's GCP client): pip install 'clipcurate[dataflow]'")
    return apiclient


def _config(until=None) -> RunConfig:
    """Every stage on, as a production job would have it; output and weights are placeholders."""
    cfg = RunConfig(until=until)
    cfg.ingest.inputs = [str(INPUT)]
    cfg.balance.metadata = str(demo_dir() / "metadata.json")
    cfg.dedupe.caption_near = True
    cfg.dedupe.mode = "caption"
    cfg.dedupe.image_near = True
    cfg.dedupe.eval_sets = [str(EVAL_SET)]
    cfg.scoring.model = "ViT-B-32"
    cfg.scoring.checkpoint = "/opt/weights/ViT-B-32.pt"  # baked into the worker image, absent here
    cfg.scoring.device = "GPU"
    cfg.scoring.top_fraction = 0.3
    cfg.scoring.accelerator = GPU
    cfg.sink.output = "gs://placeholder-bucket/out"
    return cfg


def dry_run(cfg: RunConfig) -> dict:
    """Build ``cfg``'s pipeline as a Dataflow job without submitting it; return its parts and sizes."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    apiclient = _apiclient()
    options = PipelineOptions([
        "--runner=DataflowRunner", "--dry_run=True", "--no_auth", "--project=placeholder-project",
        "--region=us-central1", "--temp_location=gs://placeholder-bucket/tmp", "--job_name=clipcurate-dry-run",
        f"--setup_file={ROOT / 'setup.py'}", "--experiments=use_runner_v2"])
    p = beam.Pipeline(options=options)
    build(p, cfg)
    job = p.run().job
    proto = job.proto_pipeline
    # what create_job_description adds before the request is sent (the pipeline itself is staged)
    job.proto.environment = apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url="gs://placeholder-bucket/tmp/pipeline.pb", proto_pipeline=proto,
        pipeline_proto_hash="0" * 64).proto
    transforms = proto.components.transforms
    pickles = {t.unique_name: len(pb.ParDoPayload.FromString(t.spec.payload).do_fn.payload)
               for t in transforms.values() if t.spec.urn == common_urns.primitives.PAR_DO.urn}
    envs = proto.components.environments
    staged = {}
    for env in envs.values():
        for dep in env.dependencies:
            name = pb.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name
            staged[name] = pb.ArtifactFilePayload.FromString(dep.type_payload).path
    return {"proto": proto, "names": [t.unique_name for t in transforms.values()],
            "top": {n.split("/")[0] for n in (t.unique_name for t in transforms.values())},
            "request_bytes": len(job.json().encode()), "graph_bytes": len(proto.SerializeToString()),
            "pickles": pickles, "staged": staged,
            "hints": {t.unique_name: dict(envs[t.environment_id].resource_hints)
                      for t in transforms.values() if t.environment_id}}


@pytest.fixture(scope="module")
def full_job():
    return dry_run(_config())


def test_full_job_has_every_stage_and_fits_dataflow_limits(full_job):
    job = full_job
    assert set(TEXT_STAGES + IMAGE_STAGES + SINKS) <= job["top"]
    assert any(n.endswith("Score/RunInference") for n in job["names"])
    print(f"\nfull job: request {job['request_bytes']} B, pipeline proto {job['graph_bytes']} B, "
          f"{len(job['pickles'])} DoFns, largest pickle {max(job['pickles'].values())} B "
          f"({max(job['pickles'], key=job['pickles'].get)})")
    assert job["request_bytes"] < REQUEST_LIMIT / 20
    assert job["graph_bytes"] < GRAPH_LIMIT / 5
    # metadata, eval sets and model weights travel by path, not inside the DoFns
    big = {n: s for n, s in job["pickles"].items() if s > MB}
    assert not big, big


def test_only_the_scoring_steps_carry_the_gpu_hint(full_job):
    hinted = {n for n, h in full_job["hints"].items() if h.get(ACCELERATOR_URN) == GPU.encode()}
    assert any(n.endswith("Score/RunInference") for n in hinted)
    assert all(n.startswith("Score/") or n == "Score" for n in hinted), sorted(hinted)
    assert not any(h.get(ACCELERATOR_URN) for n, h in full_job["hints"].items() if n.startswith("Download"))


def test_staged_package_builds_from_setup_py_without_the_model_stack(full_job):
    sdist = full_job["staged"]["workflow.tar.gz"]
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        pkg_info = next(tar.extractfile(m).read().decode() for m in tar.getmembers()
                        if re.fullmatch(r"[^/]+/PKG-INFO", m.name))
    assert any(n.endswith("clipcurate/pipelines/curate.py") for n in names)
    assert any(n.endswith("clipcurate/data/demo/metadata.json") for n in names)
    requires = re.findall(r"^Requires-Dist: (.+)$", pkg_info, re.M)
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("apache-beam") for r in base)
    assert not [r for r in base if re.match(r"(torch|torchvision|open.clip)", r)], base
    assert any(r.startswith("torch") and 'extra == "models"' in r for r in requires)


def test_text_only_job():
    job = dry_run(_config(until="balance"))
    assert set(TEXT_STAGES + SINKS) <= job["top"]
    assert not set(IMAGE_STAGES) & job["top"]
    assert not any(h.get(ACCELERATOR_URN) for h in job["hints"].values())
    assert max(job["pickles"].values()) < MB
    assert job["request_bytes"] < REQUEST_LIMIT / 20 and job["graph_bytes"] < GRAPH_LIMIT / 5
    print(f"\ntext-only job: request {job['request_bytes']} B, pipeline proto {job['graph_bytes']} B")


# -- install roles and worker containers (no dataflow extra needed) -----------------------------

def _pyproject():
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_model_stack_is_an_extra():
    project = _pyproject()
    heavy = ("torch", "torchvision", "open_clip_torch")
    assert not [d for d in project["dependencies"] if d.startswith(heavy)]
    assert all(any(d.startswith(h) for d in project["optional-dependencies"]["models"]) for h in heavy)
    assert project["optional-dependencies"]["dataflow"] == ["apache-beam[gcp]>=2.77,<2.78"]
    assert "models" in (ROOT / "scripts" / "setup.sh").read_text()


def test_missing_model_stack_is_a_one_line_hint(tmp_path):
    """With torch unimportable, importing scoring fails with the install hint, and `run` with
    scoring on stops with that one line (exit 2) instead of a traceback."""
    block = "import sys; sys.modules['torch'] = None; "
    proc = subprocess.run([sys.executable, "-c", block + "import clipcurate.scoring.model"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: clipcurate scoring needs the model stack (torch is not installed): "
        "pip install 'clipcurate[models]'")
    cli = (block + "from clipcurate.cli import main; "
           f"sys.exit(main(['run', '--input', {str(INPUT)!r}, '--output', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: clipcurate scoring needs the model stack (torch is not installed): pip install 'clipcurate[models]'"]
    assert not (tmp_path / "o").exists()


def test_worker_images_pin_the_installed_beam():
    pin = next(d for d in _pyproject()["dependencies"] if d.startswith("apache-beam"))
    from packaging.requirements import Requirement

    installed = beam.__version__
    assert installed in Requirement(pin).specifier
    cpu = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    gpu = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG BEAM_VERSION=(\S+)$", cpu, re.M).group(1) == installed
    assert re.search(r"^FROM apache/beam_python3\.11_sdk:\$\{BEAM_VERSION\}$", cpu, re.M)
    assert re.search(r"^ARG BEAM_VERSION=(\S+)$", gpu, re.M).group(1) == installed
    assert re.findall(r"apache/beam_python3\.11_sdk:(\S+) ", gpu) == [installed]
    assert '[models,dataflow]"' in gpu and "models" not in cpu.split("COPY", 1)[1].split("#")[0]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"**/.venv", "**/.git", "**/__pycache__"} <= set(ignored)
    assert "README.md" not in ignored and "LICENSE" not in ignored  # pip install . needs them


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 11000
    assert _pyproject()["license"] == "Apache-2.0"
