"""Fine-tuning: heads per modality, layer-wise lr decay order, augmentations, and that it learns."""
import sys
from pathlib import Path

import pytest
import torch

from mavil_lite.engine import TrainConfig
from mavil_lite.finetune import (FinetuneConfig, MAViLClassifier, balanced_sample_weights, classifier_param_groups,
                                 finetune, predict, spec_augment)
from mavil_lite.metrics import accuracy

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


def test_distributed_predictions_count_every_clip_once(tmp_path):
    """7 clips over 2 processes: the sampler pads to 8; the gathered logits must be the 7, in order."""
    import socket
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_predict_worker, args=(2, port, str(tmp_path / "logits.pt")), nprocs=2, join=True)
    torch.manual_seed(0)
    single = predict(MAViLClassifier(model(), "audio", num_classes=3), clips(7))
    gathered = torch.load(tmp_path / "logits.pt", weights_only=True)
    assert gathered.shape == (7, 3)
    torch.testing.assert_close(gathered, single, atol=1e-5, rtol=1e-5)


def test_mixup_mixes_the_waveforms_then_computes_the_fbank(tmp_path):
    """AudioMAE's mixup: the fbank of lam * own sound + (1 - lam) * partner's (cut / zero-padded to the own length)."""
    import numpy as np
    import scipy.io.wavfile

    from mavil_lite.dataset import decode_manifest
    from mavil_lite.finetune import mix_audio
    from mavil_lite.media import FeatureSpec, load_waveform, normalize_fbank, waveform_to_fbank, window_samples

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
