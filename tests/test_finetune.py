"""Fine-tuning: heads per modality, layer-wise lr decay order, augmentations, and that it learns."""
import sys
from pathlib import Path

import pytest
import torch

from mavil_lite.evaluate.metrics import accuracy
from mavil_lite.train.engine import TrainConfig
from mavil_lite.train.finetune import (
    FinetuneConfig,
    MAViLClassifier,
    balanced_sample_weights,
    classifier_param_groups,
    finetune,
    predict,
    spec_augment,
)

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import clips, model  # noqa: E402


def labelled(n=32):
    data = clips(n)
    label = torch.arange(n) % 2
    data.audio += (label.float() * 2 - 1).view(n, 1, 1, 1)  # class 1 is louder: linearly separable
    data.targets = torch.nn.functional.one_hot(label, 2).float()
    return data


@pytest.mark.parametrize("modality, width", [("audio", 48), ("video", 48), ("av", 96)])
def test_heads_pool_the_right_tokens(modality, width):
    classifier = MAViLClassifier(model(), modality, num_classes=3)
    data = clips(4)
    audio, video, _ = data.batch(torch.arange(4))
    assert classifier.features(audio, video).shape == (4, width)
    assert classifier(audio, video).shape == (4, 3)


def test_av_head_needs_both_modalities():
    with pytest.raises(ValueError, match="needs a backbone"):
        MAViLClassifier(model(modalities=("audio",), inter_contrast_weight=0, intra_contrast_weight=0), "av", 2)


def test_layer_decay_gives_deeper_layers_larger_lr():
    classifier = MAViLClassifier(model(audio_depth=2, video_depth=2), "av", 2)
    groups = classifier_param_groups(classifier, TrainConfig(), layer_decay=0.5)
    scale = {name: g["lr_scale"] for g in groups for name, p in classifier.named_parameters()
             if any(p is q for q in g["params"])}
    stem = scale["backbone.encoders.audio.patch_embed.proj.weight"]
    block0, block1 = scale["backbone.encoders.audio.blocks.0.attn.qkv.weight"], scale["backbone.encoders.video.blocks.1.mlp.fc1.weight"]
    fusion, head = scale["backbone.fusion.0.attn.qkv.weight"], scale["head.weight"]
    assert stem < block0 < block1 < fusion < head == 1.0
    assert block0 / stem == pytest.approx(2.0)


def test_spec_augment_masks_one_band_and_one_span():
    torch.manual_seed(0)
    x = torch.ones(3, 1, 100, 40)
    y = spec_augment(x, freq_mask=10, time_mask=20)
    assert y.shape == x.shape and (y == 0).any() and (y[0].sum(dim=(0, 1)) > 0).sum() >= 30


def test_balanced_weights_favour_rare_labels():
    targets = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=torch.float)
    w = balanced_sample_weights(targets)
    assert w[3] == pytest.approx(3 * w[0])


@pytest.mark.parametrize("linear_probe", [True, False])
def test_finetune_learns_a_separable_task(linear_probe):
    data = labelled()
    classifier = MAViLClassifier(model(), "audio", num_classes=2)
    before = accuracy(predict(classifier, data), data.targets)
    frozen = classifier.backbone.encoders["audio"].blocks[0].mlp.fc1.weight.clone()
    config = FinetuneConfig(modality="audio", linear_probe=linear_probe, mixup=0.0, freq_mask=4, time_mask=8)
    result = finetune(classifier, data, TrainConfig(epochs=15, batch_size=8, base_lr=0.2, warmup_epochs=1,
                                                    weight_decay=0.0), config, progress=False)
    after = accuracy(predict(classifier, data), data.targets)
    assert after >= 0.9 and after > before and result.history["loss"][-1] < result.history["loss"][0]
    unchanged = torch.equal(frozen, classifier.backbone.encoders["audio"].blocks[0].mlp.fc1.weight)
    assert unchanged == linear_probe


def _predict_worker(rank, world, port, out):
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from mavil_lite.distributed import init_distributed
    init_distributed("cpu")
    torch.manual_seed(0)
    logits = predict(MAViLClassifier(model(), "audio", num_classes=3), clips(7), batch_size=2)
    if rank == 0:
        torch.save(logits, out)
    torch.distributed.destroy_process_group()


def _spawn_two_gloo_processes(worker, out: str) -> None:
    """Run ``worker(rank, world=2, port, out)`` in 2 processes on a free local port."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, out), nprocs=2, join=True)


def test_distributed_predictions_count_every_clip_once(tmp_path):
    """7 clips over 2 processes: the sampler pads to 8; the gathered logits must be the 7, in order."""
    _spawn_two_gloo_processes(_predict_worker, str(tmp_path / "logits.pt"))
    torch.manual_seed(0)
    single = predict(MAViLClassifier(model(), "audio", num_classes=3), clips(7))
    gathered = torch.load(tmp_path / "logits.pt", weights_only=True)
    assert gathered.shape == (7, 3)
    torch.testing.assert_close(gathered, single, atol=1e-5, rtol=1e-5)


def test_mixup_mixes_the_waveforms_then_computes_the_fbank(tmp_path):
    """AudioMAE's mixup: the fbank of lam * own sound + (1 - lam) * partner's (cut / zero-padded to the own length)."""
    import numpy as np
    import scipy.io.wavfile

    from mavil_lite.data.dataset import decode_manifest
    from mavil_lite.data.media import FeatureSpec, load_waveform, normalize_fbank, waveform_to_fbank, window_samples
    from mavil_lite.train.finetune import mix_audio

    rng = np.random.default_rng(0)
    seconds = {"a.wav": 1.0, "b.wav": 2.5, "c.wav": 6.0}  # shorter and longer than the 3.84 s window
    for name, duration in seconds.items():
        scipy.io.wavfile.write(tmp_path / name, 16000, (0.1 * rng.standard_normal(int(16000 * duration))).astype(np.float32))
    (tmp_path / "m.csv").write_text("file,labels,split\n" + "".join(f"{n},{n[0]},train\n" for n in seconds))
    spec = FeatureSpec(audio_frames=384, mel_bins=64, video_frames=4, video_fps=1.0, frame_size=64)
    clips = decode_manifest(tmp_path / "m.csv", spec, progress=False, keep_waveforms=True)
    assert clips.waveforms.shape == (3, window_samples(spec)) 
    assert clips.waveform_lengths.tolist() == [16000, 40000, window_samples(spec)]  # cut where the fbank stops reading
    assert decode_manifest(tmp_path / "m.csv", spec, progress=False).waveforms is None  # only when asked

    index = torch.tensor([0, 1, 2])
    audio, _, _ = clips.batch(index)
    assert torch.allclose(mix_audio(clips, index, audio, 1.0), audio, atol=1e-4)  # lam = 1: the clips themselves
    mixed = mix_audio(clips, index, audio, 0.3)
    sounds = [load_waveform(tmp_path / n)[0] for n in seconds]
    own, partner = sounds[0], sounds[2][:16000]  # clip 0 pairs with clip 2, cut to clip 0's 1 s
    expected = normalize_fbank(waveform_to_fbank((0.3 * own + 0.7 * partner).unsqueeze(0), spec))
    assert torch.allclose(mixed[0, 0], expected, atol=1e-3)
    own, partner = sounds[2][:window_samples(spec)], torch.nn.functional.pad(sounds[0], (0, window_samples(spec) - 16000))
    expected = normalize_fbank(waveform_to_fbank((0.3 * own + 0.7 * partner).unsqueeze(0), spec))
    assert torch.allclose(mixed[2, 0], expected, atol=1e-3)  # the short partner is zero-padded
    feature_mix = 0.3 * audio + 0.7 * audio.flip(0)
    assert (mixed[0] - feature_mix[0]).abs().max() > 0.1  # not the same thing as mixing log-mel features
    subset = clips.subset("train")
    assert subset.waveforms.shape == clips.waveforms.shape and subset.features == spec


def test_clips_lacking_what_the_head_reads_teach_it_nothing():
    lacking = torch.arange(16) % 4 == 0

    def fine_tuned(garbage: float, marked: bool) -> dict:
        data = labelled(16)
        data.audio[lacking], data.targets[lacking] = garbage, data.targets[lacking].flip(1)
        if marked:
            data.has_audio = ~lacking
        classifier = MAViLClassifier(model(), "audio", num_classes=2)
        config = FinetuneConfig(modality="audio", mixup=1.0, freq_mask=4, time_mask=8)
        finetune(classifier, data, TrainConfig(epochs=2, batch_size=8, base_lr=0.05, warmup_epochs=0), config,
                 progress=False)
        return classifier.state_dict()

    def same(a, b) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    assert same(fine_tuned(0.0, marked=True), fine_tuned(5.0, marked=True))  # whatever they hold, with mixup too
    assert not same(fine_tuned(0.0, marked=False), fine_tuned(5.0, marked=False))  # unmarked, they count


HEADS = ("audio", "video", "av")
DDP_TRAIN = TrainConfig(epochs=1, batch_size=4, base_lr=0.05, warmup_epochs=0)  # global batch 4: 4 steps on 16 clips


def _fine_tune_without_random_augmentation(modality, train_config, ctx=None):
    """Mixup pairs clips within a process's batch and SpecAugment draws from a per-process RNG: only a run without
    them can equal one process."""
    classifier = MAViLClassifier(model(), modality, num_classes=2)
    config = FinetuneConfig(modality=modality, mixup=0.0, freq_mask=0, time_mask=0)
    result = finetune(classifier, labelled(16), train_config, config, ctx=ctx, progress=False)
    return classifier, result


def _finetune_worker(rank, world, port, out):
    import os
    from dataclasses import replace

    from mavil_lite.distributed import init_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    runs = {}
    for modality in HEADS:
        classifier, result = _fine_tune_without_random_augmentation(
            modality, replace(DDP_TRAIN, batch_size=DDP_TRAIN.batch_size // world), ctx)
        runs[modality] = {"model": classifier.state_dict(), "loss": result.history["loss"],
                          "logits": predict(classifier, labelled(16))}
    if rank == 0:
        torch.save(runs, out)
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_fine_tune_every_head_like_one_process(tmp_path):
    """Under DDP every parameter the classifier holds must get a gradient in every step (no unused-parameter search)."""
    _spawn_two_gloo_processes(_finetune_worker, str(tmp_path / "ddp.pt"))
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for modality in HEADS:
            single, result = _fine_tune_without_random_augmentation(modality, DDP_TRAIN)
            assert len(result.history["loss"]) == 4
            for name, value in single.state_dict().items():
                other = ddp[modality]["model"][name]
                if name.endswith("attn.qkv.bias"):  # the key bias's gradient is 0 up to rounding: see test_pretrain
                    dim = value.shape[0] // 3
                    value, other = torch.cat([value[:dim], value[2 * dim:]]), torch.cat([other[:dim], other[2 * dim:]])
                torch.testing.assert_close(other, value, atol=2e-5, rtol=1e-4, msg=f"{modality}: {name}")
            torch.testing.assert_close(torch.tensor(ddp[modality]["loss"]), torch.tensor(result.history["loss"]),
                                       atol=1e-5, rtol=1e-5)
            logits = predict(single, labelled(16))
            torch.testing.assert_close(ddp[modality]["logits"], logits, atol=1e-5, rtol=1e-5)
            data = labelled(16)
            assert accuracy(ddp[modality]["logits"], data.targets) == accuracy(logits, data.targets)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("modality, held", [("audio", ("encoders.audio.",)), ("video", ("encoders.video.",)),
                                            ("av", ("encoders.audio.", "encoders.video.", "fusion."))])
def test_a_classifier_holds_only_what_its_head_reads_and_its_checkpoint_loads_back(tmp_path, modality, held):
    from mavil_lite.train.runners import load_classifier, load_model

    backbone = model()
    whole = set(backbone.state_dict())
    classifier = MAViLClassifier(backbone, modality, num_classes=2)
    names = list(classifier.state_dict())
    inner = [n[len("backbone."):] for n in names if n.startswith("backbone.")]
    assert set(names) - {f"backbone.{n}" for n in inner} == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert inner and all(n.startswith(held) for n in inner) and all(any(n.startswith(h) for n in inner) for h in held)
    assert set(backbone.state_dict()) == whole  # the caller's model keeps its decoders and projections
    ours, theirs = classifier.backbone.state_dict(), backbone.state_dict()
    assert all(torch.equal(value, theirs[name]) for name, value in ours.items())
    first = classifier.backbone.encoders[held[0].split(".")[1]].cls_token
    assert first.data_ptr() != backbone.encoders[held[0].split(".")[1]].cls_token.data_ptr()  # a copy: heads of
    # one backbone train independently

    data = labelled(16)
    config = FinetuneConfig(modality=modality, mixup=0.0, freq_mask=4, time_mask=8)
    finetune(classifier, data, TrainConfig(epochs=1, batch_size=8, warmup_epochs=0), config,
             checkpoint=tmp_path / "c.pt", progress=False)
    loaded = load_classifier(tmp_path / "c.pt")
    torch.testing.assert_close(predict(loaded, data), predict(classifier, data), atol=0, rtol=0)
    modalities = ("audio", "video") if modality == "av" else (modality,)
    assert load_model(tmp_path / "c.pt").config.modalities == modalities


def _weight_decay_by_name(module, groups) -> dict[str, float]:
    decay = {}
    for group in groups:
        for param in group["params"]:
            name = next(n for n, p in module.named_parameters() if p is param)
            assert name not in decay, f"{name} is in two groups"
            decay[name] = group["weight_decay"]
    return decay


def _assert_decay_only_on_weight_matrices(module, decay, weight_decay):
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert set(decay) == trainable
    for name, param in module.named_parameters():
        if name not in decay:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in ("cls_token", "pos_embed",
                                                                                       "mask_token")
        assert decay[name] == (0.0 if exempt else weight_decay), name


@pytest.mark.parametrize("layer_decay", [0.75, 1.0], ids=["layer decay", "no layer decay"])
def test_weight_decay_spares_tokens_position_tables_norms_and_biases_when_fine_tuning(layer_decay):
    classifier = MAViLClassifier(model(), "av", num_classes=2)
    decay = _weight_decay_by_name(classifier, classifier_param_groups(classifier, TrainConfig(weight_decay=0.05),
                                                                      layer_decay))
    for name in ("backbone.encoders.audio.cls_token", "backbone.encoders.video.cls_token",
                 "backbone.encoders.audio.blocks.0.norm1.weight", "backbone.fusion.0.attn.qkv.bias", "head.bias"):
        assert decay[name] == 0.0, name
    for name in ("backbone.encoders.audio.patch_embed.proj.weight", "backbone.fusion.0.mlp.fc1.weight", "head.weight"):
        assert decay[name] == 0.05, name
    assert "backbone.encoders.audio.pos_embed" not in decay  # fixed sin-cos table: not trained at all
    _assert_decay_only_on_weight_matrices(classifier, decay, 0.05)


def test_weight_decay_spares_tokens_position_tables_norms_and_biases_when_pre_training():
    from mavil_lite.train.engine import weight_decay_groups

    backbone = model()
    decay = _weight_decay_by_name(backbone, weight_decay_groups(backbone, 0.05))
    assert decay["encoders.audio.cls_token"] == decay["decoders.video.mask_token"] == 0.0
    assert decay["inter_proj.audio.0.weight"] == decay["decoders.audio.norm.bias"] == 0.0
    assert decay["decoders.audio.pred.weight"] == decay["encoders.video.patch_embed.proj.weight"] == 0.05
    _assert_decay_only_on_weight_matrices(backbone, decay, 0.05)


def test_the_logged_lr_is_the_heads_under_layer_decay(tmp_path):
    import json

    train_config = TrainConfig(epochs=1, batch_size=8, base_lr=0.1, warmup_epochs=0, log_every=1)
    config = FinetuneConfig(modality="audio", layer_decay=0.5, mixup=0.0, freq_mask=4, time_mask=8)
    finetune(MAViLClassifier(model(), "audio", 2), labelled(16), train_config, config, log_path=tmp_path / "log.jsonl",
             progress=False)
    first = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(train_config.lr())  # no warm-up: step 0 runs at the peak, scale 1 for the head


def test_loss_and_score_refuse_targets_on_which_the_old_multi_label_rules_disagreed():
    """A row of [0.5, 0.5] sums to 1 (single-label for the loss and the score) but has two positives (multi-label
    for the probe); targets must be multi-hot, and every caller now decides by `metrics.is_multilabel`."""
    from mavil_lite.train.runners import score_classifier

    data = labelled(16)
    data.targets[0] = 0.5
    classifier = MAViLClassifier(model(), "audio", num_classes=2)
    with pytest.raises(ValueError, match="multi-hot"):
        finetune(classifier, data, TrainConfig(epochs=1, batch_size=8), FinetuneConfig(mixup=0.0), progress=False)
    with pytest.raises(ValueError, match="multi-hot"):
        score_classifier(classifier, data)


@pytest.mark.filterwarnings("ignore:.*usable for:UserWarning")  # RawClips warns of each silent clip it reads
def test_silent_clips_streamed_from_media_files_add_nothing_to_an_audio_heads_loss(tmp_path):
    """A stream of media files learns that a clip has no sound only when it reads it (``flags_known`` False): each
    step's loss is still the mean over the clips with sound alone, and the silent clips' labels change no weight."""
    import torch.nn.functional as F
    from media_files import numbered_frames, tone, write_media

    from mavil_lite.data.cache import preset_spec
    from mavil_lite.data.streaming import stream_files
    from mavil_lite.distributed import DistributedContext
    from mavil_lite.model.mavil import create_model
    from mavil_lite.train.engine import micro_batches

    write_media(tmp_path / "loud.mp4", numbered_frames(16), 8, [tone(1000, 2.0)])  # the first clip: audio and video
    write_media(tmp_path / "mute.mp4", numbered_frames(16), 8)  # no audio stream
    write_media(tmp_path / "high.mp4", numbered_frames(16)[::-1].copy(), 8, [tone(500, 2.0)])
    write_media(tmp_path / "mute2.mp4", numbered_frames(16)[::-1].copy(), 8)
    (tmp_path / "m.csv").write_text("file,labels\nloud.mp4,a\nmute.mp4,a\nhigh.mp4,b\nmute2.mp4,a\n")  # flipped: both b
    train_config = TrainConfig(epochs=3, batch_size=4, base_lr=1.0, warmup_epochs=0)  # each step: all 4 clips
    config = FinetuneConfig(modality="audio", mixup=0.0, freq_mask=0, time_mask=0)

    def fine_tune(flip_silent_labels: bool):
        stream = stream_files(tmp_path / "m.csv", preset_spec("tiny"))
        silent = torch.tensor([Path(file).name.startswith("mute") for file in stream.files])  # (N,)
        assert stream.flags_known is False and bool(stream.has_audio.all())  # unknown until read
        if flip_silent_labels:
            stream.targets[silent] = stream.targets[silent].flip(1)
        torch.manual_seed(0)
        backbone = create_model("tiny", audio_depth=1, video_depth=1, fusion_depth=1, decoder_depth=1)
        classifier = MAViLClassifier(backbone, "audio", num_classes=2)
        logits, forward = [], classifier.forward

        def spy(audio=None, video=None):
            out = forward(audio, video)
            logits.append(out.detach().clone())  # (B, 2)
            return out

        classifier.forward = spy
        losses = finetune(classifier, stream, train_config, config, progress=False).history["loss"]
        assert torch.equal(stream.has_audio, ~silent)  # the reads found the silent clips
        schedule = list(micro_batches(len(stream), train_config, DistributedContext(), 1, 0, train_config.epochs))
        assert len(schedule) == len(logits) == len(losses) == 3
        for part, step_logits, loss in zip(schedule, logits, losses):
            heard = ~silent[part.index]  # (B,)
            assert 0 < int(heard.sum()) < len(heard)
            assert loss == F.cross_entropy(step_logits[heard], stream.targets[part.index][heard]).item()
        return losses, classifier.state_dict()

    (losses, weights), (flipped_losses, flipped_weights) = fine_tune(False), fine_tune(True)
    assert losses == flipped_losses and len(set(losses)) == len(losses)  # the same, and training moved the head
    assert all(torch.equal(weights[name], flipped_weights[name]) for name in weights)


def test_a_batch_norm_head_removes_what_every_clips_features_share_and_loads_back(tmp_path):
    """The cpu preset's head [choice: ft-head-norm]: LayerNorm (per clip) keeps a component that every clip shares,
    BatchNorm subtracts it, so the head sees only the differences between clips."""
    from mavil_lite.train.runners import load_classifier

    generator = torch.Generator().manual_seed(0)
    shared = 50 * torch.randn(48, generator=generator)  # a young model's pooled tokens: one big common direction
    features = shared + torch.randn(16, 48, generator=generator)  # (B, width): small differences between clips
    layer = MAViLClassifier(model(), "audio", num_classes=2)
    batch = MAViLClassifier(model(), "audio", num_classes=2, head_norm="batch").train()
    cosine = torch.nn.functional.cosine_similarity
    layer_normed, batch_normed = layer.fc_norm(features), batch.fc_norm(features)
    assert cosine(layer_normed[0], layer_normed[1], dim=0) > 0.99  # still almost the same vector for every clip
    assert batch_normed.mean(dim=0).abs().max() < 1e-4 and batch_normed.std(dim=0).mean() == pytest.approx(1, abs=0.05)
    assert abs(cosine(batch_normed[0], batch_normed[1], dim=0)) < 0.5
    with pytest.raises(ValueError, match="head_norm"):
        MAViLClassifier(model(), "audio", num_classes=2, head_norm="group")

    data = labelled(16)
    config = FinetuneConfig(modality="audio", mixup=0.0, freq_mask=4, time_mask=8, head_norm="batch")
    with pytest.raises(ValueError, match="head_norm='batch' but the fine-tuning config says 'layer'"):
        finetune(batch, data, TrainConfig(epochs=1, batch_size=8), FinetuneConfig(mixup=0.0), progress=False)
    with pytest.raises(ValueError, match="at least 2 clips"):
        finetune(batch, data, TrainConfig(epochs=1, batch_size=1, warmup_epochs=0), config, progress=False)
    finetune(batch, data, TrainConfig(epochs=2, batch_size=8, warmup_epochs=0), config, checkpoint=tmp_path / "c.pt",
             progress=False)
    loaded = load_classifier(tmp_path / "c.pt")
    assert isinstance(loaded.fc_norm, torch.nn.BatchNorm1d) and loaded.head_norm == "batch"
    assert loaded.fc_norm.running_mean.abs().sum() > 0  # the statistics of training came back with it
    torch.testing.assert_close(predict(loaded, data), predict(batch, data), atol=0, rtol=0)
