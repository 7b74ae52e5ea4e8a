"""The recipe runners end to end on a few synthetic clips: pre-train, stage 2, probe, fine-tune, retrieval."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import average_precision_score, top_k_accuracy_score
from sklearn.metrics.pairwise import cosine_similarity

from mavil_lite.data.synthetic import generate_synthetic_dataset
from mavil_lite.evaluate.linear_probe import embed_dataset
from mavil_lite.train.finetune import predict
from mavil_lite.train.recipes import load_recipe
from mavil_lite.train.runners import (
    load_classifier,
    load_clips,
    load_model,
    run_finetune,
    run_pretrain,
    run_retrieval,
    score_classifier,
)

SMALL_TRAIN = {"epochs": 1, "batch_size": 8, "base_lr": 0.01, "warmup_epochs": 0}


@pytest.fixture(scope="module")
def recipe_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    manifest = generate_synthetic_dataset(root / "data", num_clips=24, seed=0, progress=False)
    model = {"size": "tiny", "audio_depth": 1, "video_depth": 1, "decoder_depth": 1,
             "inter_contrast_weight": 0.01, "intra_contrast_weight": 0.01}
    data = {"manifest": str(manifest), "features": "tiny"}
    files = {}
    for task, extra in [("pretrain", {}), ("finetune", {"finetune": {"modality": "av", "mixup": 0.5}}),
                        ("linprobe", {"finetune": {"modality": "audio", "linear_probe": True}}), ("retrieval", {})]:
        path = root / f"{task}.yaml"
        path.write_text(yaml.safe_dump({"task": task, "model": model, "data": data, "train": SMALL_TRAIN, **extra}))
        files[task] = path
    return root, files


def test_pretrain_stage2_then_evaluate(recipe_files):
    root, files = recipe_files
    stage1 = run_pretrain(load_recipe(files["pretrain"]), root / "stage1", device="cpu", progress=False)
    assert (root / "stage1" / "log.jsonl").read_text().count("\n") >= 1
    stage2 = run_pretrain(load_recipe(files["pretrain"]), root / "stage2", teacher=stage1, device="cpu", progress=False)
    student = load_model(stage2)
    assert student.config.target == "teacher"
    for name, init in [("linprobe", stage2), ("finetune", stage1)]:
        metrics = run_finetune(load_recipe(files[name]), init, root / name, device="cpu", progress=False)
        assert json.loads((root / name / "metrics.json").read_text()) == metrics
        clips = load_clips(load_recipe(files[name])).subset("test")
        classifier = load_classifier(root / name / "checkpoint.pt")
        assert score_classifier(classifier, clips) == metrics
        # the same predictions scored by scikit-learn: AP per class that has a positive, averaged
        scores, targets = predict(classifier, clips).numpy(), clips.targets.numpy()  # (N, C) each
        scored = targets.sum(axis=0) > 0
        assert metrics["metric"] == "mAP" and metrics["classes_dropped"] == int((~scored).sum())
        assert metrics["value"] == pytest.approx(average_precision_score(targets[:, scored], scores[:, scored]))
    retrieval = run_retrieval(load_recipe(files["retrieval"]), stage1, progress=False)
    assert set(retrieval) == {"a2v", "v2a"}
    # R@1 by scikit-learn on the same embeddings: the share of audio queries whose own video is the most similar
    model, test = load_model(stage1).eval(), load_clips(load_recipe(files["retrieval"])).subset("test")
    audio, video = (embed_dataset(model, test, f"{m}_contrast").numpy() for m in ("audio", "video"))  # (N, D) each
    pairs = np.arange(len(test))
    assert retrieval["a2v"]["R@1"] == pytest.approx(
        top_k_accuracy_score(pairs, cosine_similarity(audio, video), k=1, labels=pairs))


def test_cli_runs_the_same_functions(recipe_files, capsys):
    from mavil_lite.cli import main

    root, files = recipe_files
    assert main(["pretrain", "--recipe", str(files["pretrain"]), "--out", str(root / "cli"), "--device", "cpu"]) == 0
    assert (root / "cli" / "checkpoint.pt").exists()
    assert main(["linprobe", "--recipe", str(files["linprobe"]), "--init", str(root / "cli" / "checkpoint.pt"),
                 "--out", str(root / "cli_probe"), "--device", "cpu", "--modality", "video"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metric"] == "mAP"
    assert main(["evaluate", "--recipe", str(files["retrieval"]), "--ckpt", str(root / "cli" / "checkpoint.pt"),
                 "--task", "retrieval"]) == 0
    assert "a2v" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["pretrain", "--recipe", str(root / "missing.yaml"), "--out", str(root / "x")]) == 2


@pytest.mark.parametrize("cuda, expected", [(True, "cuda:0"), (False, "cpu")], ids=["a GPU", "no GPU"])
def test_evaluate_device_auto_means_the_gpu_when_there_is_one(monkeypatch, cuda, expected):
    """As every other command: `--device auto` is this process's GPU when there is one, else the CPU."""
    import mavil_lite.cli as cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # no GPU to select on this machine
    devices = {}
    monkeypatch.setattr(cli, "_recipe", lambda args: None)
    monkeypatch.setattr(cli, "run_retrieval",
                        lambda recipe, ckpt, device, num_workers: devices.update(retrieval=device))
    monkeypatch.setattr(cli, "load_clips", lambda recipe, workers: SimpleNamespace(subset=lambda split: split))
    monkeypatch.setattr(cli, "load_classifier", lambda path: None)
    monkeypatch.setattr(cli, "score_classifier",
                        lambda classifier, clips, device: devices.update(classification=device))
    for task in ("retrieval", "classification"):
        assert cli.main(["evaluate", "--recipe", "r.yaml", "--ckpt", "c.pt", "--task", task]) == 0
    assert devices == {"retrieval": expected, "classification": expected}


def test_a_recipe_trains_from_a_prepared_cache(recipe_files, capsys):
    from mavil_lite.cli import main
    from mavil_lite.data.cache import prepare_cache

    root, files = recipe_files
    manifest = yaml.safe_load(files["pretrain"].read_text())["data"]["manifest"]
    prepare_cache(manifest, root / "cache", preset="tiny", progress=False)
    from_cache = load_clips(load_recipe(files["linprobe"], [f"data.cache={root / 'cache'}"]), progress=False)
    decoded = load_clips(load_recipe(files["linprobe"]), progress=False)
    assert from_cache.files == decoded.files and from_cache.classes == decoded.classes
    assert (from_cache.targets == decoded.targets).all() and (from_cache.video == decoded.video).all()
    assert (from_cache.audio - decoded.audio).abs().max() < 1e-2  # the cache stores the fbank in float16
    assert main(["pretrain", "--recipe", str(files["pretrain"]), "--out", str(root / "from_cache"), "--device", "cpu",
                 f"data.cache={root / 'cache'}"]) == 0
    assert (root / "from_cache" / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="do not match"):
        load_clips(load_recipe(files["pretrain"], [f"data.cache={root / 'cache'}", "data.features=small"]))


def test_an_audio_only_dataset_pre_trains_an_audio_model(recipe_files, tmp_path):
    import numpy as np
    import scipy.io.wavfile

    rng = np.random.default_rng(0)
    for i in range(10):
        scipy.io.wavfile.write(tmp_path / f"{i}.wav", 16000, (0.1 * rng.standard_normal(32000)).astype(np.float32))
    (tmp_path / "m.csv").write_text("file,split\n" + "".join(f"{i}.wav,train\n" for i in range(10)))
    _, files = recipe_files
    recipe = load_recipe(files["pretrain"], [f"data.manifest={tmp_path / 'm.csv'}"])
    assert recipe.model_config().modalities == ("audio", "video") and recipe.model_config().inter_contrast_weight
    model = load_model(run_pretrain(recipe, tmp_path / "run", device="cpu", progress=False))
    assert model.config.modalities == ("audio",) and model.config.inter_contrast_weight == 0.0
    assert model.config.intra_contrast_weight == 0.01  # two masked views of the sound still contrast


def test_the_chain_reuses_checkpoints_that_torchrun_launches_wrote(recipe_files, tmp_path):
    """pretrain.ipynb's paper-scale launches write checkpoints/<run>/checkpoint.pt; the table notebooks load those."""
    from mavil_lite.cli import build_parser
    from mavil_lite.experiments.presets import get_preset
    from mavil_lite.experiments.reproduction import pretrain_chain, torchrun_commands

    _, files = recipe_files
    preset = get_preset("smoke")
    commands = torchrun_commands(preset, tmp_path / "seed0", nproc_per_node=1, workers=3)
    outs = [Path(c[c.index("--out") + 1]) for c in commands]
    launched = build_parser().parse_args(commands[1][commands[1].index("mavil_lite.cli") + 1:])
    assert launched.workers == 3 and launched.teacher == str(outs[0] / "checkpoint.pt")
    assert [o.name for o in outs] == ["av_inter_intra", "stage2_iter1"]
    assert commands[1][commands[1].index("--teacher") + 1] == str(outs[0] / "checkpoint.pt")
    stage1 = run_pretrain(load_recipe(files["pretrain"]), outs[0], device="cpu", progress=False)  # as a launch would
    run_pretrain(load_recipe(files["pretrain"]), outs[1], teacher=stage1, device="cpu", progress=False)
    models, histories = pretrain_chain(None, preset, tmp_path / "seed0", progress=False)  # no data: nothing trains
    assert list(models) == ["av_inter_intra", "stage2_iter1"] and models["stage2_iter1"].config.target == "teacher"
    assert all(h["loss"] and h["wall_s"] > 0 for h in histories.values())
    reference = load_model(outs[1] / "checkpoint.pt").state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in models["stage2_iter1"].state_dict().items())
