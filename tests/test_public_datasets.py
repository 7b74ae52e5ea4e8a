"""Public datasets as published become manifests: a generated miniature of each layout, imported and read back;
`name:DIR` specs resolve to a folder's own manifest or to one imported once into the cache."""
import csv
import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest
from media_files import tone, write_media

from mavil_lite.data.dataset import decode_manifest, read_manifest
from mavil_lite.data.media import FeatureSpec
from mavil_lite.data.public_datasets import (
    PUBLIC_DATASETS,
    import_audioset_folder,
    import_esc50,
    import_fsdd,
    import_grid,
    import_msrvtt,
    import_speech_commands,
    import_vggsound_folder,
    import_youcook,
    is_dataset_spec,
    resolve_dataset,
)

SPEC = FeatureSpec(audio_frames=64, mel_bins=16, video_frames=2, video_fps=1.0, frame_size=32)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def columns(path):
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


def write_wav(path: Path, seconds: float = 0.3, sample_rate: int = 8000, hz: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (tone(hz, seconds, sample_rate)[0] * 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(samples.tobytes())
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def alignment(start: int, end: int, words: str) -> str:
    """A GRID .align (1/25000 s units): silence, the six words sharing start..end, a pause among them, silence."""
    bounds = [start + i * ((end - start) // 6) for i in range(6)] + [end]
    lines = [f"0 {start} sil"] + [f"{bounds[i]} {bounds[i + 1]} {word}" for i, word in enumerate(words.split())]
    lines.insert(3, f"{bounds[2]} {bounds[2]} sp")  # short pauses are marked inside sentences, as in the corpus
    return "\n".join(lines + [f"{end} 74500 sil"]) + "\n"


def write_grid_video(path: Path, brightness: int) -> Path:
    """1 s of 64x48 MPEG-1 video at 25 fps with 16 kHz mono MP2 audio in an MPEG-PS file, as GRID's .mpg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.full((25, 48, 64, 3), brightness, dtype=np.uint8)
    return write_media(path, frames, 25, [tone(300.0, 1.0)], video_codec="mpeg1video", audio_codec="mp2",
                       container_format="mpeg")


@pytest.fixture
def grid(tmp_path):
    """GRID as unpacked: s1/ and s2/ videos (the same stem for both speakers), alignments/s<N>/*.align, one
    alignment outside any speaker folder, and one video without an alignment."""
    root = tmp_path / "GRID"
    write_grid_video(root / "s1" / "bbaf2n.mpg", 60)
    write_grid_video(root / "s1" / "bbaf3s.mpg", 120)
    write_grid_video(root / "s2" / "bbaf2n.mpg", 180)
    touch(root / "s2" / "pgwr6p.mpg")
    (root / "alignments" / "s1").mkdir(parents=True)
    (root / "alignments" / "s2").mkdir(parents=True)
    (root / "alignments" / "s1" / "bbaf2n.align").write_text(alignment(23750, 53000, "bin blue at f two now"))
    (root / "alignments" / "s2" / "bbaf2n.align").write_text(alignment(12500, 60000, "bin blue at f two now"))
    (root / "alignments" / "bbaf3s.align").write_text(alignment(17750, 46750, "bin blue at f three soon"))
    return root


def test_grid_videos_and_alignments_become_transcripts_slots_and_speech_times(grid, tmp_path):
    result = import_grid(grid, tmp_path / "out" / "grid.csv")
    assert (result.found, result.missing) == (3, 1)
    assert columns(result.manifest) == ["file", "transcript", "command", "color", "preposition", "letter", "digit",
                                        "adverb", "speech_start_s", "speech_end_s", "speaker"]
    rows = read_rows(result.manifest)
    assert [(row["file"], row["speaker"], row["transcript"], row["digit"], row["adverb"], row["speech_start_s"],
             row["speech_end_s"]) for row in rows] == [
        ("../GRID/s1/bbaf2n.mpg", "s1", "bin blue at f two now", "two", "now", "0.950", "2.120"),
        ("../GRID/s1/bbaf3s.mpg", "s1", "bin blue at f three soon", "three", "soon", "0.710", "1.870"),
        ("../GRID/s2/bbaf2n.mpg", "s2", "bin blue at f two now", "two", "now", "0.500", "2.400")]  # s2's own
    assert [rows[0][slot] for slot in ("command", "color", "preposition", "letter")] == ["bin", "blue", "at", "f"]
    assert [(Path(row["file"]).name, row["speaker"]) for row in read_rows(result.missing_list)] == [
        ("pgwr6p.mpg", "s2")]

    clips = decode_manifest(result.manifest, SPEC, label_column="digit", progress=False)  # no split: assigned
    assert clips.audio.shape == (3, 1, 64, 16) and clips.video.shape == (3, 2, 32, 32, 3)
    assert clips.modalities == ("audio", "video") and bool(clips.has_audio.all() and clips.has_video.all())
    assert clips.classes == ["three", "two"] and clips.targets.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert clips.files == [str((grid / name).resolve()) for name in ("s1/bbaf2n.mpg", "s1/bbaf3s.mpg",
                                                                      "s2/bbaf2n.mpg")]
    brightness = clips.video.float().mean(dim=(1, 2, 3, 4)).tolist()  # the right file behind each row
    assert [round(value / 60) for value in brightness] == [1, 2, 3]
    assert set(clips.splits) <= {"train", "test"}


def test_grid_without_its_alignments_or_videos_says_what_is_missing(grid, tmp_path):
    for align in grid.rglob("*.align"):
        align.unlink()
    with pytest.raises(FileNotFoundError, match=r"no GRID alignments \(\*\.align"):
        import_grid(grid, tmp_path / "grid.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no GRID videos \(\*\.mpg"):
        import_grid(tmp_path / "empty", tmp_path / "grid.csv")


def test_grid_alignment_without_six_words_is_named(grid, tmp_path):
    (grid / "alignments" / "s2" / "bbaf2n.align").write_text("0 20000 sil\n20000 30000 bin\n30000 74500 sil\n")
    with pytest.raises(ValueError, match=r"s2/bbaf2n.align: expected 6 spoken words, got \['bin'\]"):
        import_grid(grid, tmp_path / "grid.csv")


@pytest.fixture
def fsdd(tmp_path):
    root = tmp_path / "free-spoken-digit-dataset"
    write_wav(root / "recordings" / "0_george_0.wav", 0.3)
    write_wav(root / "recordings" / "0_george_5.wav", 0.25)
    write_wav(root / "recordings" / "1_jackson_4.wav", 0.2, hz=880)
    write_wav(root / "recordings" / "1_jackson_49.wav", 0.3, sample_rate=16000, hz=880)
    write_wav(root / "recordings" / "noise.wav", 0.1)  # not a recording of the dataset's naming
    (root / "README.md").write_text("# FSDD\n")
    return root


def test_fsdd_recordings_become_digits_with_the_dataset_split(fsdd, tmp_path):
    result = import_fsdd(fsdd, tmp_path / "fsdd.csv")
    assert (result.found, result.missing, result.missing_list) == (4, 0, None)
    assert columns(result.manifest) == ["file", "digit", "speaker", "take", "split", "sample_rate", "duration_s"]
    assert [list(row.values()) for row in read_rows(result.manifest)] == [
        ["free-spoken-digit-dataset/recordings/0_george_0.wav", "0", "george", "0", "test", "8000", "0.300"],
        ["free-spoken-digit-dataset/recordings/0_george_5.wav", "0", "george", "5", "train", "8000", "0.250"],
        ["free-spoken-digit-dataset/recordings/1_jackson_4.wav", "1", "jackson", "4", "test", "8000", "0.200"],
        ["free-spoken-digit-dataset/recordings/1_jackson_49.wav", "1", "jackson", "49", "train", "16000", "0.300"]]

    clips = decode_manifest(result.manifest, SPEC, label_column="digit", progress=False)
    assert clips.modalities == ("audio",) and clips.audio.shape == (4, 1, 64, 16)
    assert clips.classes == ["0", "1"] and clips.targets.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert clips.splits == ["test", "train", "test", "train"]


def test_fsdd_without_recordings_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no recordings/ folder"):
        import_fsdd(tmp_path, tmp_path / "fsdd.csv")


ESC50_META = """filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100038-A-14.wav,1,14,chirping_birds,False,100038,A
2-100648-A-43.wav,2,43,chirping_birds,False,100648,A
2-104862-A-0.wav,2,0,dog,True,104862,A
3-100018-A-11.wav,3,11,sea_waves,False,100018,A
"""


@pytest.fixture
def esc50(tmp_path):
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(ESC50_META)
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav", "3-100018-A-11.wav"):
        write_wav(root / "audio" / name, 0.1, 44100)
    return root


def test_esc50_folds_become_a_test_split_and_are_kept(esc50, tmp_path):
    result = import_esc50(esc50, tmp_path / "esc50.csv")
    assert columns(result.manifest) == ["file", "labels", "target", "fold", "esc10", "split"]
    assert [list(row.values()) for row in read_rows(result.manifest)] == [
        ["ESC-50-master/audio/1-100032-A-0.wav", "dog", "0", "1", "True", "test"],
        ["ESC-50-master/audio/1-100038-A-14.wav", "chirping_birds", "14", "1", "False", "test"],
        ["ESC-50-master/audio/2-100648-A-43.wav", "chirping_birds", "43", "2", "False", "train"],
        ["ESC-50-master/audio/3-100018-A-11.wav", "sea_waves", "11", "3", "False", "train"]]
    assert [(Path(row["file"]).name, row["fold"]) for row in read_rows(result.missing_list)] == [
        ("2-104862-A-0.wav", "2")]
    other_fold = import_esc50(esc50, tmp_path / "esc50_fold2.csv", test_fold=2)
    assert [row["split"] for row in read_rows(other_fold.manifest)] == ["train", "train", "test", "train"]
    with pytest.raises(ValueError, match=r"test_fold 6 is not one of the folds \[1, 2, 3\]"):
        import_esc50(esc50, tmp_path / "bad.csv", test_fold=6)
    (esc50 / "meta" / "esc50.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no meta/esc50.csv"):
        import_esc50(esc50, tmp_path / "esc50.csv")


@pytest.fixture
def speech_commands(tmp_path):
    root = tmp_path / "speech_commands_v0.01"
    for entry in ("yes/0a7c2a8d_nohash_0.wav", "yes/0a7c2a8d_nohash_1.wav", "no/1b4c9b89_nohash_0.wav",
                  "bed/2c5d8c90_nohash_2.wav", "sheila/0a7c2a8d_nohash_0.wav"):
        write_wav(root / entry, 0.05, 16000)
    write_wav(root / "_background_noise_" / "white_noise.wav", 0.2, 16000)
    (root / "validation_list.txt").write_text("no/1b4c9b89_nohash_0.wav\nbed/2c5d8c90_nohash_2.wav\n")
    (root / "testing_list.txt").write_text("yes/0a7c2a8d_nohash_1.wav\nup/9f9f9f9f_nohash_0.wav\n")
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return root


def test_speech_commands_become_the_keyword_task_with_the_official_split(speech_commands, tmp_path):
    result = import_speech_commands(speech_commands, tmp_path / "spc.csv")
    assert columns(result.manifest) == ["file", "labels", "word", "speaker", "split"]
    assert [list(row.values()) for row in read_rows(result.manifest)] == [
        ["speech_commands_v0.01/bed/2c5d8c90_nohash_2.wav", "unknown", "bed", "2c5d8c90", "validation"],
        ["speech_commands_v0.01/no/1b4c9b89_nohash_0.wav", "no", "no", "1b4c9b89", "validation"],
        ["speech_commands_v0.01/sheila/0a7c2a8d_nohash_0.wav", "unknown", "sheila", "0a7c2a8d", "train"],
        ["speech_commands_v0.01/yes/0a7c2a8d_nohash_0.wav", "yes", "yes", "0a7c2a8d", "train"],
        ["speech_commands_v0.01/yes/0a7c2a8d_nohash_1.wav", "yes", "yes", "0a7c2a8d", "test"]]
    assert read_rows(result.missing_list) == [{"file": "up/9f9f9f9f_nohash_0.wav", "split": "test"}]
    (speech_commands / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no testing_list.txt"):
        import_speech_commands(speech_commands, tmp_path / "spc.csv")


def test_msrvtt_split_follows_the_1k_a_test_list_when_there_is_one(tmp_path):
    root = tmp_path / "MSRVTT"
    for name in ("videos/all/video0.mp4", "videos/all/video7010.mp4", "videos/all/video9770.mp4",
                 "videos/all/notes.txt"):
        touch(root / name)
    without_list = import_msrvtt(root, tmp_path / "all_test.csv")
    assert [list(row.values()) for row in read_rows(without_list.manifest)] == [
        ["MSRVTT/videos/all/video0.mp4", "video0", "test"], ["MSRVTT/videos/all/video7010.mp4", "video7010", "test"],
        ["MSRVTT/videos/all/video9770.mp4", "video9770", "test"]]
    (root / "annotation").mkdir()
    (root / "annotation" / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr7010,video7010,a man is singing\n"
        "ret1,msr9770,video9770,a person is cooking\nret2,msr7020,video7020,a dog runs\n")
    result = import_msrvtt(root, tmp_path / "msrvtt.csv")
    assert columns(result.manifest) == ["file", "video_id", "split"]
    assert [(row["video_id"], row["split"]) for row in read_rows(result.manifest)] == [
        ("video0", "train"), ("video7010", "test"), ("video9770", "test")]
    assert read_rows(result.missing_list) == [{"video_id": "video7020", "split": "test"}]
    with pytest.raises(FileNotFoundError, match="no MSR-VTT videos"):
        import_msrvtt(root / "annotation", tmp_path / "none.csv")


def test_youcook_validation_videos_are_the_test_split(tmp_path):
    root = tmp_path / "YouCook2"
    for name in ("raw_videos/training/101/0O4bxhpFX9o.mp4", "raw_videos/training/113/xHr8X2Wpmno.mkv",
                 "raw_videos/validation/101/jd1SBNOmyts.webm", "raw_videos/testing/101/6seOEuK0ojg.mp4"):
        touch(root / name)
    result = import_youcook(root, root / "youcook.csv")
    assert columns(result.manifest) == ["file", "video_id", "split"]
    assert [list(row.values()) for row in read_rows(result.manifest)] == [
        ["raw_videos/training/101/0O4bxhpFX9o.mp4", "0O4bxhpFX9o", "train"],
        ["raw_videos/training/113/xHr8X2Wpmno.mkv", "xHr8X2Wpmno", "train"],
        ["raw_videos/validation/101/jd1SBNOmyts.webm", "jd1SBNOmyts", "test"]]
    with pytest.raises(FileNotFoundError, match="no raw_videos/ folder"):
        import_youcook(root / "raw_videos", tmp_path / "none.csv")


AUDIOSET_CLASSES = 'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/03fwl,"Goat"\n'
BALANCED = """# Segments csv created Sun Mar  5 10:54:31 2017
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/03fwl"
-0RWZT-miFs, 420.000, 430.000, "/m/03fwl"
"""
EVAL = """# YTID, start_seconds, end_seconds, positive_labels
-1nilez17Dg, 0.000, 10.000, "/m/09x0r"
"""


def test_audioset_folder_merges_balanced_train_and_eval_test(tmp_path):
    root = tmp_path / "audioset"
    root.mkdir()
    (root / "class_labels_indices.csv").write_text(AUDIOSET_CLASSES)
    (root / "balanced_train_segments.csv").write_text(BALANCED)
    (root / "eval_segments.csv").write_text(EVAL)
    touch(root / "balanced" / "--PJHxphWEs_30_40.wav")
    result = import_audioset_folder(root, tmp_path / "as.csv")  # eval clips not downloaded: all listed missing
    assert [(row["file"], row["labels"], row["split"]) for row in read_rows(result.manifest)] == [
        ("audioset/balanced/--PJHxphWEs_30_40.wav", "/m/09x0r /m/03fwl", "train")]
    assert [(row["ytid"], row["split"]) for row in read_rows(result.missing_list)] == [
        ("-0RWZT-miFs", "train"), ("-1nilez17Dg", "test")]
    touch(root / "eval" / "Y-1nilez17Dg_0.000_10.000.flac")
    result = import_audioset_folder(root, tmp_path / "as.csv")
    assert [(row["file"], row["labels"], row["label_names"], row["split"]) for row in read_rows(result.manifest)] == [
        ("audioset/balanced/--PJHxphWEs_30_40.wav", "/m/09x0r /m/03fwl", "Speech; Goat", "train"),
        ("audioset/eval/Y-1nilez17Dg_0.000_10.000.flac", "/m/09x0r", "Speech", "test")]
    assert [record["split"] for record in read_manifest(result.manifest)] == ["train", "test"]
    (root / "eval_segments.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no eval_segments.csv"):
        import_audioset_folder(root, tmp_path / "as.csv")


def test_vggsound_folder_uses_its_list_and_split(tmp_path):
    root = tmp_path / "vggsound"
    root.mkdir()
    (root / "vggsound.csv").write_text("---g-f_I2yQ,1,people marching,test\n--0PQM4-hqg,30,dog barking,train\n")
    touch(root / "video" / "---g-f_I2yQ_000001.mp4")
    touch(root / "video" / "--0PQM4-hqg_000030.mp4")
    result = import_vggsound_folder(root, root / "vggsound_manifest.csv")
    assert [(row["file"], row["labels"], row["split"]) for row in read_rows(result.manifest)] == [
        ("video/---g-f_I2yQ_000001.mp4", "people_marching", "test"),
        ("video/--0PQM4-hqg_000030.mp4", "dog_barking", "train")]


def test_is_dataset_spec_needs_a_known_name():
    assert is_dataset_spec("grid:/data/GRID") and is_dataset_spec("spc1:~/spc")
    assert not is_dataset_spec("/data/GRID/manifest.csv")
    assert not is_dataset_spec("C:\\data\\manifest.csv") and not is_dataset_spec("nope:/data")
    assert set(PUBLIC_DATASETS) == {"grid", "fsdd", "esc50", "spc1", "msrvtt", "youcook", "audioset",
                                    "vggsound"}
    assert all("://" in entry.published_at and entry.layout for entry in PUBLIC_DATASETS.values())


def test_a_folder_with_its_own_manifest_is_used_as_it_is(tmp_path):
    (tmp_path / "grid_s1").mkdir()
    (tmp_path / "grid_s1" / "manifest.csv").write_text("file,transcript\nclips/a.mp4,bin blue\n")
    assert resolve_dataset(f"grid:{tmp_path}/grid_s1/", tmp_path / "cache") == tmp_path / "grid_s1" / "manifest.csv"
    assert not (tmp_path / "cache").exists()


def test_a_published_layout_is_imported_once_into_the_cache(fsdd, esc50, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    digest = hashlib.sha1(str(fsdd.resolve()).encode()).hexdigest()[:10]
    manifest = resolve_dataset(f"fsdd:{fsdd}", cache)
    assert manifest == cache / f"fsdd-{digest}.csv"
    assert [record["labels"] for record in read_manifest(manifest, "digit")] == [["0"], ["0"], ["1"], ["1"]]
    assert Path(read_manifest(manifest, "digit")[0]["path"]) == fsdd / "recordings" / "0_george_0.wav"
    written = manifest.stat().st_mtime_ns
    (fsdd / "recordings" / "2_theo_9.wav").write_bytes(b"")  # an import would now see (and fail to read) it
    assert resolve_dataset(f"fsdd:{fsdd}", cache) == manifest and manifest.stat().st_mtime_ns == written
    assert sorted(path.name for path in cache.iterdir()) == [f"fsdd-{digest}.csv"]  # no partial file left

    monkeypatch.setenv("MAVIL_LITE_CACHE", str(tmp_path / "env_cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    esc_manifest = resolve_dataset("esc50:~/ESC-50-master")  # ~ expanded; missing clips listed beside it
    digest = hashlib.sha1(str(esc50.resolve()).encode()).hexdigest()[:10]
    assert esc_manifest == tmp_path / "env_cache" / "manifests" / f"esc50-{digest}.csv"
    assert sorted(path.name for path in esc_manifest.parent.iterdir()) == [
        f"esc50-{digest}.csv", f"esc50-{digest}_missing.csv"]
    assert [row["split"] for row in read_rows(esc_manifest)] == ["test", "test", "train", "train"]
    monkeypatch.delenv("MAVIL_LITE_CACHE")
    assert resolve_dataset(f"esc50:{esc50}").parent == tmp_path / ".cache" / "mavil-lite" / "manifests"


def test_unknown_names_and_missing_folders_are_explained(tmp_path):
    with pytest.raises(ValueError, match=r"'kinetics:/data'.*names are \['audioset', 'esc50', 'fsdd', 'grid', "):
        resolve_dataset("kinetics:/data")
    with pytest.raises(ValueError, match="not a dataset spec"):
        resolve_dataset(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no_such: no such folder \(from 'grid:.*no_such'\); it should "
                                                r"hold grid's s<N>/<id>.mpg"):
        resolve_dataset(f"grid:{tmp_path}/no_such", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="no recordings/ folder"):
        resolve_dataset(f"fsdd:{tmp_path}", tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*.csv"))  # a failed import leaves no manifest to reuse


def kit_layout_copy(folder, header: str, row: str):
    """A folder that already holds a manifest in the kit's layout (as a team's transcoded copy does)."""
    folder.mkdir(parents=True)
    (folder / "manifest.csv").write_text(f"{header}\n{row}\n")
    return folder


def test_the_reproduction_notebooks_take_public_datasets_by_name(tmp_path):
    from mavil_lite.experiments.reproduction import resolve_source

    grid = kit_layout_copy(tmp_path / "GRID", "file,transcript,digit", "clips/a.mp4,bin blue at f two now,two")
    fsdd = kit_layout_copy(tmp_path / "fsdd", "file,digit,split", "recordings/0_george_0.wav,0,test")
    esc50 = kit_layout_copy(tmp_path / "ESC-50", "file,labels,split", "audio/1-100032-A-0.wav,dog,test")
    source = resolve_source("AS-20K", f"grid:{grid}")
    assert (source.manifest, source.label_column, source.is_benchmark) == (grid / "manifest.csv", "transcript", False)
    assert resolve_source("VGGSound", f"grid:{grid}").label_column == "digit"
    assert resolve_source("MSR-VTT", f"grid:{grid}").label_column is None
    assert resolve_source("SPC-1", f"grid:{grid}") is None  # GRID stands in for nothing audio-only
    spc = resolve_source("SPC-1", f"grid:{grid}", manifests={"SPC-1": f"fsdd:{fsdd}"})
    assert (spc.manifest, spc.label_column, spc.is_benchmark) == (fsdd / "manifest.csv", "digit", False)
    real = resolve_source("ESC-50", "synthetic", manifests={"ESC-50": f"esc50:{esc50}"})
    assert (real.label_column, real.is_benchmark) == ("labels", True)  # the paper's own dataset
    with pytest.raises(ValueError, match="cannot stand in for ESC-50"):
        resolve_source("ESC-50", "synthetic", manifests={"ESC-50": f"grid:{grid}"})
