"""Layer 5, experiments: presets, the paper's ablation and its verdicts, the scaling study, the reproduction chain,
the paper's numbers and our results beside them. Imports layers below only."""
