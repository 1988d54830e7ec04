"""Transfer Learning (13) on images: pretrain a CNN on digits 0-4, reuse it for 5-9 with few labels.

scikit-learn's 1,797 8x8 digits. The source task, 0 to 4, uses all its 901 images;
the target task, 5 to 9, gets ``per_class`` labelled images per digit, and its other
images are the test set. The same :class:`SmallCNN` on the same few labels:

- **scratch**: random weights;
- **frozen features + logistic regression**: the pretrained bottleneck (the
  convolutions' 512 outputs, ``bottleneck_features``) and a logistic regression;
- **frozen, new top**: the pretrained convolutions frozen (``freeze``), a new dense
  layer and head trained;
- **fine-tuned, layer-wise rates**: the same new top, every layer trained, the rate
  halving per layer going down (``layerwise_lr_groups``).

The torch models train for each number of ``epochs`` (full passes over the few
labels), to show both the accuracy reached and how soon. Run
``python examples/transfer_learning_images.py`` for the table.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from mlpatterns.training.transfer_learning.layers import (
    bottleneck_features,
    freeze,
    layerwise_lr_groups,
    train_classifier,
)
from mlpatterns.training.transfer_learning.networks import SmallCNN

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
BOTTLENECK = "block2"


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits, pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def pretrain(X: np.ndarray, y: np.ndarray, epochs: int = 15, random_state: int = 0) -> SmallCNN:
    """A CNN trained on every image of the source digits."""
    source = np.isin(y, SOURCE)
    torch.manual_seed(random_state)
    model = SmallCNN(n_classes=len(SOURCE))
    train_classifier(
        model, X[source], y[source] - SOURCE[0], epochs=epochs, random_state=random_state
    )
    return model


def few_labels(y: np.ndarray, per_class: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``per_class`` labelled images per target digit, and of the other target images."""
    rng = np.random.default_rng(random_state)
    labelled = np.concatenate(
        [rng.choice(np.flatnonzero(y == d), per_class, replace=False) for d in TARGET]
    )
    rest = np.setdiff1d(np.flatnonzero(np.isin(y, TARGET)), labelled)
    return labelled, rest


def accuracy(model: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(np.mean(model.eval()(torch.as_tensor(X)).argmax(dim=1).numpy() == y))


def transferred(pretrained: SmallCNN, how: str, random_state: int) -> tuple[SmallCNN, list | None]:
    """A model for the target digits and its optimizer groups (``None``: one rate for all)."""
    n = len(TARGET)
    if how == "scratch":
        torch.manual_seed(random_state)
        return SmallCNN(n_classes=n), None
    model = pretrained.transfer(n, keep=BOTTLENECK, random_state=random_state)
    if how == "frozen, new top":
        freeze(model, up_to=BOTTLENECK)
        return model, None
    return model, layerwise_lr_groups(
        model, base_lr=1e-3, decay=0.5
    )  # fine-tuned, layer-wise rates


def fit_and_score(
    pretrained: SmallCNN,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
    random_state: int = 0,
) -> list[dict]:
    """Test accuracy and seconds (fit and score) of each CNN trained on ``(X, y)`` (labels 0 to 4) for ``epochs``."""
    rows = []
    for how in ("scratch", "frozen, new top", "fine-tuned, layer-wise rates"):
        started = time.perf_counter()
        model, groups = transferred(pretrained, how, random_state)
        train_classifier(model, X, y, param_groups=groups, epochs=epochs, random_state=random_state)
        rows.append(
            {
                "epochs": epochs,
                "model": how,
                "accuracy": accuracy(model, X_test, y_test),
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def frozen_features_score(
    pretrained: SmallCNN, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Test accuracy of a logistic regression on the pretrained bottleneck features."""
    classifier = LogisticRegression(max_iter=3000).fit(
        bottleneck_features(pretrained, X, layer=BOTTLENECK), y
    )
    return float(
        classifier.score(bottleneck_features(pretrained, X_test, layer=BOTTLENECK), y_test)
    )


def compare(
    per_class: int = 10,
    n_draws: int = 5,
    epochs: tuple[int, ...] = (10, 100),
    pretrain_epochs: int = 15,
    random_state: int = 0,
) -> pd.DataFrame:
    """Test accuracy per draw of the labelled images, model and training length."""
    X, y = digits()
    started = time.perf_counter()
    pretrained = pretrain(X, y, epochs=pretrain_epochs, random_state=random_state)
    pretrain_s = time.perf_counter() - started
    rows = []
    for draw in range(n_draws):
        labelled, rest = few_labels(y, per_class, random_state + draw)
        data = X[labelled], y[labelled] - TARGET[0], X[rest], y[rest] - TARGET[0]
        started = time.perf_counter()
        score = frozen_features_score(pretrained, *data)
        rows.append(
            {
                "draw": draw,
                "epochs": "-",
                "model": "frozen features + logistic regression",
                "accuracy": score,
                "seconds": time.perf_counter() - started,
            }
        )
        for n_epochs in epochs:
            rows.extend(
                {"draw": draw, **row}
                for row in fit_and_score(
                    pretrained, *data, epochs=n_epochs, random_state=random_state + draw
                )
            )
    table = pd.DataFrame(rows)
    table.attrs["pretrain_s"] = pretrain_s
    return table


if __name__ == "__main__":
    for per_class in (5, 10, 20):
        table = compare(per_class=per_class)
        summary = table.groupby(["epochs", "model"], sort=False).agg(
            accuracy=("accuracy", "mean"), sd=("accuracy", "std"), seconds=("seconds", "mean")
        )
        print(
            f"\n{per_class} labelled images per digit, {table['draw'].nunique()} draws, "
            f"pretraining {table.attrs['pretrain_s']:.1f} s"
        )
        print(summary.round(3).to_string())
