"""Layer 6, teach: figures, reconstruction views and the notebooks' widgets. Imports layers below only."""
