"""The account of a dataset's clips: `report.csv` (file, status, reason, video_decoder), the summary line, and
`--strict`.

Every clip of a manifest gets one row: `ok` (every modality of the dataset decoded; the reason then lists what
was fixed on the way, if anything), `partial` (usable for one modality only; the reason says which and why) or
`failed` (unusable; the reason says why). `video_decoder` says what read the clip's frames: `decord`, or `pyav`
where decord cannot (the sound is always decord's). Training reads the report back to skip the clips recorded as
failed; a report written before the decoder column existed reads the same.

The dataset's modalities are those asked for, or by default those that decoded in at least one clip: an
all-wav manifest is an audio-only dataset, not 3,000 clips that lack a video.
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from .clip_check import MODALITIES, STATUSES, CheckedClip
from .containers import BadClipError

REPORT_NAME = "report.csv"
REPORT_COLUMNS = ("file", "status", "reason", "video_decoder")  # new columns go last, for readers by position


def dataset_modalities(clips: list[CheckedClip], requested: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The requested modalities, or those that decoded in at least one clip (both when none decoded)."""
    if requested:
        return tuple(modality for modality in MODALITIES if modality in requested)
    seen = {modality for clip in clips for modality in clip.usable()}
    return tuple(modality for modality in MODALITIES if modality in seen) or MODALITIES


def report_rows(clips: list[CheckedClip], modalities: tuple[str, ...]) -> list[dict]:
    """One {'file', 'status', 'reason', 'video_decoder'} row per clip, in manifest order."""
    return [{"file": clip.file, "status": clip.status(modalities), "reason": clip.reason(modalities),
             "video_decoder": clip.video_decoder} for clip in clips]


def write_report(path: str | Path, rows: list[dict]) -> Path:
    """Write report.csv atomically (a crash never leaves half a report that training would trust)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(REPORT_COLUMNS))
        writer.writeheader()
        writer.writerows({column: row[column] for column in REPORT_COLUMNS} for row in rows)
    os.replace(tmp, path)
    return path


def read_report(path: str | Path) -> dict[str, dict]:
    """report.csv -> {file: {'status', 'reason'}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such report")
    with open(path, newline="") as handle:
        return {row["file"]: {"status": row["status"], "reason": row["reason"]} for row in csv.DictReader(handle)}


def status_counts(rows: list[dict]) -> dict[str, int]:
    counts = Counter(row["status"] for row in rows)
    return {status: counts.get(status, 0) for status in STATUSES}


def summary_line(rows: list[dict]) -> str:
    """'N ok, M partial, K failed'."""
    counts = status_counts(rows)
    return ", ".join(f"{counts[status]} {status}" for status in STATUSES)


class StrictCheck:
    """With --strict, the first clip that is not fully usable stops the run with an error naming it.

    With fixed modalities a clip is judged on its own. Otherwise the dataset's modalities are only known from the
    clips seen so far: a clip that decodes fewer modalities than an earlier one fails at once, and an audio-only
    first clip fails as soon as an audio-video clip shows the dataset has video.
    """

    def __init__(self, modalities: tuple[str, ...] | None = None):
        self.modalities = modalities
        self.seen: tuple[str, ...] = ()  # what every clip so far decoded (they all agree, or one raised)
        self.first: CheckedClip | None = None

    def check(self, clip: CheckedClip) -> None:
        """Raise BadClipError for a clip that is not usable in every modality of the dataset."""
        judged_on = self.modalities or MODALITIES
        if "file" in clip.problems or not clip.usable(judged_on):
            raise BadClipError(clip.file, clip.reason(judged_on))
        if self.modalities:
            if clip.status(self.modalities) != "ok":
                raise BadClipError(clip.file, clip.reason(self.modalities))
            return
        usable = clip.usable()
        if self.first is None:
            self.first, self.seen = clip, usable
            return
        union = tuple(modality for modality in MODALITIES if modality in usable or modality in self.seen)
        if self.seen != union:  # this clip has a modality that every earlier clip lacked
            raise BadClipError(self.first.file, self.first.reason(union))
        if usable != union:
            raise BadClipError(clip.file, clip.reason(union))
