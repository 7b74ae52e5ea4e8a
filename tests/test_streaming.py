"""Training from disk (`StreamedClips`): DataLoader workers read the engine's schedule ahead, and a run from a
stream computes exactly what the same run from memory does (also when resumed, and when fine-tuning from a recipe).
From media files, every training draw gets its own random video window, the same in any process or rerun."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from media_files import frame_numbers, numbered_frames, tone, write_media, write_wav

from mavil_lite.data.cache import prepare_cache, preset_spec
from mavil_lite.data.cache_reader import load_cache
from mavil_lite.data.clip_source import ClipSource
from mavil_lite.data.media import FEATURES, frames_to_tensor
from mavil_lite.data.streaming import StreamedClips, stream_cache, stream_files
from mavil_lite.data.synthetic import generate_synthetic_dataset
from mavil_lite.distributed import DistributedContext
from mavil_lite.model.mavil import create_model
from mavil_lite.train.engine import Step, TrainConfig, micro_batches
from mavil_lite.train.pretrain import pretrain, pretrain_step_fn
from mavil_lite.train.recipes import load_recipe
from mavil_lite.train.runners import load_clips, run_finetune, run_pretrain

TINY = preset_spec("tiny")
CONFIG = TrainConfig(epochs=2, batch_size=4, base_lr=0.05, warmup_epochs=1)
SMALL_MODEL = {"size": "tiny", "audio_depth": 1, "video_depth": 1, "fusion_depth": 1, "decoder_depth": 1,
               "inter_contrast_weight": 0.1, "intra_contrast_weight": 0.1}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streaming")
    manifest = generate_synthetic_dataset(folder / "data", num_clips=16, seed=3, duration_s=2.0, progress=False)
    return manifest, prepare_cache(manifest, folder / "cache", "tiny", shard_size=5, progress=False).out_dir


def tiny_model():
    torch.manual_seed(0)
    return create_model(**SMALL_MODEL)


def weights_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_cache_trains_exactly_like_the_cache_in_memory(prepared, workers):
    _, cache = prepared
    in_memory, streamed = tiny_model(), tiny_model()
    expected = pretrain(in_memory, load_cache(cache, progress=False), CONFIG, progress=False)
    stream = stream_cache(cache, num_workers=workers)
    result = pretrain(streamed, stream, CONFIG, progress=False)
    assert result.history == expected.history and len(result.history["loss"]) == 2 * 16 // 4
    assert weights_equal(in_memory, streamed)
    assert stream.read_here == 0  # every training batch came from the read-ahead
    assert stream._ahead is None  # and its workers were stopped when training ended


def test_a_resumed_stream_ends_like_an_uninterrupted_run_in_memory(prepared, tmp_path):
    _, cache = prepared
    straight = tiny_model()
    pretrain(straight, load_cache(cache, progress=False), CONFIG, progress=False)
    pretrain(tiny_model(), stream_cache(cache), replace(CONFIG, epochs=1), checkpoint=tmp_path / "c.pt",
             progress=False)
    resumed = tiny_model()
    stream = stream_cache(cache, num_workers=1)
    pretrain(resumed, stream, CONFIG, checkpoint=tmp_path / "c.pt", progress=False)  # the second epoch only
    assert weights_equal(straight, resumed) and stream.read_here == 0


def test_batches_outside_the_schedule_are_read_in_place(prepared):
    _, cache = prepared
    stream, memory = stream_cache(cache), load_cache(cache, progress=False)
    test = stream.subset("test")
    index = torch.arange(len(test))
    audio, video, targets = test.batch(index)
    expected = memory.subset("test").batch(index)
    assert torch.equal(audio, expected[0]) and torch.equal(video, expected[1]) and torch.equal(targets, expected[2])
    assert audio.shape == (len(test), 1, 384, 64) and video.shape == (len(test), 3, 4, 64, 64)
    assert test.read_here == len(test) and test.files == memory.subset("test").files
    assert stream.modalities == ("audio", "video")


def test_a_recipe_fine_tunes_from_a_stream_as_from_memory(prepared, tmp_path):
    manifest, cache = prepared
    recipe = tmp_path / "probe.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "finetune", "model": SMALL_MODEL, "data": {"manifest": str(manifest), "features": "tiny"},
        "train": {"epochs": 1, "batch_size": 4, "base_lr": 0.01, "warmup_epochs": 0},
        "finetune": {"modality": "av", "mixup": 1.0, "balanced_sampling": True}}))
    backbone = tmp_path / "backbone.pt"
    torch.save({"model": tiny_model().state_dict(), "model_config": tiny_model().config.to_dict()}, backbone)
    metrics = {}
    for stream in (False, True):
        overrides = [f"data.cache={cache}", f"data.stream={str(stream).lower()}"]
        assert isinstance(load_clips(load_recipe(recipe, overrides), progress=False), StreamedClips) == stream
        metrics[stream] = run_finetune(load_recipe(recipe, overrides), backbone, tmp_path / f"ft{stream}",
                                       device="cpu", num_workers=2, progress=False)
    assert metrics[True] == metrics[False] and metrics[True]["n_test"] > 0


def long_clip_manifest(folder):
    (folder / "clips").mkdir()
    write_media(folder / "clips" / "long.mp4", numbered_frames(64), 8, [tone(1000, 8.0)])  # 8 s at 8 fps
    write_media(folder / "clips" / "long2.mp4", numbered_frames(64), 8, [tone(500, 8.0)])
    (folder / "m.csv").write_text("file,labels\nclips/long.mp4,a\nclips/long2.mp4,b\n")
    return folder / "m.csv"


def test_a_stream_of_media_files_reads_the_window_of_each_draw_and_trains_the_same_twice(tmp_path):
    manifest = long_clip_manifest(tmp_path)
    stream = stream_files(manifest, TINY, num_workers=2)
    assert stream.modalities == ("audio", "video") and len(stream) == 2
    config = TrainConfig(epochs=3, batch_size=2, warmup_epochs=0)
    schedule = list(micro_batches(len(stream), config, DistributedContext(), 1, 0, config.epochs))
    stream.prefetch(iter(schedule))
    windows = []
    for part in schedule:
        _, video, _ = stream.batch(part.index)
        expected = [stream.dataset.read(i, draw)["video"] for i, draw in zip(part.index.tolist(), part.draws.tolist())]
        assert torch.equal(video, frames_to_tensor(torch.stack(expected)))
        windows += [frame_numbers(frames) for frames in expected]
    stream.prefetch(None)
    assert len({tuple(numbers) for numbers in windows}) >= 3 and stream.read_here == 0  # windows move by epoch
    runs = [pretrain(tiny_model(), stream, config, progress=False).history for _ in range(2)]
    assert runs[0] == runs[1]


def test_an_audio_only_manifest_streams_audio_only(tmp_path):
    for name, hz in [("a.wav", 440), ("b.wav", 880)]:
        write_wav(tmp_path / name, tone(hz, 1.0), 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "m.csv").write_text("file,labels\na.wav,x\nb.wav,y\nempty.wav,z\n")
    (tmp_path / "report.csv").write_text(f"file,status,reason\n{tmp_path / 'empty.wav'},failed,the file is empty\n")
    stream = stream_files(tmp_path / "m.csv", TINY, report=tmp_path / "report.csv")
    assert stream.modalities == ("audio",) and len(stream) == 2  # the recorded bad clip is left out
    audio, video, _ = stream.batch([0, 1])
    assert audio.abs().sum() > 0 and video.shape == (2, 3, 4, 64, 64)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"task": "pretrain", "model": SMALL_MODEL,
                                      "data": {"manifest": str(tmp_path / "m.csv"), "features": "tiny",
                                               "stream": True, "pretrain_split": "all",
                                               "report": str(tmp_path / "report.csv")},
                                      "train": {"epochs": 1, "batch_size": 2, "warmup_epochs": 0}}))
    checkpoint = run_pretrain(load_recipe(recipe), tmp_path / "run", device="cpu", progress=False)
    assert tuple(torch.load(checkpoint, weights_only=True)["model_config"]["modalities"]) == ("audio",)


def spy_on_loss(model):
    """What each step's loss of ``model`` is given: a list of (inputs, stage-2 targets, present) per call."""
    calls, forward_loss = [], model.forward_loss

    def spy(inputs, preds, masking, tokens, second_view, targets=None, present=None):
        calls.append((inputs, targets, present))
        return forward_loss(inputs, preds, masking, tokens, second_view, targets, present)

    model.forward_loss = spy
    return calls


def test_stage2_streamed_from_media_files_regresses_the_teacher_on_the_window_the_student_sees(tmp_path):
    stream = stream_files(long_clip_manifest(tmp_path), TINY)
    teacher, student = tiny_model(), create_model(**SMALL_MODEL, target="teacher")
    config = TrainConfig(epochs=3, batch_size=2, warmup_epochs=0)
    with pytest.raises(ValueError, match="random video window"):
        pretrain(student, stream, config, teacher=teacher, cache_teacher_targets=True, progress=False)
    seen = spy_on_loss(student)
    pretrain(student, stream, config, teacher=teacher, progress=False)
    schedule = list(micro_batches(len(stream), config, DistributedContext(), 1, 0, config.epochs))
    evaluation_video = stream.batch(torch.arange(len(stream)))[1]  # the window a target pass over every clip reads
    assert len(seen) == len(schedule) == 3
    for part, (inputs, targets, _) in zip(schedule, seen):
        drawn = [stream.dataset.read(i, draw)["video"] for i, draw in zip(part.index.tolist(), part.draws.tolist())]
        assert torch.equal(inputs["video"], frames_to_tensor(torch.stack(drawn)))  # the student sees the draw
        expected = teacher.fused_targets(**inputs)
        for modality in ("audio", "video"):
            torch.testing.assert_close(targets[modality], expected[modality])
    # the draws are not the evaluation window, so targets computed once from it would be wrong
    assert any(not torch.equal(inputs["video"], evaluation_video[part.index])
               for part, (inputs, _, _) in zip(schedule, seen))


PARTIAL_FLAGS = {"whole.mp4": (True, True), "silent.mp4": (False, True), "sound.wav": (True, False),
                 "whole2.mp4": (True, True)}  # file: (has_audio, has_video)


def partial_clips_manifest(folder):
    write_media(folder / "whole.mp4", numbered_frames(16), 8, [tone(1000, 2.0)])
    write_media(folder / "silent.mp4", numbered_frames(16), 8)  # no audio stream
    write_wav(folder / "sound.wav", tone(500, 2.0), 16000)  # no video stream
    write_media(folder / "whole2.mp4", numbered_frames(16)[::-1].copy(), 8, [tone(700, 2.0)])
    (folder / "m.csv").write_text("file,labels\n" + "".join(f"{name},x\n" for name in PARTIAL_FLAGS))
    return folder / "m.csv"


@pytest.mark.filterwarnings("ignore:.*usable for:UserWarning")  # RawClips warns of each partial clip it reads
@pytest.mark.parametrize("source", ["files", "cache"])
def test_missing_modalities_survive_streaming_and_add_nothing_to_the_contrasts(tmp_path, source):
    manifest = partial_clips_manifest(tmp_path)
    stream = stream_files(manifest, TINY, num_workers=1) if source == "files" else \
        stream_cache(prepare_cache(manifest, tmp_path / "cache", "tiny", progress=False).out_dir, num_workers=1)
    names = [Path(file).name for file in stream.files]
    flags = {"audio": torch.tensor([PARTIAL_FLAGS[name][0] for name in names]),
             "video": torch.tensor([PARTIAL_FLAGS[name][1] for name in names])}  # (N,) each
    model = tiny_model()  # inter- and intra-modal contrast
    seen = spy_on_loss(model)
    config = TrainConfig(epochs=2, batch_size=2, warmup_epochs=0)
    pretrain(model, stream, config, progress=False)  # the batches come from the workers' read-ahead
    schedule = list(micro_batches(len(stream), config, DistributedContext(), 2, 0, 2 * config.epochs))
    assert len(seen) == len(schedule) == 4 and stream.read_here == 0
    for part, (_, _, present) in zip(schedule, seen):
        assert present is not None and all(torch.equal(present[m], flags[m][part.index]) for m in flags)

    # a clip's missing modality takes no part in the contrasts: changing what stands in for it changes nothing
    loss_fn, read = pretrain_step_fn(model, stream, "cpu"), stream.batch
    index = torch.arange(len(stream))

    def terms(change: bool) -> dict[str, torch.Tensor]:
        def batch(rows):
            audio, video, targets = read(rows)
            if change:
                audio[~flags["audio"][rows]] = torch.randn(1, *audio.shape[1:])
                video[~flags["video"][rows]] = torch.randn(1, *video.shape[1:])
            return audio, video, targets

        stream.batch = batch
        step = Step(index, offset=0, global_batch=len(index), generator=torch.Generator().manual_seed(0), number=0)
        with torch.no_grad():
            return loss_fn(model, step)

    same, changed = terms(change=False), terms(change=True)
    assert {"inter", "intra_audio", "intra_video"} <= set(same)
    assert all(torch.equal(same[term], changed[term]) for term in ("inter", "intra_audio", "intra_video"))
    assert not torch.equal(same["recon_video"], changed["recon_video"])  # the change did reach the model


def test_every_kind_of_clip_source_meets_the_protocol_training_is_written_against(prepared):
    manifest, cache = prepared
    sources = {"in memory": load_cache(cache, progress=False), "streamed cache": stream_cache(cache),
               "streamed media": stream_files(manifest, FEATURES["tiny"])}
    for name, source in sources.items():
        assert isinstance(source, ClipSource), name
        assert isinstance(source.subset("train"), ClipSource), name
        audio, video, targets = source.batch(torch.arange(2))
        assert audio.shape[:2] == (2, 1) and video.shape[:2] == (2, 3) and targets.shape[0] == 2, name
    assert sources["in memory"].flags_known and not sources["in memory"].random_windows
    assert sources["streamed cache"].flags_known and not sources["streamed media"].flags_known
    assert sources["streamed media"].random_windows
    assert not isinstance(object(), ClipSource)
