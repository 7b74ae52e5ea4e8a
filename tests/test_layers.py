"""The package's layers: every module imports only from its own layer or the layers below it."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mavil_lite"
# bottom to top; README "Layout" says what each holds
LAYERS = ["distributed", "data", "model", "evaluate", "train", "experiments", "teach", "cli"]


def layer_of(module: str) -> int:
    """The layer of a dotted module path under mavil_lite ('data.media' -> 1); the package itself is the top."""
    first = module.split(".")[0]
    return LAYERS.index(first) if first in LAYERS else len(LAYERS)


def imports_of(path: Path) -> set[str]:
    """The kit modules a file imports, as dotted paths under mavil_lite."""
    here = path.relative_to(PACKAGE).with_suffix("").parts[:-1]  # the file's package, e.g. ('data',)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - (node.level - 1)]) if node.level > 1 else list(here)
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mavil_lite."):
            found.add(node.module.removeprefix("mavil_lite."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("mavil_lite.") for a in node.names if a.name.startswith("mavil_lite.")}
    return {m for m in found if m}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_nothing_from_a_layer_above_its_own(path):
    own = layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    upward = {m: LAYERS[layer_of(m)] if layer_of(m) < len(LAYERS) else "mavil_lite" for m in imports_of(path)
              if layer_of(m) > own}
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {LAYERS[own]}) imports from above: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    assert layer_of("data.media") < layer_of("train.engine")
    assert imports_of(PACKAGE / "data" / "cache.py") >= {"data.media", "data.dataset"}
    assert "distributed" in imports_of(PACKAGE / "model" / "losses.py")


def test_every_module_sits_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in LAYERS and p.name != "__init__.py"]
    assert not loose, f"modules outside the layers: {loose}"
