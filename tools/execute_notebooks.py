"""Execute the committed notebooks in place, so that a reader sees their figures without running anything.

`make notebooks` runs this: the six teaching notebooks, then the reproduction notebooks, each through papermill at
the `cpu` preset, written back over the committed file. Each notebook records, under ``metadata["mavil_lite"]``,
the commit whose code produced it, the preset and its wall time; `tests/test_committed_notebooks.py` checks them.

The run folders are keyed by commit (``outputs/executed/<commit>/``): a second run at the same code reuses the
checkpoints of the first (the notebooks resume), a run at new code starts afresh, so outputs never mix commits.
Widget state and widget views are dropped from the saved files: they only render in a live kernel, and their
plain-text fallback stays. Each teaching notebook's figure tagged ``thumbnail`` (else its first figure) is saved,
shrunk, as ``assets/notebooks/<notebook>.png`` for the README's reading list.

    python tools/execute_notebooks.py                 # all twelve, in reading order
    python tools/execute_notebooks.py 03 table_ablation  # those whose names contain these strings
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import base64
import io

import nbformat
import papermill
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TEACHING = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# pre-training once, then every table reuses its checkpoints (pretrained_dir); the scaling study trains its own
REPRODUCTION = ["pretrain", "table_ablation", "table_av_classification", "table_audio_only", "table_retrieval",
                "scaling"]
TABLES_REUSING_PRETRAINING = {"table_ablation", "table_av_classification", "table_audio_only", "table_retrieval"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
THUMBNAILS = REPO / "assets" / "notebooks"
THUMBNAIL_WIDTH = 480  # px: legible in the README's table, a few tens of kB each


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def code_is_committed() -> bool:
    """Whether the working tree matches HEAD, apart from the notebooks this script rewrites."""
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!notebooks/*.ipynb",
                  ":!reproduce/*.ipynb")
    return not changed


def jobs(preset: str, runs: Path) -> list[tuple[Path, dict]]:
    """(notebook, papermill parameters) in execution order. Paths are relative to the repository root."""
    planned = [(path, {"preset": preset, "out_dir": str(runs / "notebooks" / path.stem)}) for path in TEACHING]
    pretrained = runs / "reproduce" / "pretrain"
    for name in REPRODUCTION:
        parameters = {"preset": preset, "out_dir": str(runs / "reproduce" / name)}
        if name in TABLES_REUSING_PRETRAINING:
            parameters["pretrained_dir"] = str(pretrained)
        planned.append((REPO / "reproduce" / f"{name}.ipynb", parameters))
    return planned


def tidy(path: Path, commit: str, preset: str, wall_s: float) -> int:
    """Record the provenance, drop widget state and widget views; returns the file's size in bytes."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    nb.metadata["mavil_lite"] = {"commit": commit, "preset": preset, "wall_s": round(wall_s, 1)}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    nbformat.write(nb, path)
    return path.stat().st_size


def save_thumbnail(path: Path) -> Path | None:
    """The notebook's ``thumbnail``-tagged figure (else its first figure), shrunk, under `THUMBNAILS`."""
    nb = nbformat.read(path, as_version=4)
    figures = [c for c in nb.cells if c.cell_type == "code" and "figure" in c.metadata.get("tags", [])]
    chosen = [c for c in figures if "thumbnail" in c.metadata.get("tags", [])] or figures
    for cell in chosen:
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if pngs:
            image = Image.open(io.BytesIO(base64.b64decode(pngs[0])))
            image.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 4))  # keeps the aspect ratio
            image = image.convert("RGB").quantize(colors=256)  # a palette PNG: a third of the size, same look
            THUMBNAILS.mkdir(parents=True, exist_ok=True)
            target = THUMBNAILS / f"{path.stem}.png"
            image.save(target, optimize=True)
            return target
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only the notebooks whose file names contain one of these")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--allow-uncommitted", action="store_true",
                        help="run although code differs from HEAD (the notebooks then record HEAD wrongly)")
    parser.add_argument("--thumbnails-only", action="store_true",
                        help="execute nothing: redraw the README's thumbnails from the committed notebooks")
    args = parser.parse_args(argv)
    if args.thumbnails_only:
        for path in TEACHING:
            print(save_thumbnail(path))
        return 0
    if not code_is_committed() and not args.allow_uncommitted:
        print("The working tree has uncommitted changes outside the notebooks: commit them first, so that the "
              "recorded commit is the code that produced the outputs.", file=sys.stderr)
        return 2
    commit = git("rev-parse", "HEAD")
    runs = Path("outputs") / "executed" / commit[:12]
    selected = [(path, parameters) for path, parameters in jobs(args.preset, runs)
                if not args.only or any(name in path.name for name in args.only)]
    total_start, total_bytes = time.perf_counter(), 0
    for path, parameters in selected:
        print(f"{path.relative_to(REPO)} ...", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(str(path), str(path), parameters=parameters, cwd=str(REPO), progress_bar=False,
                                   request_save_on_cell_execute=False)
        wall_s = time.perf_counter() - start
        size = tidy(path, commit, args.preset, wall_s)
        if path.parent.name == "notebooks":
            save_thumbnail(path)
        total_bytes += size
        print(f"  {wall_s / 60:.1f} min, {size / 1e6:.2f} MB", flush=True)
    print(f"{len(selected)} notebooks in {(time.perf_counter() - total_start) / 60:.1f} min, "
          f"{total_bytes / 1e6:.1f} MB, at commit {commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
