"""AudioSet and VGGSound lists become manifests: ids resolve to local files under the usual namings, labels become
space-free tokens, and segments without a file are listed, not written."""
import csv
from pathlib import Path

import pytest

from mavil_lite.cli import main
from mavil_lite.data.dataset import read_manifest
from mavil_lite.data.importers import import_audioset, import_vggsound, label_token

SEGMENTS = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=4, num_segs=4, num_unique_labels=3, num_positive_labels=5
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
-0RWZT-miFs, 420.000, 430.000, "/m/03fwl"
-1nilez17Dg, 0.000, 10.000, "/m/09x0r"
zzzzzzzzzzz, 5.000, 15.000, "/m/03fwl"
"""
CLASSES = """index,mid,display_name
0,/m/09x0r,"Speech"
1,/t/dd00088,"Male speech, man speaking"
2,/m/03fwl,"Goat"
"""
VGGSOUND = """---g-f_I2yQ,1,people marching,test
--0PQM4-hqg,30,"male speech, man speaking",train
--aaILOrkII,200,dog barking,train
absentabsen,0,dog barking,train
"""


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def media(tmp_path):
    """Downloaded clips under three naming schemes, in nested folders, plus a stray non-media file."""
    folder = tmp_path / "downloads"
    (folder / "part1").mkdir(parents=True)
    (folder / "part2").mkdir()
    for name in ["part1/--PJHxphWEs_30.000_40.000.mp4", "part1/Y-0RWZT-miFs.wav", "part2/-1nilez17Dg.mkv",
                 "part2/---g-f_I2yQ_000001.mp4", "part2/--0PQM4-hqg_30_40.mp4", "part1/--aaILOrkII.webm",
                 "part1/zzzzzzzzzzz.txt"]:
        (folder / name).write_bytes(b"x")
    return folder


def test_audioset_segments_resolve_to_local_files(tmp_path, media):
    (tmp_path / "segments.csv").write_text(SEGMENTS)
    (tmp_path / "classes.csv").write_text(CLASSES)
    result = import_audioset(tmp_path / "segments.csv", tmp_path / "classes.csv", media, tmp_path / "out" / "m.csv")
    assert (result.found, result.missing) == (3, 1)
    rows = read_rows(result.manifest)
    assert [row["file"] for row in rows] == [
        "../downloads/part1/--PJHxphWEs_30.000_40.000.mp4", "../downloads/part1/Y-0RWZT-miFs.wav",
        "../downloads/part2/-1nilez17Dg.mkv"]
    assert rows[0]["labels"] == "/m/09x0r /t/dd00088"
    assert rows[0]["label_names"] == "Speech; Male speech, man speaking"
    assert read_rows(result.missing_list) == [{"ytid": "zzzzzzzzzzz", "start_s": "5.0", "end_s": "15.0"}]
    records = read_manifest(result.manifest)  # the kit reads it as it is: paths resolve, labels are multi-label
    assert Path(records[1]["path"]) == (media / "part1" / "Y-0RWZT-miFs.wav").resolve()
    assert records[0]["labels"] == ["/m/09x0r", "/t/dd00088"]


def test_audioset_label_missing_from_the_class_list_is_an_error(tmp_path, media):
    (tmp_path / "segments.csv").write_text(SEGMENTS.replace("/m/03fwl", "/m/unknown", 1))
    (tmp_path / "classes.csv").write_text(CLASSES)
    with pytest.raises(ValueError, match=r"-0RWZT-miFs.*'/m/unknown'"):
        import_audioset(tmp_path / "segments.csv", tmp_path / "classes.csv", media, tmp_path / "m.csv")


def test_vggsound_rows_keep_label_and_split(tmp_path, media, capsys):
    (tmp_path / "vggsound.csv").write_text(VGGSOUND)
    assert main(["import-vggsound", str(tmp_path / "vggsound.csv"), str(media), str(tmp_path / "v.csv")]) == 0
    assert "3 clips found, 1 missing" in capsys.readouterr().out
    rows = read_rows(tmp_path / "v.csv")
    assert [(row["labels"], row["split"]) for row in rows] == [
        ("people_marching", "test"), ("male_speech_man_speaking", "train"), ("dog_barking", "train")]
    assert rows[0]["file"] == "downloads/part2/---g-f_I2yQ_000001.mp4"
    assert rows[2]["file"] == "downloads/part1/--aaILOrkII.webm"  # the only file with that id
    records = read_manifest(tmp_path / "v.csv")
    assert [record["split"] for record in records] == ["test", "train", "train"]


def test_label_tokens_and_nothing_found(tmp_path):
    assert label_token(" Male speech, man speaking ") == "Male_speech_man_speaking"
    (tmp_path / "media").mkdir()
    (tmp_path / "vggsound.csv").write_text(VGGSOUND)
    with pytest.raises(ValueError, match="no segment has a local file: 4 looked for"):
        import_vggsound(tmp_path / "vggsound.csv", tmp_path / "media", tmp_path / "v.csv")
