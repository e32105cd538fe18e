"""tinynet.head: the logistic-regression loss and gradient against a plain oracle with finite
differences (float64), and the L-BFGS fit reaching the optimum."""
import math

import numpy as np
from hypothesis import given, settings, strategies as st

from tinynet import head


def reference_loss(w, b, x, y, sample_weight, l2):
    """The weighted mean cross-entropy plus l2/2 ||W||^2, written out with loops and math.log."""
    total, weight = 0.0, 0.0
    for xi, yi, si in zip(x, y, sample_weight):
        logits = [sum(xi[d] * w[d][k] for d in range(len(xi))) + b[k] for k in range(len(b))]
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
        total += si * (log_sum - logits[yi])
        weight += si
    return total / weight + 0.5 * l2 * sum(v * v for row in w for v in row)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 4), k=st.integers(2, 4), l2=st.sampled_from([0.0, 0.1, 3.0]),
       seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_gradient_matches_finite_differences_of_a_plain_loss(n, d, k, l2, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * scale
    y = rng.integers(0, k, n)
    s = rng.uniform(0.2, 2.0, n)
    params = rng.standard_normal(d * k + k)

    def plain(p):
        return reference_loss(p[:d * k].reshape(d, k).tolist(), p[d * k:].tolist(), x.tolist(), y.tolist(), s.tolist(), l2)

    loss, grad = head.loss_and_grad(params, x, y, s, l2, k)
    assert math.isclose(loss, plain(params), rel_tol=1e-10, abs_tol=1e-10)
    eps = 1e-6
    numeric = np.array([(plain(params + eps * e) - plain(params - eps * e)) / (2 * eps) for e in np.eye(len(params))])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * max(1.0, scale))


def test_fit_reaches_the_optimum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8))
    y = rng.integers(0, 3, 60)  # random labels: not separable, so the L2 optimum is interior
    w, b, info = head.fit(x, y, 3, l2=0.1, class_weight=None, tol=1e-8)
    assert info["grad_norm"] < 1e-8
    # The returned (W, b) apply to raw features; mapped back to the problem the penalty is taken in (centred,
    # divided by the features' one overall deviation), the gradient vanishes and no small step lowers the loss.
    xs = (x - x.mean(0)) / x.std()
    params = np.concatenate([(w * x.std()).ravel(), b + x.mean(0) @ w])
    weights = np.ones(60)
    loss, grad = head.loss_and_grad(params, xs, y, weights, 0.1, 3)
    assert np.abs(grad).max() < 1e-7
    for e in rng.standard_normal((20, params.size)):
        assert head.loss_and_grad(params + 1e-3 * e, xs, y, weights, 0.1, 3)[0] >= loss


def test_separable_synthetic_features_are_fit_exactly():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 16)) * 5
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.standard_normal((120, 16))
    w, b, _ = head.fit(x, y, 4, l2=1e-3)
    assert ((x @ w + b).argmax(1) == y).all()


def test_fit_is_deterministic():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    first, second = head.fit(x, y, 3), head.fit(x, y, 3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_balanced_class_weights_give_each_class_the_same_total():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = head.class_weights(y, 3)
    totals = [weights[y == c].sum() for c in range(3)]
    np.testing.assert_allclose(totals, [3.0, 3.0, 3.0])


def test_cv_folds_keep_an_images_views_together_and_share_each_class():
    y = np.repeat([0, 0, 0, 1, 1, 1], 2)  # 6 images, 2 views each
    groups = np.repeat(np.arange(6), 2)
    fold = head.cv_folds(y, groups, folds=3)
    assert all(len(set(fold[groups == g])) == 1 for g in range(6))
    for label in (0, 1):
        assert sorted(set(fold[y == label])) == [0, 1, 2]


def test_choose_l2_picks_the_best_held_out_accuracy():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    noise = rng.standard_normal((60, 40))
    _, table = head.choose_l2(head.StandardisedProblem(noise, y, 2), np.arange(60), grid=(1e-4, 1.0))
    assert set(table) == {1e-4, 1.0} and all(0 <= acc <= 1 and loss > 0 for acc, loss in table.values())
    clean = noise.copy()
    clean[:, 0] += 10.0 * y  # one very informative feature
    best_clean, table = head.choose_l2(head.StandardisedProblem(clean, y, 2), np.arange(60), grid=(1e-4, 1.0))
    assert table[best_clean][0] == max(acc for acc, _ in table.values()) > 0.9


def test_choose_l2_scores_only_the_rows_asked_for():
    # Rows in pairs (an image and its flipped copy); the copies carry the opposite label's signal, so
    # scoring them as well as the images would change the held-out accuracy.
    rng = np.random.default_rng(3)
    y = np.repeat(np.repeat([0, 1], 15), 2)
    x = rng.standard_normal((60, 30))
    x[0::2, 0] += 6.0 * y[0::2]
    x[1::2, 0] += 6.0 * (1 - y[1::2])
    groups, originals = np.arange(60) // 2, np.arange(60) % 2 == 0
    problem = head.StandardisedProblem(x, y, 2)
    _, all_rows = head.choose_l2(problem, groups, grid=(1e-2,))
    _, images = head.choose_l2(problem, groups, originals, grid=(1e-2,))
    hand = 0.0  # the same held-out accuracy over the images alone, fitted fold by fold with head.fit
    fold = head.cv_folds(y, groups)
    for k in range(fold.max() + 1):
        w, b, _ = head.fit(x[fold != k], y[fold != k], 2, 1e-2, tol=head.CV_TOL)
        held = (fold == k) & originals
        hand += ((x[held] @ w + b).argmax(axis=1) == y[held]).sum()
    assert images[1e-2][0] == hand / 30 != all_rows[1e-2][0]


def test_one_scale_keeps_a_rarely_active_feature_small():
    # ReLU features: a column that is almost always zero must not be blown up to the size of the others
    # (per-column standardisation would give both columns deviation 1).
    rng = np.random.default_rng(5)
    x = np.stack([rng.uniform(0, 4, 200), np.where(np.arange(200) % 50 == 0, 0.1, 0.0)], axis=1)
    scaled = head.StandardisedProblem(x, rng.integers(0, 2, 200), 2).x
    assert scaled[:, 0].std() > 50 * scaled[:, 1].std()  # their raw ratio: 82


def test_row_space_fit_matches_a_fit_over_all_features():
    # Fewer rows than features: the fit runs in the rows' span (StandardisedProblem); it must land on the
    # optimum of the full problem, which lbfgs finds here directly on the centred, scaled features.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 80)) * rng.uniform(0.1, 5.0, 80) + rng.standard_normal(80)
    y = rng.integers(0, 3, 30)
    w, b, info = head.fit(x, y, 3, l2=0.05, tol=1e-9)
    assert head.StandardisedProblem(x, y, 3).x.shape == (30, 29)  # centred rows: one direction fewer
    xs = (x - x.mean(0)) / x.std()
    weights = head.class_weights(y, 3)
    full = head.lbfgs(lambda p: head.loss_and_grad(p, xs, y, weights, 0.05, 3), np.zeros(80 * 3 + 3), 2000, 1e-9)[0]
    w_full = full[:240].reshape(80, 3) / x.std()
    np.testing.assert_allclose(x @ w + b, x @ w_full + full[240:] - x.mean(0) @ w_full, atol=1e-6)
    np.testing.assert_allclose(w, w_full, atol=1e-7)


def test_choose_l2_with_a_single_image_class_keeps_the_grid_middle():
    x = np.eye(3)
    problem = head.StandardisedProblem(x, np.array([0, 0, 1]), 2)
    assert head.choose_l2(problem, np.arange(3))[0] == head.L2_GRID[len(head.L2_GRID) // 2]
