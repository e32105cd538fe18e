"""What a dense-task model (detection, segmentation) refuses of the classifier API, in one place.

Such a model is a tinynet.model.Model (backbone, weights, preprocessing) whose outputs are maps, not class scores:
``classify``, ``embed``, ``features`` and ``classifier_input`` are one-line errors naming the model's task and the
method it does have (``answer``).
"""
from tinynet.errors import TinynetError


class DenseTask:
    answer = None  # the method that gives this task's results: "detect", "segment"

    def classify(self, images, top=5, batch_size=None):
        raise TinynetError(f"this is a {self.task} model ({self.arch}): it has no class scores per image; "
                           f"use {self.answer}")

    def embed(self, x):
        raise TinynetError(f"this is a {self.task} model ({self.arch}): it has no pooled embedding")

    def features(self, image, batch_size=None):
        self.embed(None)

    def classifier_input(self, x):
        self.embed(None)
