"""Manifests from the published layouts of public datasets, and `name:DIR` dataset specs.

Each importer reads a dataset as it unpacks from its publisher, without decoding any clip, and writes a manifest
this kit reads (`file` relative to the manifest, space-separated labels, a `split` column where the dataset has an
official split). Files a published list names but the folder lacks go to `<manifest>_missing.csv` (as in
`importers`), so a partial download still gives a usable manifest.

- GRID (grid): videos `s1/bbaf2n.mpg` (or `.mp4`) and alignments `alignments/s1/bbaf2n.align`, anywhere under
  the folder; stems repeat across speakers, so they are matched on (speaker, stem), the speaker being the nearest
  `s<N>` folder. An alignment line is `start end word` in 1/25000 s (1000 units per 25 fps frame); `sil` and `sp`
  are silence and the other six words are the sentence's slots. GRID has no official split: the kit assigns one.
- FSDD (fsdd): `recordings/{digit}_{speaker}_{take}.wav`; takes 0-4 are the test set, the dataset's convention.
- ESC-50 (esc50): `meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take) and `audio/`. The
  paper scores 5-fold cross-validation: `test_fold` picks the test fold, and `fold` is kept for the other four.
- Speech Commands v1 (spc1): `<word>/<speaker>_nohash_<n>.wav` with `validation_list.txt` and
  `testing_list.txt`. Labels follow the 12-class SPC-1 task: the ten keywords, and `unknown` for the other 20
  words. Its twelfth class, `silence`, is cut from `_background_noise_` by each paper's own script, so it is not
  generated here (and that folder is skipped).
- MSR-VTT (msrvtt): videos anywhere under the folder. With `MSRVTT_JSFUSION_test.csv` (the 1k-A test set of
  retrieval papers) somewhere inside, its videos are `test` and the rest `train`; without it all are `test`
  (a folder of only the test videos, which is all zero-shot retrieval needs).
- YouCook2 (youcook): `raw_videos/{training,validation}/<recipe_type>/<video_id>.<ext>`; retrieval papers
  evaluate on `validation` (the test set's captions are not public), so it becomes `test`.
- AudioSet (audioset) and VGGSound (vggsound): the published segment lists and the clips in one folder, through
  `importers.import_audioset` / `importers.import_vggsound`.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .importers import MEDIA_EXTENSIONS, ImportResult, _write, import_audioset, import_vggsound

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".mov"} & MEDIA_EXTENSIONS
GRID_VIDEO_EXTENSIONS = {".mpg", ".mpeg", ".mp4"}
GRID_UNITS_PER_SECOND = 25000  # 1000 units per frame at 25 fps
GRID_SILENCE = {"sil", "sp"}
GRID_SLOTS = ("command", "color", "preposition", "letter", "digit", "adverb")
SPEECH_COMMANDS_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def _files_under(root: Path, suffixes: set[str]) -> list[Path]:
    """Every file under root with one of the suffixes, in sorted order so manifests do not depend on the disk."""
    # followlinks: large datasets are often a folder of links to the disks the speakers or parts sit on
    found = [Path(folder) / name for folder, _, names in os.walk(root, followlinks=True) for name in names
             if Path(name).suffix.lower() in suffixes]
    return sorted(found)


def _folder(root: str | Path) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    return root


def grid_speaker(path: Path, root: Path) -> str:
    """The nearest `s<N>` folder above a GRID file (inside root, or root itself), else ''."""
    for part in reversed((root.name, *path.relative_to(root).parts[:-1])):
        if re.fullmatch(r"s\d+", part):
            return part
    return ""


def read_grid_alignment(path: str | Path) -> tuple[list[str], float, float]:
    """An .align file -> (the six words, speech start s, speech end s)."""
    spoken = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{path}: line {number} is not 'start end word': {line!r}")
        if fields[2] not in GRID_SILENCE:
            spoken.append((int(fields[0]), int(fields[1]), fields[2]))
    if len(spoken) != len(GRID_SLOTS):
        raise ValueError(f"{path}: expected {len(GRID_SLOTS)} spoken words, got {[word for *_, word in spoken]}")
    return [word for *_, word in spoken], spoken[0][0] / GRID_UNITS_PER_SECOND, spoken[-1][1] / GRID_UNITS_PER_SECOND


def import_grid(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """The GRID corpus as published (.mpg videos + .align files) -> a manifest of transcripts and word slots."""
    root = _folder(root)
    videos = _files_under(root, GRID_VIDEO_EXTENSIONS)
    alignments = _files_under(root, {".align"})
    if not videos:
        raise FileNotFoundError(f"{root}: no GRID videos (*.mpg or *.mp4, e.g. s1/bbaf2n.mpg) under it")
    if not alignments:
        raise FileNotFoundError(f"{root}: no GRID alignments (*.align, e.g. alignments/s1/bbaf2n.align) under it; "
                                "they are published apart from the videos")
    by_key: dict[tuple[str, str], Path] = {}
    by_stem: dict[str, list[tuple[str, Path]]] = {}
    for path in alignments:
        speaker = grid_speaker(path, root)
        by_key.setdefault((speaker, path.stem), path)
        by_stem.setdefault(path.stem, []).append((speaker, path))
    rows, missing = [], []
    for video in videos:
        speaker = grid_speaker(video, root)
        alignment = by_key.get((speaker, video.stem))
        candidates = by_stem.get(video.stem, [])
        # a side without a speaker folder still matches when the stem is unambiguous; a stem of another speaker
        # never does (every speaker reads a sentence with the same stem)
        if alignment is None and len(candidates) == 1 and "" in (speaker, candidates[0][0]):
            alignment = candidates[0][1]
        if alignment is None:
            missing.append({"file": str(video), "speaker": speaker, "reason": "no .align file"})
            continue
        words, start_s, end_s = read_grid_alignment(alignment)
        rows.append({"file": str(video), "transcript": " ".join(words), **dict(zip(GRID_SLOTS, words)),
                     "speech_start_s": f"{start_s:.3f}", "speech_end_s": f"{end_s:.3f}", "speaker": speaker})
    return _write(rows, missing, Path(out_manifest))


def import_fsdd(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """The Free Spoken Digit Dataset (`recordings/{digit}_{speaker}_{take}.wav`) -> a manifest with its split."""
    root = _folder(root)
    recordings = root / "recordings"
    if not recordings.is_dir():
        raise FileNotFoundError(f"{root}: no recordings/ folder (FSDD's {{digit}}_{{speaker}}_{{take}}.wav files)")
    rows = []
    for path in sorted(recordings.glob("*.wav")):
        match = re.fullmatch(r"(\d)_([^_]+)_(\d+)", path.stem)
        if match is None:
            continue  # not a recording of the dataset
        digit, speaker, take = match.groups()
        with wave.open(str(path)) as reader:
            sample_rate, frames = reader.getframerate(), reader.getnframes()
        rows.append({"file": str(path), "digit": digit, "speaker": speaker, "take": int(take),
                     "split": "test" if int(take) <= 4 else "train", "sample_rate": sample_rate,
                     "duration_s": f"{frames / sample_rate:.3f}"})
    if not rows:
        raise FileNotFoundError(f"{recordings}: no {{digit}}_{{speaker}}_{{take}}.wav recordings")
    return _write(rows, [], Path(out_manifest))


def import_esc50(root: str | Path, out_manifest: str | Path, test_fold: int = 1) -> ImportResult:
    """ESC-50 (`meta/esc50.csv` + `audio/`) -> a manifest whose test split is fold `test_fold`."""
    root = _folder(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{root}: no meta/esc50.csv (ESC-50's list of clips)")
    with open(meta, newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"filename", "fold", "target", "category", "esc10"}
        if not needed <= set(reader.fieldnames or []):
            raise ValueError(f"{meta}: expected columns {sorted(needed)}; got {reader.fieldnames}")
        clips = list(reader)
    folds = sorted({int(clip["fold"]) for clip in clips})
    if test_fold not in folds:
        raise ValueError(f"test_fold {test_fold} is not one of the folds {folds} of {meta}")
    rows, missing = [], []
    for clip in clips:
        path = root / "audio" / clip["filename"]
        if not path.is_file():
            missing.append({"file": str(path), "fold": clip["fold"]})
            continue
        rows.append({"file": str(path), "labels": clip["category"], "target": clip["target"], "fold": clip["fold"],
                     "esc10": clip["esc10"], "split": "test" if int(clip["fold"]) == test_fold else "train"})
    return _write(rows, missing, Path(out_manifest))


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def import_speech_commands(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """Speech Commands v1 (`<word>/<speaker>_nohash_<n>.wav` + the two split lists) -> an SPC-1 manifest."""
    root = _folder(root)
    split_of: dict[str, str] = {}
    for list_name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        if not (root / list_name).is_file():
            raise FileNotFoundError(f"{root}: no {list_name} (Speech Commands' official split)")
        split_of.update((entry, split) for entry in _read_list(root / list_name))
    rows, seen = [], set()
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        if folder.name.startswith(("_", ".")):  # _background_noise_: long recordings, not keyword clips
            continue
        for path in sorted(folder.glob("*.wav")):
            entry = f"{folder.name}/{path.name}"  # the lists' spelling, on every platform
            seen.add(entry)
            word = folder.name
            rows.append({"file": str(path), "labels": word if word in SPEECH_COMMANDS_KEYWORDS else "unknown",
                         "word": word, "speaker": path.name.split("_nohash_")[0],
                         "split": split_of.get(entry, "train")})
    if not rows:
        raise FileNotFoundError(f"{root}: no <word>/*.wav clips")
    missing = [{"file": entry, "split": split} for entry, split in split_of.items() if entry not in seen]
    return _write(rows, missing, Path(out_manifest))


def import_msrvtt(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """MSR-VTT videos -> a manifest, split by the 1k-A test list (`MSRVTT_JSFUSION_test.csv`) when it is there."""
    root = _folder(root)
    videos: dict[str, Path] = {}
    for path in _files_under(root, VIDEO_EXTENSIONS):
        videos.setdefault(path.stem, path)  # one file per video, even when it was downloaded in two formats
    if not videos:
        raise FileNotFoundError(f"{root}: no MSR-VTT videos (e.g. video0.mp4) under it")
    test_lists = sorted(root.rglob("MSRVTT_JSFUSION_test.csv"))
    test_ids = None
    if test_lists:
        with open(test_lists[0], newline="") as handle:
            reader = csv.DictReader(handle)
            if "video_id" not in (reader.fieldnames or []):
                raise ValueError(f"{test_lists[0]}: no video_id column; got {reader.fieldnames}")
            test_ids = dict.fromkeys(row["video_id"] for row in reader)  # ordered set: some copies repeat a video
    rows = [{"file": str(path), "video_id": video_id,
             "split": "test" if test_ids is None or video_id in test_ids else "train"}
            for video_id, path in videos.items()]
    missing = [{"video_id": video_id, "split": "test"} for video_id in test_ids or [] if video_id not in videos]
    return _write(rows, missing, Path(out_manifest))


def import_youcook(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """YouCook2's raw videos (`raw_videos/{training,validation}/<recipe_type>/<id>.<ext>`) -> a manifest."""
    root = _folder(root)
    raw = root / "raw_videos"
    if not raw.is_dir():
        raise FileNotFoundError(f"{root}: no raw_videos/ folder (YouCook2's training/ and validation/ videos)")
    rows = []
    for subset, split in (("training", "train"), ("validation", "test")):  # testing/ has no public captions
        for path in _files_under(raw / subset, VIDEO_EXTENSIONS):
            rows.append({"file": str(path), "video_id": path.stem, "split": split})
    if not rows:
        raise FileNotFoundError(f"{raw}: no videos in training/<recipe_type>/ or validation/<recipe_type>/")
    return _write(rows, [], Path(out_manifest))


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def import_audioset_folder(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """AudioSet's balanced (-> train) and eval (-> test) segment lists and their clips, all in root -> a manifest."""
    root = _folder(root)
    classes = root / "class_labels_indices.csv"
    lists = {"train": root / "balanced_train_segments.csv", "test": root / "eval_segments.csv"}
    for path in (classes, *lists.values()):
        if not path.is_file():
            raise FileNotFoundError(f"{root}: no {path.name} (AudioSet's published lists)")
    rows, missing = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch).resolve()
        for split, segments in lists.items():
            part = scratch / f"{split}.csv"
            try:
                result = import_audioset(segments, classes, root, part)
            except ValueError as error:
                if not str(error).startswith("no segment has a local file"):
                    raise
                # only the other list's clips were downloaded: this list is all missing, the manifest still useful
                missing += [{"ytid": fields[0], "start_s": float(fields[1]), "end_s": float(fields[2]),
                             "split": split} for fields in _segments(segments)]
                continue
            # back to absolute paths: _write makes them relative to the merged manifest
            rows += [{**row, "file": os.path.normpath(scratch / row["file"]), "split": split}
                     for row in _read_rows(part)]
            if result.missing_list is not None:
                missing += [{**row, "split": split} for row in _read_rows(result.missing_list)]
    return _write(rows, missing, Path(out_manifest))


def _segments(segments_csv: Path) -> list[list[str]]:
    """The fields of an AudioSet segment CSV's lines, `#` comments left out."""
    with open(segments_csv, newline="") as handle:
        lines = (line for line in handle if line.strip() and not line.startswith("#"))
        return list(csv.reader(lines, skipinitialspace=True))


def import_vggsound_folder(root: str | Path, out_manifest: str | Path) -> ImportResult:
    """`vggsound.csv` and the clips, in one folder -> a manifest (VGGSound's own split)."""
    root = _folder(root)
    if not (root / "vggsound.csv").is_file():
        raise FileNotFoundError(f"{root}: no vggsound.csv (VGGSound's published list)")
    return import_vggsound(root / "vggsound.csv", root, out_manifest)


@dataclass(frozen=True)
class PublicDataset:
    importer: Callable[[Path, Path], ImportResult]
    published_at: str  # where and under which licence
    layout: str  # what DIR must hold, in one line


PUBLIC_DATASETS: dict[str, PublicDataset] = {
    "grid": PublicDataset(import_grid, "https://spandh.dcs.shef.ac.uk/gridcorpus/ (CC BY 4.0)",
                          "s<N>/<id>.mpg videos and <id>.align alignments anywhere under DIR"),
    "fsdd": PublicDataset(import_fsdd, "https://github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0)",
                          "recordings/{digit}_{speaker}_{take}.wav"),
    "esc50": PublicDataset(import_esc50, "https://github.com/karolpiczak/ESC-50 (CC BY-NC 3.0)",
                           "meta/esc50.csv and audio/*.wav; test split = fold 1"),
    "spc1": PublicDataset(  # Speech Commands v1
        import_speech_commands, "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz (CC BY 4.0)",
        "<word>/<speaker>_nohash_<n>.wav with validation_list.txt and testing_list.txt"),
    "msrvtt": PublicDataset(import_msrvtt, "https://www.microsoft.com/en-us/research/publication/msr-vtt-a-large-"
                            "video-description-dataset-for-bridging-video-and-language/ (research use: see its terms)",
                            "video*.mp4 anywhere under DIR, optionally MSRVTT_JSFUSION_test.csv"),
    "youcook": PublicDataset(import_youcook,
                             "http://youcook2.eecs.umich.edu/ (YouTube videos; research use: see its terms)",
                             "raw_videos/{training,validation}/<recipe_type>/<video_id>.<ext>"),
    "audioset": PublicDataset(import_audioset_folder, "https://research.google.com/audioset/ (CC BY 4.0)",
                              "balanced_train_segments.csv, eval_segments.csv, class_labels_indices.csv, clips"),
    "vggsound": PublicDataset(import_vggsound_folder, "https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (CC BY 4.0)",
                              "vggsound.csv and the clips anywhere under DIR"),
}


def is_dataset_spec(text: str) -> bool:
    """Whether text is `name:DIR` with a known name (a path, even `C:\\data`, is not)."""
    name, separator, _ = str(text).partition(":")
    return bool(separator) and name in PUBLIC_DATASETS


def manifest_cache_dir() -> Path:
    """Where imported manifests go: $MAVIL_LITE_CACHE/manifests, else ~/.cache/mavil-lite/manifests."""
    base = os.environ.get("MAVIL_LITE_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "mavil-lite") / "manifests"


def resolve_dataset(spec: str, out_dir: str | Path | None = None) -> Path:
    """The manifest of a `name:DIR` spec: DIR/manifest.csv when DIR has one, else one imported from DIR's
    published layout into out_dir (once: a later call reuses it)."""
    name, separator, folder = spec.partition(":")
    if not separator or name not in PUBLIC_DATASETS:
        raise ValueError(f"{spec!r}: not a dataset spec name:DIR with a known name; the names are "
                         f"{sorted(PUBLIC_DATASETS)}")
    if not folder:
        raise ValueError(f"{spec!r}: no folder after '{name}:'")
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (from {spec!r}); it should hold {name}'s "
                                f"{PUBLIC_DATASETS[name].layout}")
    if (root / "manifest.csv").is_file():
        return root / "manifest.csv"  # already in the kit's layout (a transcoded copy, say): used as it is
    out_dir = Path(out_dir).expanduser() if out_dir is not None else manifest_cache_dir()
    manifest = out_dir / f"{name}-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}.csv"
    if manifest.is_file():
        return manifest
    # written under another name and renamed at the end, so an interrupted import is never reused as complete
    partial = manifest.with_name(manifest.stem + ".partial.csv")
    result = PUBLIC_DATASETS[name].importer(root, partial)
    if result.missing_list is not None:
        os.replace(result.missing_list, manifest.with_name(manifest.stem + "_missing.csv"))
    os.replace(partial, manifest)
    print(f"{spec}: {result.found} clips -> {manifest}"
          + (f"; {result.missing} missing, listed in {manifest.stem}_missing.csv" if result.missing else ""))
    return manifest
