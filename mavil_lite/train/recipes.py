"""YAML recipes: one file per experiment of the paper (and of the kit's own real-data runs).

A recipe has four sections, each the fields of one config dataclass, plus a list of which values are
choices rather than facts from the paper::

    task: pretrain                      # pretrain | finetune | linprobe | retrieval
    model: {size: base, inter_contrast_weight: 0.01, ...}       # MAViLConfig via model_config(size, ...)
    data: {manifest: ..., label_column: labels, features: base}  # features: a data.media.FEATURES name;
                                        # pretrain_split: train (default, test clips unseen) or all;
                                        # cache: a `mavil-lite prepare` folder to read instead of the media;
                                        # stream: true reads clips from disk as training goes (streaming.py);
                                        # report: a report.csv whose failed clips a media stream leaves out
    train: {epochs: 32, batch_size: 64, base_lr: 2.0e-4, ...}   # engine.TrainConfig
    finetune: {modality: audio, layer_decay: 0.75, ...}         # finetune.FinetuneConfig
    choices: [train.epochs, ...]        # [choice]: not given by the paper, see docs/design.md#choices

Command-line overrides use dotted paths (``train.epochs=2``) and YAML values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..data.media import FEATURES, FeatureSpec
from ..data.public_datasets import is_dataset_spec, resolve_dataset
from ..model.mavil import MAViLConfig, model_config
from .engine import TrainConfig
from .finetune import FinetuneConfig


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that ``3e-3`` is a float (as in YAML 1.2) rather than the string PyYAML's
    YAML 1.1 rules make of an exponent without a dot, which would reach a learning rate as text."""


_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                  re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """``text`` parsed as YAML by the safe loader, with YAML 1.2's floats (``1e-3`` is a number)."""
    return yaml.load(text, Loader=_YamlLoader)


# package data: the recipes ship in the wheel and are read through importlib.resources
RECIPES_DIR = resources.files("mavil_lite").joinpath("resources", "recipes")
TASKS = ("pretrain", "finetune", "linprobe", "retrieval")


@dataclass
class Recipe:
    task: str
    model: dict[str, Any]
    data: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    path: str = ""

    def model_config(self) -> MAViLConfig:
        spec = dict(self.model)
        return model_config(spec.pop("size", "base"), **spec)

    def train_config(self) -> TrainConfig:
        return _build(TrainConfig, self.train, "train")

    def finetune_config(self) -> FinetuneConfig:
        return _build(FinetuneConfig, self.finetune, "finetune")

    def features(self) -> FeatureSpec:
        name = self.data.get("features", self.model.get("size", "base"))
        if name not in FEATURES:
            raise ValueError(f"{self.path}: unknown data.features {name!r}; choose from {sorted(FEATURES)}")
        return FEATURES[name]

    def manifest(self, base: Path | None = None) -> Path:
        """The data manifest; a relative path is relative to ``base`` (default: the working directory).

        ``name:DIR`` names a public dataset in its published layout (``grid:data/GRID``), imported into a manifest
        on first use (`mavil_lite.data.public_datasets`).
        """
        spec = str(self.data["manifest"])
        name, _, folder = spec.partition(":")
        anchored = lambda path: path if path.is_absolute() or base is None else base / path
        if is_dataset_spec(spec):
            return resolve_dataset(f"{name}:{anchored(Path(folder).expanduser())}")
        return anchored(Path(spec).expanduser())


def _build(cls, values: dict[str, Any], section: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {section} field(s) {unknown}; {cls.__name__} has {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """``"train.epochs=2"`` -> ``tree["train"]["epochs"] = 2`` (the value parsed as YAML)."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} is not of the form section.field=value")
    path, value = assignment.split("=", 1)
    *parents, leaf = path.strip().split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = parse_yaml(value)


def recipe_names() -> list[str]:
    """The names of the packaged recipes (``mavil-lite recipes`` lists them)."""
    return sorted(entry.name.removesuffix(".yaml") for entry in RECIPES_DIR.iterdir() if entry.name.endswith(".yaml"))


def recipe_summary(name: str) -> str:
    """A recipe's first comment line: what it is for."""
    text = RECIPES_DIR.joinpath(f"{name}.yaml").read_text()
    return next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read a recipe (a YAML file, or the name of a packaged one, see `recipe_names`) and apply ``overrides``."""
    if not Path(path).exists() and str(path) in recipe_names():
        path = RECIPES_DIR.joinpath(f"{path}.yaml")
    elif Path(path).is_file():
        path = Path(path)
    else:
        raise FileNotFoundError(f"{path}: no such recipe file, and not a packaged recipe ({', '.join(recipe_names())})")
    tree = parse_yaml(path.read_text()) or {}
    for assignment in overrides:
        apply_override(tree, assignment)
    unknown = sorted(set(tree) - {f.name for f in fields(Recipe)})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}")
    if tree.get("task") not in TASKS:
        raise ValueError(f"{path}: task must be one of {TASKS}, got {tree.get('task')!r}")
    recipe = Recipe(**{**tree, "path": str(path)})
    recipe.model_config(), recipe.train_config(), recipe.finetune_config()  # fail now, not hours in
    return recipe
