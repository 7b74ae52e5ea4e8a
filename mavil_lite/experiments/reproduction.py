"""What the reproduction notebooks share: the data behind each benchmark, the pre-training chain, the scale.

Data. A notebook's ``data`` parameter is ``"synthetic"`` (the kit's own clips, the default), a public dataset by
name in its published layout (``"grid:/data/GRID"``, see `mavil_lite.data.public_datasets`), or one manifest used for
everything; ``manifests`` names the data of one benchmark (a manifest or ``name:DIR``) and always wins. A public
dataset is either the paper's benchmark itself (ESC-50, Speech Commands v1, AudioSet-20K, VGGSound, MSR-VTT,
YouCook), or a small real stand-in for one, which every table says:

==================  =======================================================================
paper's benchmark   stand-in
==================  =======================================================================
AS-20K, AS-2M       GRID (``grid:``), the 51-word transcript as a multi-label target (mAP)
VGGSound            GRID, the spoken digit as a single label (accuracy)
SPC-1               FSDD (``fsdd:``) spoken digits, its own train/test split (accuracy)
MSR-VTT, YouCook    GRID test clips as the retrieval candidates
pre-training        GRID train clips, labels unused
==================  =======================================================================

Pre-training. Every table notebook needs the same MAViL chain: stage 1 (reconstruction + inter- and
intra-modal contrast), then stage-2 iterations, each student the next one's teacher. `pretrain_chain` trains
it into ``run_dir/checkpoints/<run>.pt`` (the layout `mavil_lite.experiments.ablation.run_ablation` uses), resuming
unfinished runs and reusing finished ones, so a table notebook pointed at ``reproduce/pretrain.ipynb``'s or the
ablation's output trains nothing again. At the ``paper`` preset `torchrun_commands` gives the multi-GPU launches,
which write where `pretrain_chain` looks.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..data.dataset import ClipTensors, decode_manifest
from ..data.public_datasets import is_dataset_spec, resolve_dataset
from ..data.synthetic import generate_synthetic_dataset
from ..evaluate.linear_probe import contrast_retrieval, probe_embedding
from ..model.mavil import MAViL
from .ablation import ablation_runs, pretrain_runs
from .presets import RunPreset

SPLIT_SEED = 0  # one train/test split for every seed, so the spread over seeds is the training's alone

# public dataset -> {benchmark it stands in for: (label column, what the table says)}
STAND_INS = {
    "grid": {
        "AS-20K": ("transcript", "GRID for AS-20K: 51-word transcript, multi-label mAP"),
        "AS-2M": ("transcript", "GRID for AS-2M: 51-word transcript, multi-label mAP"),
        "VGGSound": ("digit", "GRID for VGGSound: spoken digit, accuracy"),
        "MSR-VTT": (None, "GRID test clips for MSR-VTT"),
        "YouCook": (None, "GRID test clips for YouCook"),
        "pretrain": (None, "GRID train clips"),
    },
    "fsdd": {"SPC-1": ("digit", "FSDD for Speech Commands v1: spoken digit, accuracy")},
}
# public dataset -> {benchmark of the paper that it is: label column}
BENCHMARKS = {"audioset": {"AS-20K": "labels", "pretrain": None}, "vggsound": {"VGGSound": "labels"},
              "esc50": {"ESC-50": "labels"}, "spc1": {"SPC-1": "labels"}, "msrvtt": {"MSR-VTT": None},
              "youcook": {"YouCook": None}}


@dataclass(frozen=True)
class DataSource:
    """Where one benchmark's clips come from, and how the table names them."""

    manifest: Path
    label_column: str | None
    description: str
    is_benchmark: bool  # the paper's own dataset (only then can a number be compared with the paper's)


def _public_source(benchmark: str, spec: str) -> DataSource | None:
    """The public dataset ``spec`` (``name:DIR``) as ``benchmark``'s data, or None when it cannot stand in for it."""
    name = spec.partition(":")[0]
    if benchmark in BENCHMARKS.get(name, {}):
        return DataSource(resolve_dataset(spec), BENCHMARKS[name][benchmark], f"{benchmark}: {spec}", True)
    if benchmark in STAND_INS.get(name, {}):
        labels, description = STAND_INS[name][benchmark]
        return DataSource(resolve_dataset(spec), labels, description, False)
    return None


def resolve_source(benchmark: str, data: str, manifests: dict | None = None, label_column: str = "labels",
                   synthetic_manifest: Path | None = None) -> DataSource | None:
    """The data behind ``benchmark`` (see the module docstring); None when nothing can stand in for it."""
    given = (manifests or {}).get(benchmark)
    if isinstance(given, str) and is_dataset_spec(given):
        source = _public_source(benchmark, given)
        if source is None:
            raise ValueError(f"manifests[{benchmark!r}] = {given!r}: that dataset cannot stand in for {benchmark}")
        return source
    if given is not None:
        given = {"manifest": given} if isinstance(given, (str, Path)) else dict(given)
        labels = given.get("label_column", None if benchmark in ("pretrain", "MSR-VTT", "YouCook") else "labels")
        return DataSource(Path(given["manifest"]), labels, f"{benchmark}: {given['manifest']}", True)
    if data == "synthetic":
        if synthetic_manifest is None:
            raise ValueError("data='synthetic' needs the generated manifest (generate_synthetic_dataset)")
        return DataSource(Path(synthetic_manifest), "labels", f"synthetic clips for {benchmark}", False)
    if is_dataset_spec(data):
        return _public_source(benchmark, data)
    return DataSource(Path(data), label_column, f"{Path(data).name} for {benchmark}", False)


def synthetic_manifest_for(data: str, out_dir: Path, preset: RunPreset, num_workers: int = 0) -> Path | None:
    """Generate the kit's synthetic clips once (under ``out_dir/data``) when ``data`` asks for them."""
    if data != "synthetic":
        return None
    return generate_synthetic_dataset(out_dir / "data", num_clips=preset.synthetic_clips, seed=SPLIT_SEED,
                                      test_fraction=preset.synthetic_test_fraction,
                                      unlabelled_fraction=preset.synthetic_unlabelled_fraction, num_workers=num_workers)


def load_source(source: DataSource, preset: RunPreset, num_workers: int = 0, progress: bool = True) -> ClipTensors:
    """A source's clips decoded at the preset's feature size, split by `SPLIT_SEED` where it has no split."""
    return decode_manifest(source.manifest, preset.features, label_column=source.label_column,
                           num_workers=num_workers, seed=SPLIT_SEED, progress=progress)


def checkpoint_dir(run_dir: str | Path, resume: bool = True) -> Path:
    """``run_dir/checkpoints``, emptied first unless ``resume`` (then finished runs are reused)."""
    checkpoints = Path(run_dir) / "checkpoints"
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    return checkpoints


def chain_runs(preset: RunPreset):
    """The MAViL runs of the chain in training order: stage 1, then every stage-2 iteration."""
    runs = ablation_runs(preset)
    return runs[4] + runs[5]


def pretrain_chain(train: ClipTensors, preset: RunPreset, run_dir: str | Path, seed: int = 0, device: str = "cpu",
                   resume: bool = True, progress: bool = True) -> tuple[dict[str, MAViL], dict[str, dict]]:
    """Train (or reuse) stage 1 and the stage-2 iterations on ``train`` (`ablation.pretrain_runs`, as the ablation
    trains them); returns ``(models, histories)`` with ``histories[name] = {'loss': [...], ..., 'wall_s': s}``.

    With ``resume=False`` earlier checkpoints in ``run_dir`` are deleted first, so everything trains from scratch.
    """
    models, histories, walls = pretrain_runs(chain_runs(preset), train, preset, checkpoint_dir(run_dir, resume), seed,
                                             device, progress)
    return models, {name: {**history, "wall_s": walls[name]} for name, history in histories.items()}


def final_run(preset: RunPreset) -> str:
    """The name of the chain's last model: the one the tables report as MAViL."""
    return chain_runs(preset)[-1].name


def scale_record(preset: RunPreset, num_train_clips: int, devices: int = 1) -> dict:
    """The scale every number records: preset, model size and parameters, epochs, clips seen, devices."""
    parameters = sum(p.numel() for p in MAViL(preset.model_config()).parameters())
    return {"preset": preset.name, "model": preset.model, "parameters_m": round(parameters / 1e6, 2),
            "epochs": preset.pretrain.epochs, "clips_seen": preset.pretrain.epochs * num_train_clips,
            "devices": devices}


def torchrun_commands(preset: RunPreset, run_dir: str | Path, nproc_per_node: int, nnodes: int = 1, seed: int = 0,
                      recipe: str = "as2m_pretrain", rdzv_endpoint: str = "localhost:29500",
                      workers: int = 0) -> list[list[str]]:
    """The chain as ``torchrun`` launches of ``mavil-lite pretrain``, one per run, in training order.

    ``workers``: data-loading processes per GPU (the paper recipes stream their clips from disk).

    Run each command on every one of the ``nnodes`` machines. Each run writes ``run_dir/checkpoints/<run>/``,
    where `pretrain_chain` (and so every table notebook) finds it; each stage-2 run's teacher is the run before.
    """
    launcher = ["torchrun", f"--nnodes={nnodes}", f"--nproc_per_node={nproc_per_node}", "--rdzv_backend=c10d",
                f"--rdzv_endpoint={rdzv_endpoint}", "-m", "mavil_lite.cli", "pretrain", "--recipe", recipe,
                "--workers", str(workers)]
    checkpoints = Path(run_dir) / "checkpoints"
    commands = []
    for run in chain_runs(preset):
        teacher = ["--teacher", str(checkpoints / run.teacher / "checkpoint.pt")] if run.teacher else []
        overrides = [f"train.seed={seed}"] + [f"model.{k}={v}" for k, v in run.overrides.items() if k != "target"]
        commands.append(launcher + ["--out", str(checkpoints / run.name), *teacher, *overrides])
    return commands


def probe_percent(model: MAViL, train: ClipTensors, test: ClipTensors, kind: str, device: str = "cpu",
                  seed: int = 0) -> tuple[float, str]:
    """A linear probe on the frozen ``kind`` embedding ('audio', 'video' or 'av'): ``(score in %, metric)``."""
    result = probe_embedding(model, train, test, kind, device, seed)
    return 100 * result["value"], result["metric"]


def audio_to_video_r1(model: MAViL, clips: ClipTensors, device: str = "cpu") -> dict[str, float]:
    """Audio-to-video retrieval among ``clips`` in the inter-modal space: R@1 in %, median rank, candidates."""
    a2v = contrast_retrieval(model, clips, device)["a2v"]
    return {"R@1": 100 * a2v["R@1"], "median_rank": a2v["median_rank"], "candidates": a2v["num_pairs"]}
