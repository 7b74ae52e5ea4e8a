"""Layer 4, train: the engine (one loop from one CPU core to many GPUs), what a pre-training and a fine-tuning step
compute, YAML recipes and their runners. Imports layers below only."""
