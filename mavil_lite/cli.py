"""The `mavil-lite` command: one subcommand per task, each a thin shell over one library function.

    mavil-lite prepare MANIFEST OUT_DIR --preset {tiny,paper}   decode every clip once into a feature cache
    mavil-lite stats SOURCE [--write]                           fbank mean/std of a cache or a manifest
    mavil-lite import-audioset SEGMENTS CLASS_LABELS MEDIA OUT  manifest from AudioSet's segment CSV
    mavil-lite import-vggsound CSV MEDIA OUT                    manifest from VGGSound's CSV
    mavil-lite recipes                                          the packaged recipes, one line each
    mavil-lite pretrain --recipe R --out DIR [--teacher CKPT]   stage 1, or stage 2 from a teacher
    mavil-lite finetune --recipe R --init CKPT --out DIR        fine-tune an A, V or A+V head (--modality)
    mavil-lite linprobe --recipe R --init CKPT --out DIR        linear probe on frozen features
    mavil-lite evaluate --recipe R --ckpt CKPT --task T         classification or retrieval scores

Adding a command: write `add_<name>_parser(subparsers)`, which declares the arguments and sets `run` to a function
of the parsed arguments returning the exit status, and append it to `COMMANDS`. The logic lives in the library, so
everything a command does can also be called from Python (and is tested there).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .data.audio_stats import dataset_statistics, write_statistics
from .data.cache import PREPARE_PRESETS, prepare_cache
from .data.containers import BadClipError
from .data.importers import import_audioset, import_vggsound
from .distributed import init_distributed
from .train.recipes import load_recipe, recipe_names, recipe_summary
from .train.runners import load_classifier, load_clips, run_finetune, run_pretrain, run_retrieval, score_classifier

MODALITY_CHOICES = {"auto": None, "both": ("audio", "video"), "audio": ("audio",), "video": ("video",)}
DEFAULT_WORKERS = os.cpu_count() or 1


def run_prepare(args: argparse.Namespace) -> int:
    result = prepare_cache(args.manifest, args.out_dir, preset=args.preset, label_column=args.label_column,
                           num_workers=args.workers, strict=args.strict, modalities=MODALITY_CHOICES[args.modalities],
                           frame_format=args.frames, start_s=args.start, shard_size=args.shard_size,
                           progress=not args.no_progress)
    print(f"{result.out_dir}: {', '.join(result.modalities)}; {result.bytes_per_clip / 1e3:.1f} kB per clip; "
          f"{result.seconds:.1f} s; every clip's status in {result.out_dir / 'report.csv'}")
    print(result.summary)
    return 0 if result.usable else 1  # non-zero only when nothing is usable


def add_prepare_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="decode every clip of a manifest once into a feature cache",
        description="Decode every clip once, in parallel, into OUT_DIR (shards, clips.csv, meta.json, report.csv). "
                    "Bad clips are recorded in OUT_DIR/report.csv and skipped; the exit status is non-zero only "
                    "when no clip is usable.")
    parser.add_argument("manifest", help="CSV with a 'file' column (relative to the CSV, or absolute)")
    parser.add_argument("out_dir")
    parser.add_argument("--preset", choices=list(PREPARE_PRESETS), default="tiny",
                        help="tiny: 384x64 fbank, 4 frames at 64 px; paper: 1024x128 fbank, 8 frames at 224 px")
    parser.add_argument("--label-column", default="labels",
                        help="column of space-separated labels (default: labels; may be absent for pre-training)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"decoding processes, 0 = in this process (default: {DEFAULT_WORKERS})")
    parser.add_argument("--frames", choices=["raw", "jpeg"], default=None,
                        help="how frames are stored (default: raw for tiny, jpeg for paper)")
    parser.add_argument("--modalities", choices=list(MODALITY_CHOICES), default="auto",
                        help="auto: those found in at least one clip")
    parser.add_argument("--start", type=float, default=0.0, help="start of the stored video window, seconds")
    parser.add_argument("--shard-size", type=int, default=256, help="clips per shard file")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad clip, naming it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_prepare)


def run_stats(args: argparse.Namespace) -> int:
    statistics = dataset_statistics(args.source, preset=args.preset, num_workers=args.workers,
                                  progress=not args.no_progress)
    if args.write:
        print(f"normalisation statistics written to {write_statistics(args.source, statistics)}")
    print(json.dumps(statistics))
    return 0


def add_stats_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats", help="fbank mean and std of a dataset (for (x - mean) / (2 * std))",
        description="Mean and std of the log-mel fbank over all clips (padding excluded), from a feature cache "
                    "directory or a manifest CSV. Prints JSON.")
    parser.add_argument("source", help="a cache directory (from prepare) or a manifest CSV")
    parser.add_argument("--preset", choices=list(PREPARE_PRESETS), default="paper",
                        help="features for a manifest (a cache has its own)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--write", action="store_true", help="store them in the cache's meta.json")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run_stats)


def _print_import(result) -> int:
    print(f"{result.manifest}: {result.found} clips found"
          + (f", {result.missing} missing (listed in {result.missing_list})" if result.missing else ""))
    return 0


def add_import_audioset_parser(subparsers) -> None:
    parser = subparsers.add_parser("import-audioset", help="manifest from an AudioSet segment CSV",
                                   description="Find each segment of an AudioSet CSV in MEDIA_DIR by its YouTube id "
                                               "and write a manifest (labels: class ids).")
    parser.add_argument("segments_csv", help="e.g. balanced_train_segments.csv")
    parser.add_argument("class_labels_csv", help="class_labels_indices.csv")
    parser.add_argument("media_dir", help="folder of downloaded clips (searched recursively)")
    parser.add_argument("out_manifest")
    parser.set_defaults(run=lambda args: _print_import(import_audioset(
        args.segments_csv, args.class_labels_csv, args.media_dir, args.out_manifest)))


def add_import_vggsound_parser(subparsers) -> None:
    parser = subparsers.add_parser("import-vggsound", help="manifest from the VGGSound CSV",
                                   description="Find each clip of vggsound.csv in MEDIA_DIR by its YouTube id and "
                                               "write a manifest (single label, split kept).")
    parser.add_argument("vggsound_csv")
    parser.add_argument("media_dir", help="folder of downloaded clips (searched recursively)")
    parser.add_argument("out_manifest")
    parser.set_defaults(run=lambda args: _print_import(import_vggsound(args.vggsound_csv, args.media_dir,
                                                                       args.out_manifest)))


def print_recipes(args: argparse.Namespace) -> int:
    width = max(map(len, recipe_names()))
    for name in recipe_names():
        print(f"{name:<{width}}  {recipe_summary(name)}")
    return 0


def add_recipes_parser(subparsers) -> None:
    parser = subparsers.add_parser("recipes", help="list the packaged recipes",
                                   description="The recipes that ship with the kit, by name: pass one to --recipe.")
    parser.set_defaults(run=print_recipes)


def _recipe(args: argparse.Namespace):
    return load_recipe(args.recipe, args.overrides)


def _add_recipe_arguments(parser, with_out: bool = True) -> None:
    parser.add_argument("--recipe", required=True, help="a YAML file, or the name of a packaged recipe (mavil-lite recipes)")
    if with_out:
        parser.add_argument("--out", required=True, help="run directory: checkpoint.pt, log.jsonl, metrics.json")
    parser.add_argument("--device", default="auto", help="auto (this process's GPU, else CPU), cpu or cuda")
    parser.add_argument("--workers", type=int, default=0,
                        help="decoding processes; with data.stream=true, DataLoader workers (0 = in this process)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides such as train.epochs=2 model.mask_ratio=0.75")


def run_pretrain_command(args: argparse.Namespace) -> int:
    init = {m: path for m, path in (("audio", args.init_audio), ("video", args.init_video)) if path}
    checkpoint = run_pretrain(_recipe(args), args.out, teacher=args.teacher, device=args.device,
                              num_workers=args.workers, init=init)
    print(f"checkpoint: {checkpoint}")
    return 0


def add_pretrain_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="stage-1 pre-training, or stage 2 with --teacher",
        description="Pre-train MAViL from a recipe; with --teacher CKPT, a stage-2 student regresses that frozen "
                    "teacher's fused tokens (chain iterations by passing the previous student). Resumes from "
                    "OUT/checkpoint.pt when present. Launch with torchrun for several processes.")
    _add_recipe_arguments(parser)
    parser.add_argument("--teacher", help="stage 2: the teacher's checkpoint")
    parser.add_argument("--init-audio", help="a MAE / timm / AudioMAE ViT checkpoint for the audio encoder")
    parser.add_argument("--init-video", help="a MAE / timm ViT checkpoint for the video encoder (IN-SSL)")
    parser.set_defaults(run=run_pretrain_command)


def run_finetune_command(args: argparse.Namespace, linear_probe: bool = False) -> int:
    metrics = run_finetune(_recipe(args), args.init, args.out, modality=args.modality, linear_probe=linear_probe,
                           device=args.device, num_workers=args.workers)
    print(json.dumps(metrics))
    return 0


def add_finetune_parser(subparsers) -> None:
    for name, probe in [("finetune", False), ("linprobe", True)]:
        parser = subparsers.add_parser(
            name, help="linear probe on frozen features" if probe else "fine-tune with an A, V or A+V head",
            description="Train a classification head (and, for finetune, the backbone with layer-wise lr decay) "
                        "on the recipe's train split, then score its test split (mAP or accuracy).")
        _add_recipe_arguments(parser)
        parser.add_argument("--init", required=True, help="a kit checkpoint or a public MAViL state dict")
        parser.add_argument("--modality", choices=["audio", "video", "av"], help="overrides finetune.modality")
        parser.set_defaults(run=lambda args, probe=probe: run_finetune_command(args, probe))


def run_evaluate_command(args: argparse.Namespace) -> int:
    device = init_distributed(args.device).device  # "auto" as for training: this process's GPU, else the CPU
    if args.task == "retrieval":
        print(json.dumps(run_retrieval(_recipe(args), args.ckpt, device=device, num_workers=args.workers)))
    else:
        clips = load_clips(_recipe(args), args.workers).subset("test")
        print(json.dumps(score_classifier(load_classifier(args.ckpt), clips, device)))
    return 0


def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a checkpoint: classification (fine-tuned) or audio-video retrieval (pre-trained)",
        description="classification: mAP or accuracy of a fine-tuned checkpoint on the recipe's test split; "
                    "retrieval: R@1/5/10 and median rank, audio to video and video to audio, between test clips.")
    _add_recipe_arguments(parser, with_out=False)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--task", choices=["classification", "retrieval"], required=True)
    parser.set_defaults(run=run_evaluate_command)


COMMANDS = [add_prepare_parser, add_stats_parser, add_import_audioset_parser, add_import_vggsound_parser,
            add_recipes_parser, add_pretrain_parser, add_finetune_parser, add_evaluate_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mavil-lite", description="MAViL (Masked Audio-Video Learners), lite.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (bad input named in one line, not a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (BadClipError, FileNotFoundError, ValueError) as error:
        print(f"mavil-lite {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
