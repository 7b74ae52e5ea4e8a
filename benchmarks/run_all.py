"""The kit against the hardware limit and against plain timm: every performance figure in one run.

Sections (``--only a,c`` runs a subset; later sections reuse the measurements of earlier ones):

a. peak:     best GFLOP/s of square matmuls in fp32 and bf16, the ceiling the other figures are read against.
             It is measured again beside every step whose MFU is computed, and each MFU is read against the best
             measurement of the run so far: load on a busy machine only lowers a measurement, and a peak measured
             once, under load, made the MFU read 112% and 132%. An MFU above 100% is flagged as a measurement error.
b. mfu:      pre-training step time and model FLOPs utilisation, MFU = FLOPs / step time / fp32 peak, for the
             presets smoke and cpu (tiny: every ablation run), gpu (small) and paper (base: av_inter_intra and
             stage 2), with the FLOP formula's terms for one configuration. Target: >= 50% for paper at batch >= 2.
c. bf16:     bf16 autocast step time over fp32 for each preset (fast only where the CPU has AMX / avx512_bf16).
d. timm:     our audio encoder, video encoder and fusion on unmasked input against a plain stack of timm
             Blocks of the same width, depth and heads on as many tokens. Target: <= 5% overhead.
e. growth:   step time against the number of tokens (audio 256 / 512 / 1024 frames, video 4 / 8 / 16 frames)
             and against the mask ratio, with log-log exponents beside those of the FLOP count.
f. extras:   what the intra-modal second view and the stage-2 teacher pass add to a step.
g. data:     the share of a step spent waiting for data when training from the kit's cache on this machine.
h. gpu:      paper preset in bf16 at batch 64 on a GPU (clips/s, MFU against the measured bf16 peak, memory).

A step is what :func:`mavil_lite.train.engine.train` does per optimiser step, without logging: ``zero_grad``,
forward (under bf16 autocast when asked), backward and the AdamW update, on random inputs of the preset's shape;
the stage-2 teacher is frozen and runs without gradients, as in :func:`mavil_lite.train.pretrain.pretrain`. FLOPs are
the analytic count of :mod:`mavil_lite.model.flops` (matmuls only, optimiser not counted), so MFU is slightly
conservative. Each time is the median of ``--repeats`` runs after ``--warmup`` untimed ones; base-size steps,
which take seconds each on a CPU, are capped at 2 repeats there. On a CPU the batches are smaller than the presets'
(GPU-sized) batches: smoke 16, cpu 32, gpu 8, paper 2.

    python benchmarks/run_all.py [--quick] [--only a,b] [--repeats 3] [--threads N]

Prints the tables and writes benchmarks/results/run_all-<date>-<host>.json and benchmarks/results/latest.json
(a ``--quick`` sanity run writes run_all-quick-<date>-<host>.json only, and leaves latest.json alone).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from bench_data import machine as data_bench_machine
from timm.models.vision_transformer import Block
from torch import nn

from mavil_lite.data.cache import PREPARE_PRESETS
from mavil_lite.data.dataset import ClipTensors
from mavil_lite.data.media import frames_to_tensor
from mavil_lite.experiments.ablation import ablation_runs
from mavil_lite.experiments.presets import PRESETS, get_preset
from mavil_lite.model.flops import forward_flops, num_patches, step_flops
from mavil_lite.model.masking import num_visible
from mavil_lite.model.mavil import MAViL, MAViLConfig
from mavil_lite.train.engine import make_optimizer, weight_decay_groups

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA_RESULTS = RESULTS / "data.json"  # written by bench_data.py

CPU_BATCH = {"smoke": 16, "cpu": 32, "gpu": 8, "paper": 2}  # the gpu / paper presets' own 64 / 512 are GPU batches
QUICK_BATCH = {"smoke": 4, "cpu": 8}
GPU_BATCH = 64
ALL_RUNS = ("a_mae", "v_mae", "av_mae", "av_inter", "av_inter_intra", "stage2_iter1")
MFU_RUNS = {"smoke": ALL_RUNS, "cpu": ALL_RUNS, "gpu": ("av_mae", "av_inter", "av_inter_intra", "stage2_iter1"),
            "paper": ("av_inter_intra", "stage2_iter1")}
MFU_TARGET, OVERHEAD_TARGET = 0.50, 0.05  # stated in the issue
BASE_REPEATS = 2  # a base-size step takes seconds on a CPU
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


# --------------------------------------------------------------------------------------------- printing
def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """Plain-text table, numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def pct(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 1)


def mfu_cell(mfu: float | None) -> float | str | None:
    """An MFU in percent for a table, marked where it exceeds 100% (which no step can reach)."""
    return f"{pct(mfu)} ERROR" if mfu is not None and mfu > 1 else pct(mfu)


def flag_impossible_mfu(figures: dict[str, float | None]) -> list[str]:
    """Warn about every MFU above 100%, named by its label, and return the labels: no step can beat the peak, so
    the peak it was read against was under-measured (the machine was busier then than during the step) or is not
    the ceiling of the kernels the step runs (CPU bf16 without native support), and the figure is not valid."""
    impossible = [label for label, mfu in figures.items() if mfu is not None and mfu > 1]
    if impossible:
        print(f"  MEASUREMENT ERROR: MFU above 100% for {'; '.join(impossible)}: the matmul peak was under-measured "
              f"(a busy machine) or is not the step's ceiling; these MFU figures are not valid")
    return impossible


def heading(key: str, title: str) -> None:
    print(f"\n=== {key}. {title} ===", flush=True)


# --------------------------------------------------------------------------------------------- timing
def timed(fn: Callable[[], Any], repeats: int, warmup: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed ones (allocations, kernel set-up)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return times


def sync_for(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares exponent k of ``y ~ x ** k``."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


@dataclass(frozen=True)
class Case:
    """One timed training step: a preset's model size, an ablation run's objective, a batch and a precision."""

    preset: str
    run: str
    batch: int
    bf16: bool = False
    mask_ratio: float | None = None
    overrides: tuple[tuple[str, Any], ...] = ()  # model fields changed for the growth sweep, e.g. audio_size
    device: str = "cpu"
    cached_targets: bool = False  # stage 2: the teacher's targets computed beforehand, as pretrain() does

    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.overrides)
        ratio = f" mask={self.mask_ratio}" if self.mask_ratio is not None else ""
        cached = " cached-targets" if self.cached_targets else ""
        return f"{self.preset}/{self.run} batch {self.batch} {'bf16' if self.bf16 else 'fp32'}{ratio}{cached} {extra}".strip()


def case_configs(case: Case) -> tuple[MAViLConfig, MAViLConfig | None]:
    """The student's configuration and, for a stage-2 run, its teacher's (the run it learns from)."""
    preset = get_preset(case.preset)
    runs = {run.name: run for row in ablation_runs(preset).values() for run in row}
    run, extra = runs[case.run], dict(case.overrides)
    teacher = preset.model_config(**runs[run.teacher].overrides, **extra) if run.teacher else None
    return preset.model_config(**run.overrides, **extra), teacher


class Bench:
    """Measurements shared by the sections: step times, each measured once per run, and matmul peaks, measured
    again beside every step whose MFU is computed."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quick = args.quick
        self._peaks: dict[tuple, list[float]] = {}  # (dtype, device) -> every measurement, in run order
        self._steps: dict[Case, dict] = {}
        self._mfus: dict[Case, float] = {}

    def batch(self, preset: str) -> int:
        return QUICK_BATCH[preset] if self.quick else CPU_BATCH[preset]

    def repeats(self, preset: str, device: str = "cpu") -> int:
        slow = PRESETS[preset].model == "base" and device == "cpu"
        return min(self.args.repeats, BASE_REPEATS) if slow else self.args.repeats

    def measure_peak(self, dtype: torch.dtype, device: str = "cpu") -> float:
        """Measure once more the best GFLOP/s of ``size x size`` matmuls (2048 on a CPU, 8192 on a GPU; 1024 with
        --quick), kept with the earlier measurements."""
        size = 1024 if self.quick else 8192 if device.startswith("cuda") else 2048
        a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
        times = timed(lambda: a @ b, max(3, self.args.repeats), self.args.warmup, sync_for(device))
        measured = 2 * size ** 3 / min(times) / 1e9
        self._peaks.setdefault((dtype, device), []).append(measured)
        print(f"  peak {device} {str(dtype).removeprefix('torch.')}: {measured:.1f} GFLOP/s "
              f"({size}^2 matmul, best of {len(times)}; best of the run {self.peak(dtype, device):.1f})", flush=True)
        return measured

    def peak(self, dtype: torch.dtype, device: str = "cpu") -> float:
        """The best peak measurement of the run so far (measuring one if there is none yet)."""
        if (dtype, device) not in self._peaks:
            self.measure_peak(dtype, device)
        return max(self._peaks[(dtype, device)])

    def peak_measurements(self) -> dict[str, list[float]]:
        """Every peak measurement of the run, by device and dtype, in run order (for the JSON)."""
        return {f"{device} {str(dtype).removeprefix('torch.')}": values
                for (dtype, device), values in self._peaks.items()}

    def step(self, case: Case) -> dict:
        """Time one training step of ``case``: median seconds, the times, and the analytic FLOPs."""
        if case not in self._steps:
            print(f"  timing {case.label()} ...", flush=True)
            config, teacher_config = case_configs(case)
            step_fn, model, optimizer_s = make_step(case, config, teacher_config)
            sync = sync_for(case.device)
            if case.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            times = timed(step_fn, self.repeats(case.preset, case.device), self.args.warmup, sync)
            flops = sum(step_flops(config, case.batch, case.mask_ratio, teacher_config).values())
            result = {"case": case.label(), "median_s": statistics.median(times), "times_s": times, "flops": flops,
                      "gflops_per_s": flops / statistics.median(times) / 1e9,
                      "optimizer_s": statistics.median(optimizer_s[-len(times):]),
                      "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}
            if case.device.startswith("cuda"):
                result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
            self._steps[case] = result
        return self._steps[case]

    def mfu(self, case: Case) -> float:
        """The step's FLOPs per second over the peak: measured again right after the step, and the best of the run
        so far taken (the run's best only grows, so an MFU never rests on one measurement taken under load)."""
        if case not in self._mfus:
            dtype = torch.bfloat16 if case.bf16 else torch.float32
            step = self.step(case)
            self.measure_peak(dtype, case.device)
            self._mfus[case] = step["gflops_per_s"] / self.peak(dtype, case.device)
        return self._mfus[case]


def random_inputs(config: MAViLConfig, batch: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Normalised-looking inputs of a config's shape: audio ``(B, 1, T, F)``, video ``(B, 3, frames, H, W)``."""
    return {"audio": torch.randn(batch, 1, *config.audio_size, device=device),
            "video": torch.randn(batch, 3, *config.video_size, device=device)}


def make_step(case: Case, config: MAViLConfig, teacher_config: MAViLConfig | None
              ) -> tuple[Callable[[], None], MAViL, list[float]]:
    """A closure running one training step as engine.train does (AdamW, bf16 autocast of the forward), the model,
    and the list to which each call appends the seconds of its AdamW update."""
    torch.manual_seed(0)
    model = MAViL(config).to(case.device).train()
    teacher = None
    if teacher_config is not None:
        teacher = MAViL(teacher_config).to(case.device).eval().requires_grad_(False)
    train_config = get_preset(case.preset).pretrain
    optimizer = make_optimizer(weight_decay_groups(model, train_config.weight_decay), train_config.lr(), train_config)
    inputs = random_inputs(config, case.batch, case.device)
    targets = None
    if case.cached_targets and teacher is not None:
        targets, teacher = teacher.fused_targets(**inputs), None  # computed once per clip, before training
    noise = model.mask_noise(case.batch, torch.Generator().manual_seed(0))  # the engine draws it per step
    autocast = torch.autocast(torch.device(case.device).type, dtype=torch.bfloat16, enabled=case.bf16)

    sync, optimizer_s = sync_for(case.device), []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = model(**inputs, teacher=teacher, mask_ratio=case.mask_ratio, noise=noise, targets=targets)
        out["loss"].backward()
        sync()
        started = time.perf_counter()
        optimizer.step()
        sync()
        optimizer_s.append(time.perf_counter() - started)

    return step, model, optimizer_s


# --------------------------------------------------------------------------------------------- sections
def section_peak(bench: Bench) -> dict:
    heading("a", "peak matmul throughput")
    fp32, bf16 = bench.peak(torch.float32), bench.peak(torch.bfloat16)
    print_table(["dtype", "GFLOP/s"], [["fp32", fp32], ["bf16", bf16]])
    return {"fp32_gflops": fp32, "bf16_gflops": bf16, "bf16_over_fp32": bf16 / fp32}


def section_mfu(bench: Bench) -> dict:
    heading("b", "pre-training step MFU (fp32; step = zero_grad + forward + backward + AdamW)")
    presets = ("smoke", "cpu") if bench.quick else ("smoke", "cpu", "gpu", "paper")
    rows, table = [], []
    for preset in presets:
        for run in MFU_RUNS[preset]:
            case = Case(preset, run, bench.batch(preset))
            result, mfu = bench.step(case), bench.mfu(case)
            rows.append({"preset": preset, "model": PRESETS[preset].model, "run": run, "batch": case.batch,
                         **result, "mfu": mfu, "mfu_measurement_error": mfu > 1})
            table.append([preset, PRESETS[preset].model, run, case.batch, result["median_s"],
                          pct(result["optimizer_s"] / result["median_s"]), result["flops"] / 1e9,
                          result["gflops_per_s"], mfu_cell(mfu)])
    print()
    print_table(["preset", "model", "run", "batch", "step s", "AdamW % of step", "GFLOP/step", "GFLOP/s", "MFU %"],
                table)
    flag_impossible_mfu({row["case"]: row["mfu"] for row in rows})

    shown = Case(presets[-1], "stage2_iter1", bench.batch(presets[-1]))
    config, teacher_config = case_configs(shown)
    forward = forward_flops(config, shown.batch, None, teacher_config)
    step = step_flops(config, shown.batch, None, teacher_config)
    total = sum(step.values())
    print(f"\nFLOP terms of {shown.label()} (matmuls, 2*m*n*k; step = 3x forward, patch embedding 2x, teacher 1x):")
    print_table(["term", "forward GFLOP", "step GFLOP", "% of step"],
                [[name, forward[name] / 1e9, step[name] / 1e9, pct(step[name] / total)] for name in step])
    print(f"total: forward {sum(forward.values()) / 1e9:.4g} GFLOP, step {total / 1e9:.4g} GFLOP")

    verdicts = []
    for row in rows:
        if row["preset"] == "paper" and row["batch"] >= 2:
            met = None if row["mfu_measurement_error"] else row["mfu"] >= MFU_TARGET
            verdicts.append({"run": row["run"], "mfu": row["mfu"], "met": met})
            verdict = {None: "not judged (measurement error)", True: "met", False: "NOT met"}[met]
            print(f"target: paper {row['run']} batch {row['batch']}: MFU {100 * row['mfu']:.1f}% "
                  f"{'>=' if row['mfu'] >= MFU_TARGET else '<'} {100 * MFU_TARGET:.0f}% of fp32 peak: {verdict}")
    if not verdicts:
        print("target (paper preset, >= 50% of fp32 peak): not measured in this run (--quick runs tiny sizes only)")
    return {"rows": rows, "terms": {"case": shown.label(), "forward": forward, "step": step},
            "target": {"mfu": MFU_TARGET, "paper": verdicts or None}}


def section_bf16(bench: Bench) -> dict:
    heading("c", "bf16 autocast against fp32 (av_inter_intra)")
    flags = cpu_flags()
    print(f"  CPU flags: {', '.join(f for f in CPU_FLAGS if flags.get(f)) or 'none of ' + ', '.join(CPU_FLAGS)}")
    presets = ("smoke", "cpu") if bench.quick else ("smoke", "cpu", "gpu", "paper")
    rows = []
    for preset in presets:
        fp32 = Case(preset, "av_inter_intra", bench.batch(preset))
        bf16 = replace(fp32, bf16=True)
        t32, t16 = bench.step(fp32)["median_s"], bench.step(bf16)["median_s"]
        rows.append({"preset": preset, "batch": fp32.batch, "fp32_s": t32, "bf16_s": t16, "bf16_over_fp32": t16 / t32,
                     "mfu_fp32": bench.mfu(fp32), "mfu_bf16_vs_bf16_peak": bench.mfu(bf16)})
    print()
    print_table(["preset", "batch", "fp32 s", "bf16 s", "bf16 / fp32", "MFU fp32 %", "MFU bf16 % (bf16 peak)"],
                [[r["preset"], r["batch"], r["fp32_s"], r["bf16_s"], r["bf16_over_fp32"], mfu_cell(r["mfu_fp32"]),
                  mfu_cell(r["mfu_bf16_vs_bf16_peak"])] for r in rows])
    impossible = flag_impossible_mfu({f"{r['preset']} {precision}": r[key] for r in rows
                                      for precision, key in (("fp32", "mfu_fp32"), ("bf16", "mfu_bf16_vs_bf16_peak"))})
    return {"rows": rows, "cpu_flags": flags, "mfu_measurement_errors": impossible}


def timm_stack(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.Sequential:
    """The plain-timm reference: ViT blocks and nothing else (qkv bias as ours)."""
    return nn.Sequential(*[Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])


def section_timm(bench: Bench) -> dict:
    heading("d", "overhead against plain timm blocks (forward, unmasked input, no grad)")
    presets = ("cpu",) if bench.quick else ("cpu", "paper")
    rows = []
    for preset in presets:
        config, batch, repeats = get_preset(preset).model_config(), bench.batch(preset), bench.repeats(preset)
        torch.manual_seed(0)
        model = MAViL(config).eval()
        inputs = random_inputs(config, batch)
        with torch.no_grad():
            patches = {m: model.encoders[m].embed(x) for m, x in inputs.items()}  # (B, N, dim)
            tokens = {m: model.encoders[m].forward_blocks(p) for m, p in patches.items()}  # (B, 1 + N, dim)
        terms = forward_flops(config, batch, 0.0)
        parts = []  # (name, ours, ours without the embedding, timm stack, its input, FLOP term prefixes)
        for m in config.modalities:
            depth = config.audio_depth if m == "audio" else config.video_depth
            parts.append((f"{m} encoder",
                          lambda m=m: model.forward_encoder({m: inputs[m]}, 0.0),  # embedding, CLS, blocks
                          lambda m=m: model.encoders[m].forward_blocks(patches[m]),  # CLS and blocks only
                          timm_stack(config.dim, depth, config.num_heads, config.mlp_ratio).eval(),
                          torch.randn(batch, 1 + patches[m].shape[1], config.dim),
                          (f"{m}.patch_embed", f"{m}.encoder.")))
        parts.append(("fusion", lambda: model.forward_fusion(tokens), None,
                      timm_stack(config.dim, config.fusion_depth, config.num_heads, config.mlp_ratio).eval(),
                      torch.randn_like(torch.cat(list(tokens.values()), dim=1)), ("fusion.",)))
        for name, ours, ours_blocks, stack, x, prefixes in parts:
            print(f"  timing {preset} {name} ...", flush=True)
            candidates = {"ours": ours, "timm": lambda stack=stack, x=x: stack(x)}
            if ours_blocks is not None:
                candidates["ours_blocks"] = ours_blocks
            times = {k: [] for k in candidates}
            with torch.no_grad():
                for fn in candidates.values():  # warm-up
                    for _ in range(bench.args.warmup):
                        fn()
                for _ in range(repeats):  # take turns, so a neighbour's load slows them alike
                    for k, fn in candidates.items():
                        times[k] += timed(fn, 1, 0)
            median = {k: statistics.median(v) for k, v in times.items()}
            part_flops = sum(v for k, v in terms.items() if k.startswith(prefixes))
            embed_flops = sum(v for k, v in terms.items() if k.endswith(".patch_embed") and k.startswith(prefixes))
            rows.append({"preset": preset, "model": PRESETS[preset].model, "part": name, "batch": batch,
                         "tokens": x.shape[1], "ours_s": median["ours"], "timm_s": median["timm"],
                         "ours_blocks_s": median.get("ours_blocks"), "overhead": median["ours"] / median["timm"] - 1,
                         "blocks_overhead": median["ours_blocks"] / median["timm"] - 1 if "ours_blocks" in median
                         else None, "patch_embed_flop_share": embed_flops / part_flops})
    print()
    print_table(["model", "part", "batch", "tokens", "ours s", "timm s", "overhead %", "blocks-only overhead %",
                 "patch-embed FLOP %"],
                [[r["model"], r["part"], r["batch"], r["tokens"], r["ours_s"], r["timm_s"], pct(r["overhead"]),
                  pct(r["blocks_overhead"]), pct(r["patch_embed_flop_share"])] for r in rows])
    worst = max(r["overhead"] for r in rows)
    worst_blocks = max(r["blocks_overhead"] if r["blocks_overhead"] is not None else r["overhead"] for r in rows)
    print(f"target: overhead <= {100 * OVERHEAD_TARGET:.0f}%: worst {100 * worst:+.1f}%: "
          f"{'met' if worst <= OVERHEAD_TARGET else 'NOT met'}; without the patch embedding (work the timm stack "
          f"does not do: its FLOP share is the last column) {100 * worst_blocks:+.1f}%: "
          f"{'met' if worst_blocks <= OVERHEAD_TARGET else 'NOT met'}")
    return {"rows": rows, "target": OVERHEAD_TARGET, "met": worst <= OVERHEAD_TARGET,
            "met_without_patch_embedding": worst_blocks <= OVERHEAD_TARGET}


def section_growth(bench: Bench) -> dict:
    heading("e", "cost growth with tokens and mask ratio")
    preset, batch = ("smoke", 2) if bench.quick else ("gpu", 4)
    base = get_preset(preset).model_config()
    sweeps = {  # name: (run, modality, model field, sizes)
        "audio frames": ("a_mae", "audio", "audio_size", [(frames, base.audio_size[1]) for frames in (256, 512, 1024)]),
        "video frames": ("v_mae", "video", "video_size", [(frames, *base.video_size[1:]) for frames in (4, 8, 16)]),
    }
    result: dict[str, Any] = {"preset": preset, "model": PRESETS[preset].model, "batch": batch}
    table = []
    for sweep, (run, modality, field, sizes) in sweeps.items():
        points = []
        for size in sizes:
            case = Case(preset, run, batch, overrides=((field, size),))
            tokens = num_patches(case_configs(case)[0], modality)
            step = bench.step(case)
            points.append({"size": size, "tokens": tokens, "step_s": step["median_s"], "flops": step["flops"]})
            table.append([sweep, f"{run} {size[0]}", tokens, step["median_s"], step["flops"] / 1e9, None, None])
        result[sweep] = {"points": points, **_exponents(points, "tokens")}
    ratio_points = []
    for ratio in (0.5, 0.65, 0.8, 0.9):
        case = Case(preset, "av_mae", batch, mask_ratio=ratio)
        config, _ = case_configs(case)
        visible = sum(num_visible(num_patches(config, m), ratio) for m in config.modalities)
        encoder_s, encoder_flops = encoder_time(bench, case, config)
        step = bench.step(case)
        ratio_points.append({"mask_ratio": ratio, "visible": visible, "step_s": step["median_s"],
                             "flops": step["flops"], "encoder_s": encoder_s, "encoder_flops": encoder_flops})
        table.append(["mask ratio", f"av_mae {ratio}", visible, step["median_s"], step["flops"] / 1e9, encoder_s,
                      encoder_flops / 1e9])
    result["mask ratio"] = {"points": ratio_points, **_exponents(ratio_points, "visible"),
                            "encoder_time_exponent": loglog_slope([p["visible"] for p in ratio_points],
                                                                  [p["encoder_s"] for p in ratio_points]),
                            "encoder_flop_exponent": loglog_slope([p["visible"] for p in ratio_points],
                                                                  [p["encoder_flops"] for p in ratio_points])}
    print()
    print_table(["sweep", "case", "tokens (visible for ratio)", "step s", "GFLOP/step", "encoders s", "encoders GFLOP"],
                table)
    print()
    print_table(["sweep", "time exponent", "FLOP exponent"],
                [[sweep, result[sweep]["time_exponent"], result[sweep]["flop_exponent"]] for sweep in sweeps] +
                [["mask ratio: step", result["mask ratio"]["time_exponent"], result["mask ratio"]["flop_exponent"]],
                 ["mask ratio: encoders", result["mask ratio"]["encoder_time_exponent"],
                  result["mask ratio"]["encoder_flop_exponent"]]])
    print(f"(model {result['model']}, batch {batch}; exponent k of time ~ tokens^k; the mask-ratio rows use the "
          f"visible tokens of both modalities; encoders = embedding + masking + encoder blocks, forward + backward)")
    return result


def _exponents(points: list[dict], x: str) -> dict:
    xs = [p[x] for p in points]
    return {"time_exponent": loglog_slope(xs, [p["step_s"] for p in points]),
            "flop_exponent": loglog_slope(xs, [p["flops"] for p in points])}


def encoder_time(bench: Bench, case: Case, config: MAViLConfig) -> tuple[float, int]:
    """Median seconds of the encoders' forward + backward alone (their share of a step) and their FLOPs."""
    torch.manual_seed(0)
    model = MAViL(config).train()
    inputs = random_inputs(config, case.batch)
    noise = model.mask_noise(case.batch, torch.Generator().manual_seed(0))

    def encode() -> None:
        tokens, _, _ = model.forward_encoder({m: inputs[m] for m in config.modalities}, case.mask_ratio, noise=noise)
        sum(t.sum() for t in tokens.values()).backward()

    times = timed(encode, bench.repeats(case.preset), bench.args.warmup)
    flops = sum(v for k, v in step_flops(config, case.batch, case.mask_ratio).items()
                if k.split(".")[1] in ("patch_embed", "encoder"))
    return statistics.median(times), flops


def section_extras(bench: Bench) -> dict:
    heading("f", "what the intra-modal second view and the stage-2 teacher add to a step (fp32)")
    presets = ("cpu",) if bench.quick else ("cpu", "gpu", "paper")
    comparisons = [("second view (intra)", "av_inter_intra", "av_inter"),
                   ("teacher pass (stage 2)", "stage2_iter1", "av_inter_intra"),
                   ("contrast + view + teacher", "stage2_iter1", "av_mae")]
    rows = []
    for preset in presets:
        measured = set(MFU_RUNS[preset])
        for extra, with_run, without_run in comparisons:
            if not {with_run, without_run} <= measured:
                continue  # base-size steps are too slow on a CPU to time the configurations section b skips
            with_step = bench.step(Case(preset, with_run, bench.batch(preset)))
            without_step = bench.step(Case(preset, without_run, bench.batch(preset)))
            rows.append({"preset": preset, "model": PRESETS[preset].model, "extra": extra, "with": with_run,
                         "without": without_run, "time_ratio": with_step["median_s"] / without_step["median_s"],
                         "flop_ratio": with_step["flops"] / without_step["flops"]})
        if "stage2_iter1" in measured:  # what pretrain() does when the targets fit in memory
            cached = bench.step(Case(preset, "stage2_iter1", bench.batch(preset), cached_targets=True))
            uncached = bench.step(Case(preset, "stage2_iter1", bench.batch(preset)))
            rows.append({"preset": preset, "model": PRESETS[preset].model, "extra": "targets computed once (stage 2)",
                         "with": "stage2_iter1 cached", "without": "stage2_iter1",
                         "time_ratio": cached["median_s"] / uncached["median_s"], "flop_ratio": None})
    print()
    print_table(["preset", "model", "extra", "with / without", "time ratio", "FLOP ratio"],
                [[r["preset"], r["model"], r["extra"], f"{r['with']} / {r['without']}", r["time_ratio"],
                  r["flop_ratio"]] for r in rows])
    return {"rows": rows}


def section_data(bench: Bench) -> dict:
    heading("g", "waiting for data (fp32 av_inter_intra steps)")
    data = json.loads(DATA_RESULTS.read_text()) if DATA_RESULTS.exists() else None
    presets = ("cpu",) if bench.quick else ("cpu", "paper")
    rows = []
    for preset in presets:
        batch = bench.batch(preset)
        config = get_preset(preset).model_config()
        step_s = bench.step(Case(preset, "av_inter_intra", batch))["median_s"]
        frames = torch.randint(0, 256, (batch, *config.video_size, 3), dtype=torch.uint8)  # (B, T, H, W, 3)
        clips = ClipTensors(audio=torch.randn(batch, 1, *config.audio_size), video=frames,
                            targets=torch.zeros(batch, 1), classes=["x"], splits=["train"] * batch,
                            files=[str(i) for i in range(batch)])
        index = torch.arange(batch)
        repeats = max(3, bench.args.repeats)
        # In memory (load_cache -> ClipTensors, what the notebooks train on): ClipTensors.batch runs in the
        # training process before each step, so all of it is waiting.
        gather_s = statistics.median(timed(lambda: clips.batch(index), repeats, bench.args.warmup))
        rows.append({"preset": preset, "source": "in memory (ClipTensors.batch)", "batch": batch, "step_s": step_s,
                     "serial_s": gather_s, "parallel_s": 0.0, "how": "measured"})
        # From the cache (CachedClips in one DataLoader worker beside the trainer): the worker reads the next
        # batch while the trainer steps, so only its excess over a step is waited for; the uint8 -> float
        # conversion of the frames (frames_to_tensor) still runs in the training process.
        convert_s = statistics.median(timed(lambda: frames_to_tensor(frames), repeats, bench.args.warmup))
        cache_presets = [name for name, size in PREPARE_PRESETS.items() if size == PRESETS[preset].model]
        for row in (data or {}).get("rows", []):
            if row["preset"] in cache_presets and row["processes"] == 1:
                rows.append({"preset": preset, "source": f"cache ({row['frames']} frames), 1 worker", "batch": batch,
                             "step_s": step_s, "serial_s": convert_s, "parallel_s": batch / row["cache_read"],
                             "how": f"read rate from data.json ({data['machine']['cpu']}, {data['machine']['cores']} "
                                    f"cores) + measured conversion"})
    for row in rows:
        wait_s = row["serial_s"] + max(0.0, row["parallel_s"] - row["step_s"])
        row["wait_fraction"] = wait_s / (row["step_s"] + wait_s)
    print()
    print_table(["preset", "source", "batch", "step s", "serial load s", "parallel load s", "waiting %", "how"],
                [[r["preset"], r["source"], r["batch"], r["step_s"], r["serial_s"], r["parallel_s"],
                  pct(r["wait_fraction"]), r["how"]] for r in rows])
    if data is None:
        print(f"  {DATA_RESULTS} not found: run benchmarks/bench_data.py for the cache rows")
    print("  waiting = serial + max(0, parallel - step), as a share of step + waiting. The cache rows assume the "
          "worker does not slow the step; on 2 cores it takes a core from a 2-thread step while it reads.")
    return {"rows": rows}


def section_gpu(bench: Bench) -> dict | None:
    heading("h", f"GPU: paper preset, bf16 autocast, batch {GPU_BATCH}")
    if not torch.cuda.is_available():
        print("no GPU on this machine: row left empty")
        return None
    device = "cuda"
    result: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "rows": [],
                              "peak_bf16_gflops": bench.peak(torch.bfloat16, device),
                              "peak_fp32_gflops": bench.peak(torch.float32, device)}
    for run in ("av_inter_intra", "stage2_iter1"):
        case = Case("paper", run, GPU_BATCH, bf16=True, device=device)
        try:
            step = bench.step(case)
        except torch.cuda.OutOfMemoryError as error:
            result["rows"].append({"run": run, "error": f"out of memory: {error}".splitlines()[0]})
            torch.cuda.empty_cache()
            continue
        result["rows"].append({"run": run, "batch": GPU_BATCH, **step, "clips_per_s": GPU_BATCH / step["median_s"],
                               "mfu_vs_bf16_peak": bench.mfu(case)})
    print()
    print_table(["run", "batch", "step s", "clips/s", "MFU % (bf16 peak)", "peak memory GB"],
                [[r["run"], r.get("batch"), r.get("median_s"), r.get("clips_per_s"),
                  mfu_cell(r.get("mfu_vs_bf16_peak")), r.get("peak_memory_gb")] for r in result["rows"]])
    result["mfu_measurement_errors"] = flag_impossible_mfu({r["run"]: r.get("mfu_vs_bf16_peak")
                                                            for r in result["rows"]})
    result["peak_bf16_gflops"] = bench.peak(torch.bfloat16, device)  # the best of the run, beside the steps included
    return result


SECTIONS = {"a": section_peak, "b": section_mfu, "c": section_bf16, "d": section_timm, "e": section_growth,
            "f": section_extras, "g": section_data, "h": section_gpu}


# --------------------------------------------------------------------------------------------- machine
def cpu_flags() -> dict[str, bool]:
    cpuinfo = Path("/proc/cpuinfo")
    flags = set()
    if cpuinfo.exists():
        line = next((l for l in cpuinfo.read_text().splitlines() if l.startswith("flags")), "")
        flags = set(line.split(":", 1)[-1].split())
    return {flag: flag in flags for flag in CPU_FLAGS}


def machine() -> dict:
    description = data_bench_machine()
    description.pop("decord", None)
    description.update(hostname=socket.gethostname(), torch_threads=torch.get_num_threads(),
                       cpu_flags=cpu_flags(), mkldnn_bf16=torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                       gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                       commit=_git("rev-parse", "HEAD"),
                       dirty=bool(_git("status", "--porcelain", "--untracked-files=no")))
    return description


def _git(*command: str) -> str | None:
    try:
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition: a sanity check (< 1 min)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run, e.g. a,b")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 3, quick 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = [key for key in only if key not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {','.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
                               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                               "sections": {}}
    m = results["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
          f"GPU: {m['gpu'] or 'none'}, load average {m['load_average_at_start'][0]:.2f}", flush=True)
    bench = Bench(args)
    for key in only:
        results["sections"][key] = SECTIONS[key](bench)
    results["peak_measurements_gflops"] = bench.peak_measurements()
    results["wall_s"] = time.perf_counter() - started
    results["load_average_at_end"] = os.getloadavg()

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    name = f"run_all-{'quick-' if args.quick else ''}{stamp}-{socket.gethostname()}.json"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=str)
    (args.out_dir / name).write_text(text)
    written = [args.out_dir / name]
    if not args.quick:
        (args.out_dir / "latest.json").write_text(text)
        written.append(args.out_dir / "latest.json")
    print(f"\n{results['wall_s']:.0f} s; written to {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
