"""The trained classifier head: multinomial logistic regression with L2, fitted by full-batch L-BFGS.

Deterministic (no randomness, fixed iteration order) and NumPy only. The loss is

    L(W, b) = sum_i s_i * CE(softmax(x_i W + b), y_i) / sum_i s_i  +  l2/2 * ||W||^2

with per-sample weights s_i (class weights for imbalanced folders); the bias is not penalised.
"""
import numpy as np

from tinynet.errors import TinynetError


def loss_and_grad(params, x, y, sample_weight, l2, n_classes):
    """Loss and gradient for flat ``params`` = [W (D*K), b (K)]; x (N, D) float64, y (N,) int."""
    d = x.shape[1]
    w = params[:d * n_classes].reshape(d, n_classes)
    b = params[d * n_classes:]
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    s = sample_weight / sample_weight.sum()
    rows = np.arange(len(y))
    loss = -(s * log_p[rows, y]).sum() + 0.5 * l2 * (w * w).sum()
    dz = np.exp(log_p)
    dz[rows, y] -= 1.0
    dz *= s[:, None]
    grad_w = x.T @ dz + l2 * w
    return loss, np.concatenate([grad_w.ravel(), dz.sum(axis=0)])


def lbfgs(fun, x0, max_iter=500, tol=1e-6, memory=10):
    """Minimise ``fun`` (returns value, gradient) from ``x0``; stops when the gradient's max-norm < tol.
    Returns (x, value, gradient, iterations)."""
    x = x0.copy()
    f, g = fun(x)
    steps, diffs = [], []
    for it in range(max_iter):
        if np.abs(g).max() < tol:
            return x, f, g, it
        # Two-loop recursion: direction = -H g with H from the last ``memory`` (s, y) pairs.
        q = g.copy()
        alphas = []
        for s, yv in reversed(list(zip(steps, diffs))):
            a = (s @ q) / (yv @ s)
            alphas.append(a)
            q -= a * yv
        if steps:
            q *= (steps[-1] @ diffs[-1]) / (diffs[-1] @ diffs[-1])
        for (s, yv), a in zip(zip(steps, diffs), reversed(alphas)):
            q += s * (a - (yv @ q) / (yv @ s))
        direction = -q
        slope = g @ direction
        if slope >= 0:  # not a descent direction: restart from steepest descent
            direction, slope, steps, diffs = -g, -(g @ g), [], []
        step = 1.0 if steps else min(1.0, 1.0 / max(np.abs(g).sum(), 1e-12))
        while True:  # backtracking (Armijo) line search
            x_new = x + step * direction
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-20:
                break
            step *= 0.5
        s, yv = x_new - x, g_new - g
        if s @ yv > 1e-12:  # keep the curvature pair only if it keeps H positive definite
            steps.append(s)
            diffs.append(yv)
            if len(steps) > memory:
                steps.pop(0)
                diffs.pop(0)
        x, f, g = x_new, f_new, g_new
    return x, f, g, max_iter


def class_weights(y, n_classes, mode="balanced"):
    """Per-sample weights: "balanced" gives each class the same total weight, None weighs samples equally."""
    if mode is None:
        return np.ones(len(y))
    if mode != "balanced":
        raise TinynetError(f"class_weights must be 'balanced' or None, got {mode!r}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (len(y) / (n_classes * counts))[y]


def fit(features, y, n_classes, l2=1e-3, class_weight="balanced", max_iter=500, tol=1e-6):
    """Fit the head on ``features`` (N, D). Features are standardised for conditioning and the scaling is
    folded back, so the result applies to raw features: returns (W (D, K), b (K,), info dict)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-8] = 1.0
    xs = (x - mean) / std
    weights = class_weights(y, n_classes, class_weight)
    d = x.shape[1]
    fun = lambda p: loss_and_grad(p, xs, y, weights, l2, n_classes)  # noqa: E731
    params, loss, grad, iterations = lbfgs(fun, np.zeros(d * n_classes + n_classes), max_iter, tol)
    w = params[:d * n_classes].reshape(d, n_classes) / std[:, None]
    b = params[d * n_classes:] - mean @ w
    return w, b, {"loss": float(loss), "grad_norm": float(np.abs(grad).max()), "iterations": iterations}


L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # candidates for choose_l2 (the loss is an average, so these are per sample)
CV_FOLDS = 5
CV_TOL = 1e-4  # held-out scores do not move below this gradient norm; 3x fewer iterations than fit's 1e-6


def cv_folds(y, groups, folds=CV_FOLDS):
    """A fold index per row: whole groups (the views of one image) go to one fold, dealt round-robin per class
    in order of first appearance, so every fold gets its share of each class. Deterministic."""
    fold_of_group, dealt = {}, {}
    for label, group in zip(y, groups):
        if group not in fold_of_group:
            fold_of_group[group] = dealt.get(label, 0) % folds
            dealt[label] = dealt.get(label, 0) + 1
    return np.array([fold_of_group[g] for g in groups])


def choose_l2(features, y, n_classes, groups, class_weight="balanced", grid=L2_GRID, folds=CV_FOLDS, max_iter=500):
    """The L2 strength from ``grid`` with the best cross-validated accuracy on the training rows alone (ties:
    the lower held-out log-loss); ``groups`` keeps an image's augmented views in one fold, so a flipped copy
    never validates its original. Returns (l2, {l2: [accuracy, log-loss]})."""
    y = np.asarray(y, dtype=np.int64)
    fold = cv_folds(y, np.asarray(groups), min(folds, int(np.bincount(y, minlength=n_classes).min()) or 1))
    n_folds = int(fold.max()) + 1
    if n_folds < 2:  # a class with a single image: nothing to hold out, keep the middle of the grid
        return grid[len(grid) // 2], {}
    table = {}
    for l2 in grid:
        hits = loss = 0.0
        for k in range(n_folds):
            held = fold == k
            w, b, _ = fit(features[~held], y[~held], n_classes, l2, class_weight, max_iter, tol=CV_TOL)
            z = features[held].astype(np.float64) @ w + b
            z -= z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            hits += float((z.argmax(axis=1) == y[held]).sum())
            loss -= float(log_p[np.arange(held.sum()), y[held]].sum())
        table[l2] = [hits / len(y), loss / len(y)]
    best = min(grid, key=lambda l2: (-table[l2][0], table[l2][1]))
    return best, table
