"""The paper's five-row ablation as configurations of one model, pre-trained, fine-tuned and diagnosed in turn.

=====  ==========================================  ===============================================
row    paper's method                              how it is configured here
=====  ==========================================  ===============================================
0      (ours) no pre-training                      the same fine-tuning from random initialisation: the floor
1      A-MAE / V-MAE (baseline)                    two models, ``modalities=("audio",)`` and ``("video",)``
2      MAViL stage-1: joint AV-MAE                 both modalities, fused, reconstruction only
3      + inter-modal contrast                      ``inter_contrast_weight > 0``
4      + intra- and inter-modal contrast           ``intra_contrast_weight > 0`` as well
5      MAViL stage-2: + student-teacher learning   ``target="teacher"``, row 4's model as the teacher;
                                                   iteration k+1's teacher is iteration k's student
=====  ==========================================  ===============================================

Every model is pre-trained without labels on the clips `pretraining_clips` gives (the train split, plus the
``unlabelled`` split where the data has one). Each row's main score is the paper's protocol: its encoder fine-tuned
end to end on the labelled train split and scored on the test split (mAP for multi-label data, accuracy for
single-label data), with the preset's fine-tuning schedule. The second column is a linear probe of the frozen,
mean-pooled encoder tokens. Every row also reports `mavil_lite.evaluate.diagnostics`: the reconstruction error against the
mean predictor, contrastive accuracy and InfoNCE against chance over training, A->V / V->A retrieval among the test
clips with chance levels, and for stage 2 the student-teacher gap. So a reader can tell a row that did not learn
from one that learned without helping the downstream task.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import ClipTensors
from ..distributed import DistributedContext
from ..evaluate.diagnostics import fused_feature_gap, reconstruction_error, retrieval_diagnostics
from ..evaluate.linear_probe import probe_embedding
from ..model.mavil import MAViL
from ..train.engine import load_checkpoint
from ..train.finetune import MAViLClassifier, finetune
from ..train.pretrain import pretrain
from ..train.runners import load_model, score_classifier
from .paper_numbers import paper_ablation
from .presets import RunPreset
from .results import measured, summarize

NO_PRETRAINING = "random_init"  # row 0's "run": the untrained model every row must beat
PRETRAINING_SPLITS = ("train", "unlabelled")


@dataclass
class Run:
    """One pre-training run: a name, its model overrides, and the run whose model is its teacher."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None


def ablation_runs(preset: RunPreset) -> dict[int, list[Run]]:
    """The runs behind each row, in an order where every teacher is trained before its student."""
    inter = dict(inter_contrast_weight=preset.inter_contrast_weight)
    both = dict(inter, intra_contrast_weight=preset.intra_contrast_weight)
    stage2, teacher = [], "av_inter_intra"
    for k in range(1, preset.stage2_iterations + 1):
        stage2.append(Run(f"stage2_iter{k}", dict(both, target="teacher"), teacher=teacher))
        teacher = stage2[-1].name
    return {
        1: [Run("a_mae", dict(modalities=("audio",))), Run("v_mae", dict(modalities=("video",)))],
        2: [Run("av_mae")],
        3: [Run("av_inter", inter)],
        4: [Run("av_inter_intra", both)],
        5: stage2,
    }


def pretrain_runs(runs: list[Run], data: ClipTensors, preset: RunPreset, checkpoints: Path, seed: int = 0,
                  device: str = "cpu", progress: bool = True) -> tuple[dict[str, MAViL], dict[str, dict], dict[str, float]]:
    """Pre-train ``runs`` in order on ``data`` (each teacher must come before its student):
    ``(models, histories, wall_s)``, each keyed by run name.

    A finished ``checkpoints/<run>.pt`` is reused and an unfinished one resumed; a run launched by torchrun
    (``checkpoints/<run>/checkpoint.pt``, see `reproduction.torchrun_commands`) is loaded as it is. The seed
    initialises every model and also orders the clips and draws the masks.
    """
    config = replace(preset.pretrain, seed=seed)
    models: dict[str, MAViL] = {}
    histories, walls = {}, {}
    for run in runs:
        launched = checkpoints / run.name / "checkpoint.pt"
        if launched.is_file():
            state = load_checkpoint(launched)
            models[run.name], histories[run.name], walls[run.name] = load_model(launched), state["history"], state["wall_s"]
            continue
        torch.manual_seed(seed)
        model = MAViL(preset.model_config(**run.overrides))
        result = pretrain(model, data, config, teacher=models.get(run.teacher), checkpoint=checkpoints / f"{run.name}.pt",
                          device=device, progress=progress, desc=f"seed {seed}: {run.name}")
        models[run.name], histories[run.name], walls[run.name] = model, result.history, result.wall_s
    return models, histories, walls


def probe_model(model: MAViL, train: ClipTensors, test: ClipTensors, device="cpu", seed: int = 0, progress=True) -> dict[str, dict]:
    """Linear-probe each of the model's modalities: ``{modality: linear_probe result}``."""
    return {m: probe_embedding(model, train, test, m, device, seed, progress) for m in model.modalities}


def pretraining_clips(data: ClipTensors) -> ClipTensors:
    """The clips pre-training sees, labels unused: the train split and, where the data has one, the unlabelled split."""
    return data.subset(tuple(split for split in PRETRAINING_SPLITS if split in set(data.splits)))


def finetune_percent(model: MAViL, modality: str, train: ClipTensors, test: ClipTensors, preset: RunPreset,
                     seed: int = 0, device: str = "cpu", checkpoint: str | Path | None = None) -> float:
    """``model``'s ``modality`` encoder fine-tuned end to end on ``train`` with the preset's schedule, scored on
    ``test``: mAP or accuracy in percent. A finished ``checkpoint`` is reused."""
    torch.manual_seed(seed)  # the head's initialisation
    classifier = MAViLClassifier(model, modality, len(train.classes), drop_path=preset.finetune_recipe.drop_path,
                                 head_norm=preset.finetune_recipe.head_norm)
    finetune(classifier, train, replace(preset.finetune, seed=seed), preset.finetune_recipe, checkpoint=checkpoint,
             ctx=DistributedContext(device=device), progress=False)
    return 100 * score_classifier(classifier, test, device)["value"]


def _contrast_summary(history: dict[str, list[float]], batch_size: int) -> dict[str, dict]:
    """Each InfoNCE term at the start and end of training (mean of the first and last tenth of the steps) against
    its chance level ln(batch), and its top-1 accuracy against 1 / batch."""
    summary = {}
    for term in [t for t in history if t == "inter" or (t.startswith("intra_") and not t.endswith("_top1"))]:
        losses, top1 = history[term], history.get(f"{term}_top1", [])
        tenth = max(1, len(losses) // 10)
        summary[term] = {"first": statistics.fmean(losses[:tenth]), "last": statistics.fmean(losses[-tenth:]),
                         "chance": math.log(batch_size),
                         "top1_first": statistics.fmean(top1[:tenth]) if top1 else None,
                         "top1_last": statistics.fmean(top1[-tenth:]) if top1 else None, "top1_chance": 1 / batch_size}
    return summary


def diagnose(model: MAViL, test: ClipTensors, history: dict[str, list[float]] | None, batch_size: int,
             teacher: MAViL | None = None, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """What one pre-trained (or untrained) model reached on its own objectives (see `mavil_lite.evaluate.diagnostics`)."""
    report: dict[str, Any] = {}
    if model.config.with_decoders:
        report["reconstruction"] = reconstruction_error(model, test, teacher=teacher, seed=seed, device=device)
    if history:
        report["contrast"] = _contrast_summary(history, batch_size)
    if len(model.modalities) == 2:
        report["retrieval"] = retrieval_diagnostics(model, test, device)
    if teacher is not None:
        report["student_teacher"] = fused_feature_gap(model, teacher, test, device=device)
    return report


def run_ablation(
    data: ClipTensors,
    preset: RunPreset,
    out_dir: str | Path,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Pre-train, fine-tune, probe and diagnose every row. Finished runs found in ``out_dir/checkpoints`` are reused.

    Returns ``rows`` (one dict per table row 0-5: ``audio`` / ``video`` fine-tuned scores and ``audio_probe`` /
    ``video_probe`` in percent, the metric, the pre-training wall time), ``histories`` (loss terms per run),
    ``diagnostics`` (per run, `diagnose`) and ``probes`` (full probe results per run).
    """
    checkpoints = Path(out_dir) / "checkpoints"
    pool, train, test = pretraining_clips(data), data.subset("train"), data.subset("test")
    trained = ablation_runs(preset)
    models, histories, walls = pretrain_runs([run for runs in trained.values() for run in runs], pool, preset,
                                             checkpoints, seed, device, progress)
    torch.manual_seed(seed)
    models[NO_PRETRAINING], walls[NO_PRETRAINING] = MAViL(preset.model_config()).to(device), 0.0
    # a row's pre-training time counts every run behind it (all stage-2 iterations)
    scored_runs = {0: [Run(NO_PRETRAINING)]} | {row: runs if row == 1 else runs[-1:] for row, runs in trained.items()}
    teachers = {run.name: run.teacher for runs in trained.values() for run in runs}

    rows, probes, diagnostics = [], {}, {}
    paper = paper_ablation()
    for row, runs in scored_runs.items():
        scores: dict[str, float] = {}
        for run in runs:
            model = models[run.name]
            probes[run.name] = probe_model(model, train, test, device, seed, progress=False)
            for m in model.modalities:
                scores[m] = finetune_percent(model, m, train, test, preset, seed, device,
                                             checkpoints / f"finetune_{run.name}_{m}.pt")
                scores[f"{m}_probe"] = 100 * probes[run.name][m]["value"]
            diagnostics[run.name] = diagnose(model, test, histories.get(run.name), preset.pretrain.batch_size,
                                             models.get(teachers.get(run.name)), device, seed)
        metric = next(iter(probes[runs[0].name].values()))["metric"]
        method = paper[row]["method"] if row in paper else "no pre-training (random init)"
        rows.append({"row": row, "method": method, **scores, "metric": metric,
                     "wall_s": sum(walls[run.name] for run in trained.get(row, runs)), "runs": [run.name for run in runs]})
        if progress:
            print(f"row {row} ({', '.join(run.name for run in runs)}): fine-tuned audio {scores['audio']:.1f} / "
                  f"video {scores['video']:.1f}, probe {scores['audio_probe']:.1f} / {scores['video_probe']:.1f}")
    return {"rows": rows, "histories": histories, "probes": probes, "diagnostics": diagnostics}


def ablation_measurements(results_by_seed: dict[int, dict], dataset: str, scale: dict, preset: RunPreset,
                          benchmark: str = "AS-20K", comparable: bool = False) -> dict[tuple, dict]:
    """Our side of every ablation number of the paper (rows 1-5, fine-tuned):
    ``{(row, benchmark, 'A' | 'V'): mavil_lite.experiments.results.measured(...)}``.

    ``results_by_seed`` maps each seed to what `run_ablation` returned for it.
    """
    ours = {}
    for row, runs in ablation_runs(preset).items():
        config = {"preset": asdict(preset), "runs": [asdict(run) for run in runs], "data": dataset}
        per_seed = [next(r for r in result["rows"] if r["row"] == row) for result in results_by_seed.values()]
        wall_s = sum(r["wall_s"] for r in per_seed)
        for modality, key in (("A", "audio"), ("V", "video")):
            ours[(row, benchmark, modality)] = measured([r[key] for r in per_seed], dataset=dataset, scale=scale,
                                                        wall_s=wall_s, config=config, comparable=comparable,
                                                        metric=per_seed[0]["metric"])
    return ours


def mean_rows(results_by_seed: dict[int, dict]) -> list[dict]:
    """Rows 0-5 with every score's mean and sample std over the seeds (`results.summarize`):
    ``{'row', 'method', 'metric', '<score>', '<score>_std', '<score>_values', 'wall_s'}``."""
    first = next(iter(results_by_seed.values()))["rows"]
    summary = []
    for index, row in enumerate(first):
        entry = {"row": row["row"], "method": row["method"], "metric": row["metric"]}
        for key in ("audio", "video", "audio_probe", "video_probe"):
            summary_of_key = summarize(result["rows"][index][key] for result in results_by_seed.values())
            entry[key], entry[f"{key}_std"] = summary_of_key["mean"], summary_of_key["std"]
            entry[f"{key}_values"] = summary_of_key["values"]
        entry["wall_s"] = statistics.fmean(result["rows"][index]["wall_s"] for result in results_by_seed.values())
        summary.append(entry)
    return summary
