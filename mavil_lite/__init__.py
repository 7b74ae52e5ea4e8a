"""mavil-lite: learn, run and reproduce MAViL (Masked Audio-Video Learners, NeurIPS 2023).

The stable public API is what ``__all__`` lists: the model and its sizes, loading the public MAViL checkpoints,
the paper's numbers, and the packaged recipes. Everything else is importable from its module.
"""
from .experiments.paper_numbers import load_paper_numbers, paper_ablation
from .model.interop import from_public_mavil
from .model.mavil import MAViL, MAViLConfig, create_model, mavil_base, mavil_small, mavil_tiny, model_config
from .train.recipes import load_recipe, recipe_names

__all__ = [
    "MAViL", "MAViLConfig", "create_model", "model_config", "mavil_tiny", "mavil_small", "mavil_base",
    "from_public_mavil", "load_paper_numbers", "paper_ablation", "load_recipe", "recipe_names",
]
__version__ = "0.1.0"
