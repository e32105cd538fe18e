"""The Python API a user embeds: load by name, preprocess, classify, features, and use from many threads."""
import json
import threading

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet import store
from tinynet.labels import imagenet1k


@pytest.fixture
def golden_v3():
    """torchvision's MobileNet V3-Large with seeded weights, plus what torchvision computed for grace_hopper.jpg."""
    manifest = json.loads(shared_path("golden", "MANIFEST.json").read_text())["models"]["tv_mobilenet_v3_large"]
    model = tinynet.load(shared_path("golden", manifest["weights"]))
    model.meta["labels"] = "imagenet1k"
    reference_input = np.load(shared_path("golden", "tv_mobilenet_v3_large.input.npy")).transpose(0, 2, 3, 1)
    reference_logits = np.load(shared_path("golden", "tv_mobilenet_v3_large.logits_f64.npy"))
    return model, reference_input, reference_logits, manifest["top5_f64"]


PHOTO = ("images", "grace_hopper.jpg")


def test_preprocess_matches_torchvision(golden_v3):
    model, reference_input, _, _ = golden_v3
    x = model.preprocess(str(shared_path(*PHOTO)))
    assert x.shape == (1, 224, 224, 3) and x.dtype == np.float32
    assert np.abs(x - reference_input).max() < 1e-5


def test_classify_one_image_matches_torchvision(golden_v3):
    model, _, reference_logits, top5 = golden_v3
    result = model.classify(str(shared_path(*PHOTO)), top=5)
    assert [label for label, _ in result] == [imagenet1k()[i] for i in top5]
    z = reference_logits[0] - reference_logits[0].max()
    expected = np.exp(z) / np.exp(z).sum()
    assert np.allclose([p for _, p in result], expected[top5], rtol=1e-3, atol=1e-6)


def test_classify_a_list_batches_and_agrees_with_one_at_a_time(golden_v3):
    model = golden_v3[0]
    photos = [str(shared_path("images", name)) for name in ("grace_hopper.jpg", "coffee.png", "chelsea.png")]
    together = model.classify(photos, top=3, batch_size=2)
    assert len(together) == 3
    for photo, result in zip(photos, together):
        alone = model.classify(photo, top=3)
        assert [label for label, _ in result] == [label for label, _ in alone]
        assert np.allclose([p for _, p in result], [p for _, p in alone], rtol=1e-4)


def test_features_are_what_the_classifier_reads():
    model = tinynet.load(shared_path("golden", "tv_mobilenet_v2.pth"))  # V2: pool -> one fc
    photo = str(shared_path(*PHOTO))
    features = model.features(photo)
    fc = model.layers[-1]
    assert features.shape == (fc.cin,)
    logits = features.astype(np.float64) @ model.weights[fc.name + ".w"] + model.weights[fc.name + ".b"]
    assert np.allclose(logits, model.forward(model.preprocess(photo))[0], rtol=1e-4, atol=1e-3)


def test_real_pretrained_model_by_store_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path))
    store.import_file(shared_path("weights", "coral_test_data", "mobilenet_v2_1.0_224_quant.tflite"), "mobilenet_v2")
    model = tinynet.load("mobilenet_v2")
    (label, probability), *_ = model.classify(str(shared_path(*PHOTO)))
    assert label == "military uniform" and probability > 0.3


def test_one_model_from_eight_threads_gives_sequential_results(golden_v3):
    model = golden_v3[0]
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((n, 224, 224, 3)).astype(np.float32) for n in (1, 2, 1, 3)]
    expected = [model.forward(x) for x in inputs]
    barrier = threading.Barrier(8)
    results, errors = {}, []

    def work(t):
        try:
            barrier.wait()
            for i in range(6):
                k = (t + i) % len(inputs)
                results[t, i] = (k, model.forward(inputs[k]))
        except Exception as e:  # reported below: an exception in a thread would otherwise be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 48
    for k, output in results.values():
        assert np.array_equal(output, expected[k])


def test_predictions_carry_the_class_index(golden_v3):
    model, _, reference_logits, top5 = golden_v3
    result = model.classify(str(shared_path(*PHOTO)), top=5)
    assert [p.class_index for p in result] == list(top5)
    label, probability = result[0]  # still unpacks as (label, probability)
    assert label == result[0].label == imagenet1k()[top5[0]] and probability == result[0].probability
