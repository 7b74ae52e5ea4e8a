"""Every shipped recipe loads into valid configs; overrides and mistakes behave."""
import pytest

from mavil_lite.cli import main
from mavil_lite.train.recipes import load_recipe, recipe_names

RECIPES = recipe_names()


def test_every_paper_experiment_has_a_recipe():
    assert {"as2m_pretrain", "as20k_finetune", "as2m_finetune", "vggsound_finetune", "esc50_finetune",
            "spc1_finetune", "retrieval_msrvtt", "retrieval_youcook", "grid_pretrain", "grid_linprobe_transcript",
            "grid_linprobe_digit", "grid_retrieval", "fsdd_linprobe"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_its_configs(name):
    recipe = load_recipe(name)
    config = recipe.model_config()
    assert recipe.features().audio_frames == config.audio_size[0]
    assert recipe.features().mel_bins == config.audio_size[1]
    for choice in recipe.choices:
        section, key = choice.split(".")
        assert key in getattr(recipe, section), f"{name}: choice {choice} names no value"


def test_paper_pretrain_recipe_is_the_paper_model():
    recipe = load_recipe("as2m_pretrain")
    config = recipe.model_config()
    assert (config.dim, config.audio_depth, config.fusion_depth, config.mask_ratio) == (768, 12, 2, 0.8)
    assert recipe.train_config().lr(world_size=8) == pytest.approx(2e-4 * 512 / 256)


def test_overrides_and_errors(tmp_path):
    recipe = load_recipe("grid_pretrain", ["train.epochs=2", "model.mask_ratio=0.5"])
    assert recipe.train_config().epochs == 2 and recipe.model_config().mask_ratio == 0.5
    with pytest.raises(ValueError, match="unknown train field"):
        load_recipe("grid_pretrain", ["train.epoch=2"])
    with pytest.raises(FileNotFoundError, match="no such recipe file, and not a packaged recipe .*grid_pretrain"):
        load_recipe("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: dance\nmodel: {}\ndata: {}\n")
    with pytest.raises(ValueError, match="task must be"):
        load_recipe(bad)


def test_an_exponent_without_a_dot_is_a_number_in_files_and_overrides(tmp_path):
    # PyYAML's YAML 1.1 rules read 3e-3 as the string "3e-3", which failed only when the lr was first computed
    recipe = load_recipe("grid_pretrain", ["train.base_lr=3e-3", "model.contrast_temperature=1E-1"])
    assert recipe.train_config().base_lr == 0.003 and recipe.model_config().contrast_temperature == 0.1
    written = tmp_path / "exp.yaml"
    written.write_text("task: pretrain\nmodel: {size: tiny}\ndata: {}\ntrain: {base_lr: 2e-4, epochs: 3}\n")
    train = load_recipe(written).train_config()
    assert (train.base_lr, train.epochs) == (2e-4, 3) and isinstance(train.epochs, int)


def test_paper_recipe_runs_forward_and_backward_on_paper_sized_inputs():
    import torch

    from mavil_lite.model.mavil import MAViL

    recipe = load_recipe("as2m_pretrain")
    torch.manual_seed(0)
    model = MAViL(recipe.model_config())
    counts = {name: sum(p.numel() for p in part.parameters() if p.requires_grad) / 1e6
              for name, part in [("audio", model.encoders["audio"]), ("video", model.encoders["video"]),
                                 ("fusion", model.fusion)]}
    assert counts["audio"] == pytest.approx(85.3, abs=0.1) and counts["video"] == pytest.approx(86.2, abs=0.1)
    assert counts["fusion"] == pytest.approx(14.2, abs=0.1)
    f = recipe.features()
    out = model(torch.randn(2, 1, f.audio_frames, f.mel_bins), torch.randn(2, 3, f.video_frames, f.frame_size, f.frame_size))
    assert out["preds"]["audio"].shape == (2, 512, 256) and out["preds"]["video"].shape == (2, 784, 1536)
    out["loss"].backward()
    assert model.encoders["video"].blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_the_recipes_command_lists_every_packaged_recipe_with_its_purpose(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == RECIPES
    assert any("AudioSet-20K fine-tuning" in line for line in lines if line.startswith("as20k_finetune"))


def test_a_recipe_naming_a_public_dataset_imports_it_relative_to_the_working_directory(tmp_path, monkeypatch):
    fsdd = tmp_path / "data" / "free-spoken-digit-dataset"
    (fsdd / "recordings").mkdir(parents=True)
    (fsdd / "manifest.csv").write_text("file,digit,split\nrecordings/0_george_0.wav,0,test\n")  # a kit-layout copy
    monkeypatch.chdir(tmp_path)
    assert load_recipe("fsdd_linprobe").manifest().resolve() == (fsdd / "manifest.csv").resolve()
    with pytest.raises(FileNotFoundError, match="elsewhere"):  # a relative folder is anchored at `base`
        load_recipe("fsdd_linprobe").manifest(base=tmp_path / "elsewhere")
