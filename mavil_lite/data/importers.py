"""Manifests from the published dataset lists: AudioSet's segment CSVs and VGGSound's CSV.

Both datasets are published as lists of YouTube segments (a video id and a start time), not as files; everyone
downloads the clips themselves and names them in one of a few ways. An importer reads the published list, finds
each segment's local file by its id, and writes a manifest this kit reads (`file` relative to the manifest,
`labels` space-separated). Segments with no local file are listed in `<manifest>_missing.csv` rather than
written, so a partial download still gives a usable manifest.

- AudioSet: `balanced_train_segments.csv` etc. ("YTID, start_seconds, end_seconds, positive_labels", `#` comments),
  with `class_labels_indices.csv` (index, mid, display_name). Labels are the class ids (`/m/09x0r`): display names
  contain spaces and commas, which a space-separated label column cannot hold; `label_names` keeps them for people.
- VGGSound: `vggsound.csv` (no header: YTID, start second, label, train/test). The label becomes one token
  (`people marching` -> `people_marching`), and the split column is kept.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

MEDIA_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".mov", ".m4a", ".wav", ".flac", ".mp3",
                    ".ogg", ".opus"}
YOUTUBE_ID_LENGTH = 11


@dataclass
class ImportResult:
    manifest: Path
    found: int
    missing: int
    missing_list: Path | None  # the CSV of segments without a local file, if any


def index_media(media_dir: str | Path) -> dict[str, list[Path]]:
    """Every media file under media_dir, by the YouTube id its name starts with (with or without a 'Y' prefix)."""
    media_dir = Path(media_dir)
    if not media_dir.is_dir():
        raise FileNotFoundError(f"{media_dir}: no such media folder")
    by_id: dict[str, list[Path]] = {}
    for folder, _, names in os.walk(media_dir):
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() not in MEDIA_EXTENSIONS:
                continue
            stem = path.stem
            prefixes = {stem[:YOUTUBE_ID_LENGTH]}
            if stem.startswith("Y") and len(stem) > YOUTUBE_ID_LENGTH:
                prefixes.add(stem[1:1 + YOUTUBE_ID_LENGTH])  # the 'Y' + id naming of AudioSet downloaders
            for prefix in prefixes:
                by_id.setdefault(prefix, []).append(path)
    return by_id


def candidate_stems(ytid: str, start_s: float, end_s: float) -> list[str]:
    """The file names (without extension) that common download tools give a segment, most specific first."""
    start, end = int(round(start_s)), int(round(end_s))
    stems = [f"{ytid}_{start_s:.3f}_{end_s:.3f}", f"{ytid}_{start_s:.1f}_{end_s:.1f}", f"{ytid}_{start}_{end}",
             f"{ytid}_{start:06d}", f"{ytid}_{start * 1000}", f"{ytid}_{start}", ytid]
    return stems + [f"Y{stem}" for stem in stems]


def resolve_segment(ytid: str, start_s: float, end_s: float, media: dict[str, list[Path]]) -> Path | None:
    """The local file of a segment: a known naming, else the only file whose name starts with the id."""
    files = media.get(ytid, [])
    by_stem = {path.stem: path for path in files}
    for stem in candidate_stems(ytid, start_s, end_s):
        if stem in by_stem:
            return by_stem[stem]
    return files[0] if len(files) == 1 else None


def label_token(name: str) -> str:
    """A class name as one space-free token: 'Male speech, man speaking' -> 'Male_speech_man_speaking'."""
    return re.sub(r"\W+", "_", name.strip()).strip("_")


def _write(rows: list[dict], missing: list[dict], out_manifest: Path) -> ImportResult:
    out_manifest.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError(f"no segment has a local file: {len(missing)} looked for; nothing written to {out_manifest}")
    for row in rows:  # relative to the manifest's folder, as manifests are read
        row["file"] = os.path.relpath(row["file"], out_manifest.parent.resolve())
    with open(out_manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    missing_list = None
    if missing:
        missing_list = out_manifest.with_name(out_manifest.stem + "_missing.csv")
        with open(missing_list, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(missing[0]))
            writer.writeheader()
            writer.writerows(missing)
    return ImportResult(out_manifest, len(rows), len(missing), missing_list)


def read_audioset_classes(class_labels_csv: str | Path) -> dict[str, str]:
    """class_labels_indices.csv -> {mid: display_name}, in the published order."""
    with open(class_labels_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"mid", "display_name"} <= set(reader.fieldnames or []):
            raise ValueError(f"{class_labels_csv}: expected columns index,mid,display_name; got {reader.fieldnames}")
        return {row["mid"]: row["display_name"] for row in reader}


def import_audioset(segments_csv: str | Path, class_labels_csv: str | Path, media_dir: str | Path,
                    out_manifest: str | Path) -> ImportResult:
    """An AudioSet segment CSV (+ class_labels_indices.csv) and a folder of downloaded clips -> a manifest."""
    names = read_audioset_classes(class_labels_csv)
    media = index_media(media_dir)
    rows, missing = [], []
    with open(segments_csv, newline="") as handle:
        lines = (line for line in handle if line.strip() and not line.startswith("#"))
        for number, fields in enumerate(csv.reader(lines, skipinitialspace=True), start=1):
            if len(fields) != 4:
                raise ValueError(f"{segments_csv}: segment {number} has {len(fields)} fields, expected "
                                 f"YTID, start_seconds, end_seconds, positive_labels: {fields}")
            ytid, start_s, end_s, labels = fields[0], float(fields[1]), float(fields[2]), fields[3].split(",")
            unknown = [mid for mid in labels if mid not in names]
            if unknown:
                raise ValueError(f"{segments_csv}: segment {ytid} has labels {unknown} missing from {class_labels_csv}")
            path = resolve_segment(ytid, start_s, end_s, media)
            row = {"ytid": ytid, "start_s": start_s, "end_s": end_s}
            if path is None:
                missing.append(row)
                continue
            rows.append({"file": str(path.resolve()), "labels": " ".join(labels),
                         "label_names": "; ".join(names[mid] for mid in labels), **row})
    return _write(rows, missing, Path(out_manifest))


def import_vggsound(vggsound_csv: str | Path, media_dir: str | Path, out_manifest: str | Path) -> ImportResult:
    """VGGSound's CSV (YTID, start second, label, split; no header) and a folder of clips -> a manifest."""
    media = index_media(media_dir)
    rows, missing = [], []
    with open(vggsound_csv, newline="") as handle:
        for number, fields in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if len(fields) != 4:
                raise ValueError(f"{vggsound_csv}: line {number} has {len(fields)} fields, expected "
                                 f"YTID, start, label, split: {fields}")
            ytid, start_s, label, split = fields[0], float(fields[1]), fields[2], fields[3].strip()
            path = resolve_segment(ytid, start_s, start_s + 10.0, media)  # VGGSound clips are 10 s
            row = {"ytid": ytid, "start_s": start_s}
            if path is None:
                missing.append(row)
                continue
            rows.append({"file": str(path.resolve()), "labels": label_token(label), "label_names": label,
                         "split": split, **row})
    return _write(rows, missing, Path(out_manifest))
