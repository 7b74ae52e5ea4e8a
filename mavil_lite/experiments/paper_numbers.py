"""The paper's numbers, read from the packaged `resources/paper_numbers.csv` (never hard-coded), and the ablation's ordering.

The paper's ablation (AS-20K fine-tuning mAP after AS-2M pre-training, ViT-B) climbs row by row:
A-MAE/V-MAE -> joint AV-MAE -> + inter-modal contrast -> + intra-modal contrast -> + stage-2 student-teacher.
mavil-lite reruns the five rows at a scale a laptop can afford, so absolute values are not comparable; what
can be compared is the ordering: whether each row improves on the one above (`mavil_lite.experiments.ablation_report`).
`mavil_lite.experiments.results` lays our numbers beside the paper's.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

# package data: read through importlib.resources, so an installed wheel finds it as a source checkout does
PAPER_NUMBERS_CSV = resources.files("mavil_lite").joinpath("resources", "paper_numbers.csv")

ABLATION_ROWS = (1, 2, 3, 4, 5)
MODALITY_COLUMNS = {"A": "audio", "V": "video"}


def load_paper_numbers(table: str | None = None) -> list[dict]:
    """Rows of `paper_numbers.csv`, optionally only those of one table.

    Args:
        table: 'ablation', 'av_classification', 'audio_only', 'retrieval', or None for all.

    Returns:
        list of dicts with the csv's columns; 'row' as int and 'value' as float (percent).
    """
    records = [{**record, "row": int(record["row"]), "value": float(record["value"])}
               for record in csv.DictReader(io.StringIO(PAPER_NUMBERS_CSV.read_text()))]
    if table is None:
        return records
    selected = [record for record in records if record["table"] == table]
    if not selected:
        known = sorted({record["table"] for record in records})
        raise ValueError(f"unknown table {table!r}; the csv has {known}")
    return selected


def paper_ablation() -> dict[int, dict]:
    """The paper's ablation as {row: {'method': str, 'audio': mAP %, 'video': mAP %}}, read from the csv."""
    ablation: dict[int, dict] = {}
    for record in load_paper_numbers("ablation"):
        entry = ablation.setdefault(record["row"], {"method": record["method"]})
        entry[MODALITY_COLUMNS[record["modality"]]] = record["value"]
    return ablation
