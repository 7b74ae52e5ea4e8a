"""Layer 3, evaluate: metrics (mAP, accuracy, retrieval), linear probes on frozen features, and the diagnostics that
say whether a run learned. Imports layers below only."""
