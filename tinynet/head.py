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


class StandardisedProblem:
    """The head's problem on a set of training rows, set up once for every fit on them (each L2 strength,
    each cross-validation fold): features centred and divided by one scale, their overall standard deviation
    (for conditioning and so that the L2 grid means the same for any backbone), and with fewer rows than
    columns expressed in an orthonormal basis of the rows' span.

    Why one scale and not one per column: the features are ReLU outputs, many columns almost always zero;
    dividing each by its own deviation blows those up to the size of the informative ones, and L2 then
    penalises them no more. Measured (bench/train.py, held-out splits not used for any choice): one scale
    gained 0.03-0.08 on a fine-grained ImageNet set and lost nothing elsewhere.

    Why the reduction is exact: the bias is not penalised, so at the optimum the bias gradient is zero
    and the W gradient, X^T dz + l2 W, vanishes only with W = -X^T dz / l2, a combination of the
    (centred) rows being fitted, all inside the span of all the rows. Restricted to that span, logits and
    penalty are unchanged, so the optimum over (N-1) x K coordinates is the optimum over D x K weights
    and every iteration costs N/D as much (500 rows of 1280 features: 0.4x). The basis is the
    eigenvectors of the rows' Gram matrix, one decomposition for all the fits."""

    RANK_TOLERANCE = 1e-9  # eigenvalues below this share of the largest are rounding noise, not directions

    def __init__(self, features, y, n_classes, class_weight="balanced"):
        x = np.asarray(features, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.int64)
        self.n_classes, self.class_weight = n_classes, class_weight
        self.mean = x.mean(axis=0)
        self.std = np.full(x.shape[1], max(float(x.std()), 1e-8))
        xs = (x - self.mean) / self.std
        self.basis = None  # (D, r) orthonormal columns, or None when the problem is solved in full
        if xs.shape[0] < xs.shape[1]:
            eigenvalues, vectors = np.linalg.eigh(xs @ xs.T)
            keep = eigenvalues > self.RANK_TOLERANCE * max(eigenvalues[-1], 1e-300)
            root = np.sqrt(eigenvalues[keep])
            self.basis = (xs.T @ vectors[:, keep]) / root  # right singular vectors of xs
            xs = vectors[:, keep] * root  # = xs @ basis: the rows in that basis
        self.x = xs

    def fit(self, l2, rows=None, max_iter=500, tol=1e-6, start=None):
        """Fit on ``rows`` (a boolean mask; all rows by default) from ``start`` (flat parameters of an earlier
        fit, e.g. at another l2) or zero. Returns (W (D, K), b (K,)) for raw features, info, flat parameters."""
        rows = slice(None) if rows is None else rows
        x, y = self.x[rows], self.y[rows]
        weights = class_weights(y, self.n_classes, self.class_weight)
        fun = lambda p: loss_and_grad(p, x, y, weights, l2, self.n_classes)  # noqa: E731
        params = np.zeros(x.shape[1] * self.n_classes + self.n_classes) if start is None else start
        params, loss, grad, iterations = lbfgs(fun, params, max_iter, tol)
        w, b = self.split(params)
        if self.basis is not None:
            w = self.basis @ w
        w = w / self.std[:, None]
        b = b - self.mean @ w
        return w, b, {"loss": float(loss), "grad_norm": float(np.abs(grad).max()), "iterations": iterations}, params

    def split(self, params):
        """Flat parameters as (W in the problem's coordinates (r, K), b (K,))."""
        r = self.x.shape[1] * self.n_classes
        return params[:r].reshape(-1, self.n_classes), params[r:]

    def log_probabilities(self, params, rows):
        """Log-softmax of the logits of ``rows`` under flat parameters ``params``."""
        w, b = self.split(params)
        z = self.x[rows] @ w + b
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit(features, y, n_classes, l2=1e-3, class_weight="balanced", max_iter=500, tol=1e-6):
    """Fit the head on ``features`` (N, D) (see StandardisedProblem); the result applies to raw features:
    returns (W (D, K), b (K,), info dict)."""
    return StandardisedProblem(features, y, n_classes, class_weight).fit(l2, None, max_iter, tol)[:3]


L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # candidates for choose_l2 (the loss is an average, so these
# are per sample); with one feature scale (not one per column) CV often picked 1e-4, the old lower end
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


def choose_l2(problem, groups, scored=None, grid=L2_GRID, folds=CV_FOLDS, max_iter=500):
    """The L2 strength from ``grid`` with the best cross-validated accuracy on the problem's training rows
    alone (ties: the lower held-out log-loss). ``groups`` keeps an image's augmented views in one fold, so a
    flipped copy never validates its original; ``scored`` (a boolean mask, default all rows) says which
    held-out rows are scored: the original images, as validation and prediction see them, not their crops.
    The standardisation is the whole problem's (no labels in it), so every fold is penalised as the final
    fit is. Returns (l2, {l2: [accuracy, log-loss]})."""
    y = problem.y
    scored = np.ones(len(y), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    fold = cv_folds(y, np.asarray(groups), min(folds, int(np.bincount(y, minlength=problem.n_classes).min()) or 1))
    n_folds = int(fold.max()) + 1
    if n_folds < 2:  # a class with a single image: nothing to hold out, keep the middle of the grid
        return grid[len(grid) // 2], {}
    hits, loss = dict.fromkeys(grid, 0.0), dict.fromkeys(grid, 0.0)
    for k in range(n_folds):
        held = (fold == k) & scored
        params = None
        # Strongest penalty first: each fit starts from the previous optimum, a few steps away.
        for l2 in sorted(grid, reverse=True):
            params = problem.fit(l2, fold != k, max_iter, CV_TOL, params)[3]
            log_p = problem.log_probabilities(params, held)
            hits[l2] += float((log_p.argmax(axis=1) == y[held]).sum())
            loss[l2] -= float(log_p[np.arange(held.sum()), y[held]].sum())
    table = {l2: [hits[l2] / scored.sum(), loss[l2] / scored.sum()] for l2 in grid}
    best = min(grid, key=lambda l2: (-table[l2][0], table[l2][1]))
    return best, table
