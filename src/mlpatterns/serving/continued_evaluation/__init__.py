"""Continued Model Evaluation (pattern 18): log what a deployed model predicts, join the ground
truth that arrives later, and evaluate the model on it over time, so that a model that has gone
stale is noticed and retrained."""
