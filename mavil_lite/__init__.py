"""mavil-lite: learn, run and reproduce MAViL (Masked Audio-Video Learners, NeurIPS 2023)."""
from .interop import from_public_mavil
from .model import MAViL, MAViLConfig, create_model, mavil_base, mavil_small, mavil_tiny, model_config

__all__ = [
    "MAViL", "MAViLConfig", "create_model", "model_config", "mavil_tiny", "mavil_small", "mavil_base",
    "from_public_mavil",
]
__version__ = "0.1.0"
