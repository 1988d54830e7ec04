"""Chapter 4, model training: Useful Overfitting (11), Checkpoints (12), Transfer Learning (13),
Distribution Strategy (14) and Hyperparameter Tuning (15).

torch and Optuna are imported when a component is used, not when this package is.
"""

__all__: list[str] = []
