"""Classification results: logits -> the top-k labels with their probabilities."""
import numpy as np


def softmax(logits):
    """Probabilities from logits (N, K), computed in float64 so that no class underflows to exactly 0."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Prediction(tuple):
    """(label, probability), as before, plus ``class_index``, the model's output index for the label.
    A 2-tuple so that ``for label, p in model.classify(...)`` keeps working."""

    def __new__(cls, label, probability, class_index):
        prediction = super().__new__(cls, (label, probability))
        prediction.class_index = class_index
        return prediction

    label = property(lambda self: self[0])
    probability = property(lambda self: self[1])

    def __repr__(self):
        return f"Prediction(label={self[0]!r}, probability={self[1]!r}, class_index={self.class_index})"


def top_labels(probabilities, names, k):
    """Per row of ``probabilities`` (N, K): [Prediction(name, probability, index), ...] for the k largest,
    largest first."""
    k = max(1, min(k, probabilities.shape[1]))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # (N, k)
    return [[Prediction(names[i], float(row[i]), int(i)) for i in idx] for row, idx in zip(probabilities, order)]
