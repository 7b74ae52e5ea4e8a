"""Layer 2, model: MAViL itself. Encoders, decoders, masking, losses, the MAViL module and its sizes, the public
checkpoints (interop), ViT checkpoints for initialisation, and the analytic FLOP count. Imports layers below only."""
