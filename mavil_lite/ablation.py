"""The paper's five-row ablation as configurations of one model, pre-trained and probed in turn.

=====  ==========================================  ===============================================
row    paper's method                              how it is configured here
=====  ==========================================  ===============================================
1      A-MAE / V-MAE (baseline)                    two models, ``modalities=("audio",)`` and ``("video",)``
2      MAViL stage-1: joint AV-MAE                 both modalities, fused, reconstruction only
3      + inter-modal contrast                      ``inter_contrast_weight > 0``
4      + intra- and inter-modal contrast           ``intra_contrast_weight > 0`` as well
5      MAViL stage-2: + student-teacher learning   ``target="teacher"``, row 4's model as the teacher;
                                                   iteration k+1's teacher is iteration k's student
=====  ==========================================  ===============================================

Every model is pre-trained on the train split without labels; the downstream score of a modality is
a linear probe on that modality's frozen, mean-pooled encoder tokens (train split -> test split), mAP
for multi-label data and accuracy for single-label data. The paper fine-tunes instead; a probe is
what a CPU affords, and it measures the representation more directly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .dataset import ClipTensors
from .model import MAViL
from .presets import RunPreset
from .pretrain import pretrain
from .probe import probe_embedding
from .results import measured
from .tables import paper_ablation


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


def probe_model(model: MAViL, train: ClipTensors, test: ClipTensors, device="cpu", seed: int = 0, progress=True) -> dict[str, dict]:
    """Linear-probe each of the model's modalities: ``{modality: linear_probe result}``."""
    return {m: probe_embedding(model, train, test, m, device, seed, progress) for m in model.modalities}


def run_ablation(
    data: ClipTensors,
    preset: RunPreset,
    out_dir: str | Path,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Pre-train and probe every row. Finished runs found in ``out_dir/checkpoints`` are reused.

    Returns ``rows`` (one dict per table row: audio/video scores in percent, metric, pre-train wall
    time), ``histories`` (loss curves per run), ``random_init`` (the probe of an untrained model,
    the floor every row should beat) and ``probes`` (full probe results per run).
    """
    out_dir = Path(out_dir)
    train, test = data.subset("train"), data.subset("test")
    config = replace(preset.pretrain, seed=seed)  # the seed also orders the clips and draws the masks
    paper = paper_ablation()
    models: dict[str, MAViL] = {}
    histories, probes, walls = {}, {}, {}
    for row, runs in ablation_runs(preset).items():
        for run in runs:
            torch.manual_seed(seed)
            model = MAViL(preset.model_config(**run.overrides))
            checkpoint = out_dir / "checkpoints" / f"{run.name}.pt"
            result = pretrain(
                model, train, config, teacher=models.get(run.teacher), checkpoint=checkpoint,
                device=device, progress=progress, desc=f"row {row}: {run.name}",
            )
            histories[run.name], walls[run.name] = result.history, result.wall_s
            models[run.name] = model
            probes[run.name] = probe_model(model, train, test, device, seed, progress=False)

    torch.manual_seed(seed)
    random_init = probe_model(MAViL(preset.model_config()).to(device), train, test, device, seed, progress=False)
    rows = []
    for row, runs in ablation_runs(preset).items():
        scored = runs if row == 1 else runs[-1:]  # row 5 reports the last stage-2 iteration
        scores = {m: r for run in scored for m, r in probes[run.name].items()}
        rows.append({
            "row": row, "method": paper[row]["method"],
            "audio": 100 * scores["audio"]["value"], "video": 100 * scores["video"]["value"],
            "metric": scores["audio"]["metric"], "wall_s": sum(walls[run.name] for run in runs),
            "runs": [run.name for run in runs],
        })
    return {
        "rows": rows, "histories": histories, "probes": probes,
        "random_init": {m: 100 * r["value"] for m, r in random_init.items()},
    }


def ablation_measurements(results_by_seed: dict[int, dict], dataset: str, scale: dict, preset: RunPreset,
                          benchmark: str = "AS-20K", comparable: bool = False) -> dict[tuple, dict]:
    """Our side of every ablation number: ``{(row, benchmark, 'A' | 'V'): mavil_lite.results.measured(...)}``.

    ``results_by_seed`` maps each seed to what `run_ablation` returned for it.
    """
    ours = {}
    for index, (row, runs) in enumerate(ablation_runs(preset).items()):
        config = {"preset": asdict(preset), "runs": [asdict(run) for run in runs], "data": dataset}
        wall_s = sum(result["rows"][index]["wall_s"] for result in results_by_seed.values())
        metric = next(iter(results_by_seed.values()))["rows"][index]["metric"]
        for modality, key in (("A", "audio"), ("V", "video")):
            values = [result["rows"][index][key] for result in results_by_seed.values()]
            ours[(row, benchmark, modality)] = measured(values, dataset=dataset, scale=scale, wall_s=wall_s, config=config,
                                                        comparable=comparable, metric=metric)
    return ours
