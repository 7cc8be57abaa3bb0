"""Representation-similarity metrics, pure NumPy in float64.

X, Y: [n, p] and [n, q] activations of the same n inputs (rows) in two models. Columns are centred first.

- linear_cka (Kornblith et al. 2019): ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F); 1 = same up to a
  rotation and an isotropic scale.
- procrustes_distance (Ding et al. 2021): Xc, Yc scaled to unit Frobenius norm, d = 2 - 2 ||Xn^T Yn||_* in
  [0, 2]; procrustes_normalized = d / 2 in [0, 1] (the study code's `normalize=True`).
- shape_metric (Williams et al. 2021): the angle between partially whitened representations,
  phi_alpha(X) = Xc (alpha I + (1 - alpha) Xc^T Xc / n)^(-1/2),
  theta = arccos(||phi(X)^T phi(Y)||_* / (||phi(X)||_F ||phi(Y)||_F)) in [0, pi/2]; a metric for every alpha.
  alpha = 1: angular Procrustes; alpha = 0 (the default, as the fine-tuning study's code): full whitening.
  normalize=True (default) first scales each centred representation to mean feature variance 1
  (trace(Xc^T Xc) / (n p) = 1) so that alpha weighs I against a covariance of a fixed size: the angle is
  then invariant to isotropic scaling for every alpha. It changes nothing at alpha = 0 or 1 (both are scale
  invariant already); normalize=False is the formula above verbatim.

Each metric also has a `*_from_grams` form on centred sums (Xc^T Xc, Yc^T Yc, Xc^T Yc), which the
streaming accumulators use; the matrix forms below compute from X and Y directly (an independent path).
A constant representation (zero after centring) gives NaN.
"""
import numpy as np

SHAPE_EPS = 1e-10  # eigenvalues of the whitening matrix below SHAPE_EPS * largest are treated as 0


def _f64(a, name="X"):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be [n, p], got shape {a.shape}")
    return a


def _pair(X, Y):
    X, Y = _f64(X, "X"), _f64(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y need the same rows (inputs): {X.shape[0]} != {Y.shape[0]}")
    return X, Y


def center(X):
    """Columns minus their means, float64."""
    X = _f64(X)
    return X - X.mean(axis=0, keepdims=True)


def nuclear_norm(M):
    """Sum of singular values (over the last two axes)."""
    return np.linalg.svd(np.asarray(M, np.float64), compute_uv=False).sum(axis=-1)


def _ratio(num, den):
    return float(num / den) if den > 0 else float("nan")


# ---- linear CKA --------------------------------------------------------------------------------------

def linear_cka(X, Y):
    """Linear CKA of [n, p] and [n, q] activations, in [0, 1]."""
    X, Y = _pair(X, Y)
    X, Y = center(X), center(Y)
    if X.shape[0] < X.shape[1] + Y.shape[1]:  # cheaper with the n x n sample Grams
        Kx, Ky = X @ X.T, Y @ Y.T
        return _unit(_ratio(np.sum(Kx * Ky), np.linalg.norm(Kx) * np.linalg.norm(Ky)))
    return _unit(_ratio(np.linalg.norm(Y.T @ X) ** 2, np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def _unit(v):
    return min(max(v, 0.0), 1.0) if np.isfinite(v) else v  # rounding may step past [0, 1]


def cka_from_grams(Sxx, Syy, Sxy):
    return _unit(_ratio(np.linalg.norm(Sxy) ** 2, np.linalg.norm(Sxx) * np.linalg.norm(Syy)))


# ---- orthogonal Procrustes ---------------------------------------------------------------------------

def procrustes_distance(X, Y):
    """Ding et al.'s orthogonal Procrustes distance of centred, unit-Frobenius X and Y, in [0, 2]."""
    X, Y = _pair(X, Y)
    X, Y = center(X), center(Y)
    nx, ny = np.linalg.norm(X), np.linalg.norm(Y)
    if nx == 0 or ny == 0:
        return float("nan")
    sim = nuclear_norm((X / nx).T @ (Y / ny))
    return float(np.clip(2.0 - 2.0 * sim, 0.0, 2.0))


def procrustes_normalized(X, Y):
    """procrustes_distance / 2, in [0, 1] (1 - the study code's Procrustes similarity)."""
    return procrustes_distance(X, Y) / 2.0


def procrustes_from_grams(Sxx, Syy, Sxy):
    """procrustes_distance from centred sums; Sxx, Syy only enter through their traces."""
    den = np.sqrt(np.trace(Sxx) * np.trace(Syy))
    if not den > 0:
        return float("nan")
    return float(np.clip(2.0 - 2.0 * nuclear_norm(Sxy) / den, 0.0, 2.0))


# ---- partial-whitening shape metric ------------------------------------------------------------------

def _check_alpha(alpha):
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha


def whitening(S, n, alpha, eps=SHAPE_EPS):
    """(alpha I + (1 - alpha) S / n)^(-1/2) for a centred Gram S = Xc^T Xc, by eigendecomposition.
    Eigenvalues below eps * the largest get 0 (a pseudo-inverse): rank-deficient X stay finite."""
    p = S.shape[0]
    C = alpha * np.eye(p) + (1.0 - alpha) * S / n
    lam, V = np.linalg.eigh((C + C.T) / 2)
    top = lam.max(initial=0.0)
    inv = np.zeros_like(lam)
    keep = lam > eps * top if top > 0 else np.zeros_like(lam, bool)
    inv[keep] = lam[keep] ** -0.5
    return (V * inv) @ V.T


def _unit_variance(S, n):
    """The factor that scales a centred Gram S = Xc^T Xc to mean feature variance 1."""
    v = np.trace(S) / (n * S.shape[0])
    return 1.0 / v if v > 0 else 1.0


def partial_whiten(X, alpha=0.0, eps=SHAPE_EPS, normalize=True):
    """phi_alpha(X) = Xc (alpha I + (1 - alpha) Xc^T Xc / n)^(-1/2) (Xc scaled first if normalize)."""
    X = center(X)
    if normalize:
        X = X * np.sqrt(_unit_variance(X.T @ X, X.shape[0]))
    return X @ whitening(X.T @ X, X.shape[0], _check_alpha(alpha), eps)


def _angle(cos):
    return float(np.arccos(np.clip(cos, 0.0, 1.0))) if np.isfinite(cos) else float("nan")


def shape_metric(X, Y, alpha=0.0, eps=SHAPE_EPS, normalize=True):
    """Williams et al.'s angular shape metric with partial whitening alpha, in radians, [0, pi/2]."""
    X, Y = _pair(X, Y)
    alpha = _check_alpha(alpha)
    px, py = partial_whiten(X, alpha, eps, normalize), partial_whiten(Y, alpha, eps, normalize)
    return _angle(_ratio(nuclear_norm(px.T @ py), np.linalg.norm(px) * np.linalg.norm(py)))


def shape_from_grams(Sxx, Syy, Sxy, n, alpha=0.0, eps=SHAPE_EPS, normalize=True):
    alpha = _check_alpha(alpha)
    if normalize:
        fx, fy = _unit_variance(Sxx, n), _unit_variance(Syy, n)
        Sxx, Syy, Sxy = Sxx * fx, Syy * fy, Sxy * np.sqrt(fx * fy)
    Wx, Wy = whitening(Sxx, n, alpha, eps), whitening(Syy, n, alpha, eps)
    cross = Wx @ Sxy @ Wy
    norm_x = np.sqrt(max(np.trace(Wx @ Sxx @ Wx), 0.0))
    norm_y = np.sqrt(max(np.trace(Wy @ Syy @ Wy), 0.0))
    return _angle(_ratio(nuclear_norm(cross), norm_x * norm_y))


# ---- the rest ----------------------------------------------------------------------------------------

def pearson(a, b):
    """Pearson's r of two equal-length sequences (NaN pairs dropped); NaN when either is constant."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pearson needs equal lengths, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    return _ratio(np.sum(a * b), np.sqrt(np.sum(a * a) * np.sum(b * b)))


def layer_metrics(X, Y, alpha=0.0):
    """All three layer metrics of [n, p] and [n, q] activations, as a dict (the CSV columns)."""
    return {"pwsm_theta": shape_metric(X, Y, alpha), "procrustes_norm": procrustes_normalized(X, Y),
            "cka": linear_cka(X, Y)}


def metrics_from_grams(Sxx, Syy, Sxy, n, alpha=0.0):
    return {"pwsm_theta": shape_from_grams(Sxx, Syy, Sxy, n, alpha),
            "procrustes_norm": procrustes_from_grams(Sxx, Syy, Sxy) / 2.0,
            "cka": cka_from_grams(Sxx, Syy, Sxy)}


# ---- per channel: one feature map of one input as a matrix -------------------------------------------

def map_metrics(A, B):
    """Per-map Procrustes (normalised, [0, 1]) and linear CKA of maps A, B: [..., H, W] (rows = the H
    positions, columns = the W positions), the study code's per-filter comparison. Returns two arrays of
    shape A.shape[:-2]; a map that is constant (zero after centring) gives NaN."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    if A.shape != B.shape or A.ndim < 2:
        raise ValueError(f"maps must have the same shape [..., H, W], got {A.shape} and {B.shape}")
    A = A - A.mean(axis=-2, keepdims=True)
    B = B - B.mean(axis=-2, keepdims=True)
    na, nb = np.linalg.norm(A, axis=(-2, -1)), np.linalg.norm(B, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = np.swapaxes(A, -1, -2) @ B
        proc = np.clip(1.0 - nuclear_norm(cross) / (na * nb), 0.0, 1.0)
        aa = np.linalg.norm(np.swapaxes(A, -1, -2) @ A, axis=(-2, -1))
        bb = np.linalg.norm(np.swapaxes(B, -1, -2) @ B, axis=(-2, -1))
        cka = np.clip(np.linalg.norm(cross, axis=(-2, -1)) ** 2 / (aa * bb), 0.0, 1.0)
    bad = (na == 0) | (nb == 0)
    return np.where(bad, np.nan, proc), np.where(bad, np.nan, cka)
