"""Spectral-signature screen (Tran, Li, Madry 2018, Algorithm 1) and a robust variant.

Algorithm 1, per class c: centre the representations R_c (n_c, d) on their mean, take
the top right singular vector v of the centred matrix, score each row by
``((r_i - mean_c) . v) ** 2`` and remove the ``1.5 * eps * n_c`` highest scores. The
direction comes from the d x d covariance by block power iteration: the cost is one
pass of ``R^T R`` over all rows (O(N d^2)) plus O(d^2) per class, never an SVD of the
n x d matrix.

The robust variant (after SPECTRE, Hayase et al. 2021) first whitens each class with a
trimmed (outlier-resistant) mean and covariance, so the clean rows' own dominant
directions do not mask the poison's.
"""

from __future__ import annotations

import numpy as np
import torch

from .._torch_utils import pick_device
from .base import (
    ProbeOutputs,
    Screen,
    ScreenOutput,
    screen_summary,
    top_fraction_per_class,
)


def _class_moments(R: np.ndarray, idx, device, batch_size: int, mean=None):
    """Mean (d,) float64 and centred second moment (d, d) float64 of R[idx], batched.

    ``idx`` is an index array or ``None`` (all rows of R, read as contiguous slices
    without copying)."""
    d = R.shape[1]
    n = len(R) if idx is None else len(idx)

    def chunks():
        for start in range(0, n, batch_size):
            part = R[start:start + batch_size] if idx is None else R[idx[start:start + batch_size]]
            yield torch.from_numpy(part).to(device)

    if mean is None:
        s = torch.zeros(d, dtype=torch.float64, device=device)
        for xb in chunks():
            s += xb.sum(0).double()
        mean = s / n
    mu32 = mean.float()
    acc = torch.zeros(d, d, dtype=torch.float32, device=device)
    for xb in chunks():
        xb = xb - mu32
        acc.addmm_(xb.T, xb)
    return mean, acc.double() / n


def _top_directions(C: torch.Tensor, seed: int, block: int = 4, max_iter: int = 60, tol: float = 1e-6,
                    iter_dtype: torch.dtype = torch.float32):
    """Top eigenvectors (K, d) of K symmetric PSD (d, d) matrices, by block power iteration
    run on all K at once (batched products and QR: one call per step, not K).

    The iteration runs in ``iter_dtype``: float32 by default (it only has to find the
    subspace; twice as fast as float64 on a CPU). The robust variant's whitened matrices
    have a nearly flat spectrum and iterate in float64. The final Rayleigh-Ritz step,
    which picks the direction inside the subspace, runs in ``C``'s own precision."""
    K, d = C.shape[0], C.shape[1]
    b = min(block, d)
    Ci = C.to(iter_dtype)
    g = torch.Generator(device="cpu").manual_seed(seed)
    Q = torch.randn(d, b, generator=g, dtype=iter_dtype).to(C.device)
    Q, _ = torch.linalg.qr(Q)
    Q = Q.expand(K, d, b).contiguous()
    prev = None
    for step in range(max_iter + 1):
        CQ = torch.bmm(Ci, Q)
        if step >= 1:  # Rayleigh quotient of the current leading vector, from the product it needs anyway
            top = (Q[:, :, 0] * CQ[:, :, 0]).sum(1)
            if prev is not None and bool(((top - prev).abs() <= tol * top.abs().clamp(min=1e-30)).all()):
                break
            prev = top
        if step == max_iter:
            break
        Q, _ = torch.linalg.qr(CQ)
    Q, _ = torch.linalg.qr(Q.to(C.dtype))
    _, V = torch.linalg.eigh(torch.bmm(Q.transpose(1, 2), torch.bmm(C, Q)))
    return torch.bmm(Q, V[:, :, -1:]).squeeze(2)


def _chi2_ratio(d: int) -> float:
    """97.5 % over 50 % quantile of the chi-square distribution with d degrees of freedom."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.975, d) / chi2.ppf(0.5, d))


def _robust_moments(R, idx, device, batch_size, n_rounds: int = 3):
    """Trimmed mean/covariance: drop rows whose Mahalanobis distance is implausible for
    a Gaussian (above the 97.5 % chi-square quantile, scaled by the median), re-fit.

    The first trim uses coordinate-wise median and MAD, which a minority cluster cannot
    inflate (with the plain covariance the cluster would mask itself)."""
    d = R.shape[1]
    X = torch.from_numpy(R[idx]).to(device).double()
    med = X.median(0).values
    mad = (X - med).abs().median(0).values * 1.4826
    mad = torch.where(mad > 0, mad, (X - med).abs().mean(0) * 1.2533 + 1e-12)
    d2 = (((X - med) / mad) ** 2).sum(1)
    cut = float(d2.median()) * _chi2_ratio(d)
    keep = idx[(d2 <= cut).cpu().numpy()]
    if len(keep) <= d:
        keep = idx
    for _ in range(n_rounds):
        mean, cov = _class_moments(R, keep, device, batch_size)
        ridge = 1e-6 * float(torch.trace(cov)) / d + 1e-12
        L = torch.linalg.cholesky(cov + ridge * torch.eye(d, dtype=cov.dtype, device=device))
        X = torch.from_numpy(R[idx]).to(device).double() - mean
        d2 = (torch.linalg.solve_triangular(L, X.T, upper=False) ** 2).sum(0)
        cut = float(d2.median()) * _chi2_ratio(d)
        new_keep = idx[(d2 <= cut).cpu().numpy()]
        if len(new_keep) == len(keep) or len(new_keep) <= d:
            break
        keep = new_keep
    return _class_moments(R, keep, device, batch_size)


# floats per gathered piece of a class block on a CPU (16 MiB): the shift and the products
# follow the gather while the piece is fresh. At N=200,000, d=512 pieces of 4 to 32 MiB
# time alike on one thread; smaller ones mean more BLAS calls, which a second thread does
# not pay back, and a whole 65536-row chunk (134 MiB) costs about 0.03 s more in page
# faults alone.
_PIECE_FLOATS = 2 ** 22
# bytes of float32 Gram accumulators held at once; more classes are done in groups
_ACC_BYTES = 256 * 2 ** 20


def _add_gram_upper_(acc: torch.Tensor, x: torch.Tensor, rows: int, width: int) -> None:
    """``acc[:rows] += (x^T x)[:rows]`` on the block upper triangle only: block row ``i``
    gets ``x[:, i]^T x[:, i:]``, one strip from the diagonal block to the last column.

    With ``width`` about ``rows / 4`` this is 5/8 of a full ``addmm``'s flops (most of
    BLAS ``syrk``'s saving, in torch's own BLAS and thread pool; narrower strips save
    little more and multiply the calls); blocks below the diagonal are left as they
    were. ``width >= rows`` is one full ``addmm``."""
    for i in range(0, rows, width):
        acc[i:i + width, i:].addmm_(x[:, i:i + width].T, x[:, i:])


def _centred_class_moments(R: np.ndarray, labels: np.ndarray, n_classes: int, device, batch_size: int):
    """Per-class counts (K,), means (K, d) float64 and covariances (K, d, d) float64 in one pass.

    Each chunk of rows is sorted by class (a small argsort); each class's rows are gathered,
    in pieces of at most 16 MiB, into a reused buffer whose extra last column is all ones,
    shifted in place by a provisional class mean taken from the first chunk (so the float32
    sums do not cancel), and the piece's ``(d+1) x (d+1)`` Gram is added to the class's
    float32 accumulator: its last column is the class's sum of shifted rows, so the sums
    take no pass of their own. On a CPU only the block upper triangle of each Gram is
    computed (``_add_gram_upper_``) and mirrored once at the end; on CUDA it is one
    ``addmm`` per class block. Cost: about 5/8 of one ``R^T R`` on a CPU (one ``R^T R``
    on CUDA) plus the O(N d) gather and shift; memory O(K d^2 + batch d). Classes are
    processed in groups when their accumulators would exceed 256 MiB.
    """
    N, d = R.shape
    head = min(batch_size, 8192)  # enough rows for a provisional mean; no float64 copy of a chunk
    first = torch.from_numpy(np.ascontiguousarray(R[:head])).to(device).double()
    lab0 = torch.from_numpy(np.asarray(labels[:head], dtype=np.int64)).to(device)
    cnt0 = torch.bincount(lab0, minlength=n_classes).double()
    sum0 = torch.zeros(n_classes, d, dtype=torch.float64, device=device).index_add_(0, lab0, first)
    shift = torch.where(cnt0[:, None] > 0, sum0 / cnt0.clamp(min=1)[:, None], first.mean(0)[None, :]).float()
    absent = np.flatnonzero(cnt0.cpu().numpy() == 0)
    if len(absent):
        # a class the first chunk lacks (data sorted by label) is shifted by its own first
        # row: a shift far from the class's rows would let the float32 sums cancel
        classes, first_row = np.unique(labels, return_index=True)
        at = dict(zip(classes.tolist(), first_row.tolist()))
        rows = [at[c] for c in absent.tolist() if c in at]
        if rows:
            present = [c for c in absent.tolist() if c in at]
            shift[present] = torch.from_numpy(np.ascontiguousarray(R[rows])).to(device)
    counts = torch.from_numpy(np.bincount(labels, minlength=n_classes)).to(device).double()
    sums = torch.empty(n_classes, d, dtype=torch.float64, device=device)
    covs = torch.empty(n_classes, d, d, dtype=torch.float64, device=device)
    upper = torch.ones(d, d, dtype=torch.bool, device=device).triu_()
    group = max(1, _ACC_BYTES // (4 * (d + 1) ** 2))
    width = d + 1 if device.type == "cuda" else max(64, -(-d // 4))
    piece = min(N, batch_size) if device.type == "cuda" else min(N, batch_size, max(64, _PIECE_FLOATS // (d + 1)))
    buf = torch.empty(piece, d + 1, dtype=torch.float32, device=device)
    buf[:, d] = 1.0  # the gathers write columns :d only
    for g0 in range(0, n_classes, group):
        g1 = min(n_classes, g0 + group)
        acc = torch.zeros(g1 - g0, d + 1, d + 1, dtype=torch.float32, device=device)
        for start in range(0, N, batch_size):
            lab = torch.from_numpy(np.asarray(labels[start:start + batch_size], dtype=np.int64)).to(device)
            xb = torch.from_numpy(np.ascontiguousarray(R[start:start + batch_size])).to(device)
            if g0 == 0 and g1 == n_classes:
                order = torch.argsort(lab, stable=True)
            else:
                order = torch.nonzero((lab >= g0) & (lab < g1)).squeeze(1)
                order = order[torch.argsort(lab[order], stable=True)]
            per = torch.bincount(lab[order] - g0, minlength=g1 - g0)
            lo = 0
            for c, hi in enumerate(per.cumsum(0).tolist()):
                # the one gather of each row, class by class, in pieces into a reused buffer
                for a in range(lo, hi, piece):
                    blk = buf[:min(hi, a + piece) - a]
                    torch.index_select(xb, 0, order[a:a + len(blk)], out=blk[:, :d])
                    blk[:, :d] -= shift[g0 + c]
                    _add_gram_upper_(acc[c], blk, d, width)
                lo = hi
        sums[g0:g1] = acc[:, :d, d]  # sums of shifted rows: float32 sums do not cancel
        gram = acc[:, :d, :d]
        covs[g0:g1] = torch.where(upper, gram, gram.transpose(1, 2))  # mirror the upper triangle
        del acc, gram
    n = counts.clamp(min=1)
    dm = sums / n[:, None]  # class mean minus shift
    covs.div_(n[:, None, None]).baddbmm_(dm[:, :, None], dm[:, None, :], alpha=-1)
    return counts, shift.double() + dm, covs, shift


def spectral_scores(
    representations: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "centred",
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = 65536,
) -> np.ndarray:
    """Spectral-signature outlier score per row.

    Args:
        representations: (N, d) float array, e.g. the probe's penultimate layer.
        labels: (N,) int class indices.
        method: ``"centred"`` -- Algorithm 1 of Tran et al. (2018): squared projection of
            the class-centred row on the class's top principal direction; ``"robust"`` --
            the same after whitening each class with a trimmed mean and covariance.
        seed: seeds the power iteration's start block.
        device: torch device; ``None`` picks CUDA when available.
        batch_size: rows per chunk when accumulating covariances (bounds memory).

    Returns:
        (N,) float64 scores, higher = more suspicious, comparable within a class.

    Cost (centred): one pass that accumulates every class's mean and covariance (about 5/8
    of one ``R^T R`` on a CPU, where only the upper triangles are computed, plus a gather
    of the rows by class), O(K d^2) power iterations, and one O(N d K) scoring pass; extra
    memory O(K d^2 + batch d), independent of N.
    """
    if method not in ("centred", "robust"):
        raise ValueError(f"method must be 'centred' or 'robust', not {method!r}")
    device = torch.device(device) if device is not None else pick_device()
    R = representations if (isinstance(representations, np.ndarray) and representations.dtype == np.float32
                            and representations.flags.c_contiguous) else np.ascontiguousarray(
        representations, dtype=np.float32)
    labels = np.asarray(labels)
    classes, lab = np.unique(labels, return_inverse=True)
    K, d = len(classes), R.shape[1]
    counts, means, covs, shift = _centred_class_moments(R, lab, K, device, batch_size)
    dirs = torch.zeros(K, d, dtype=torch.float64, device=device)
    ok = counts >= 2
    if method == "centred" and bool(ok.any()):
        dirs[ok] = _top_directions(covs[ok], seed)
    elif method == "robust":
        for c in np.flatnonzero(ok.cpu().numpy()):
            idx = np.flatnonzero(lab == c)
            mean, cov = _robust_moments(R, idx, device, batch_size)
            w, U = torch.linalg.eigh(cov)
            w = torch.clamp(w, min=1e-6 * float(w.max()) + 1e-12)
            W = U @ torch.diag(w.rsqrt()) @ U.T
            # top direction of the whitened rows' second moment about the robust mean
            _, full = _class_moments(R, idx, device, batch_size, mean=mean)
            dirs[c] = W @ _top_directions((W @ full @ W)[None], seed, tol=1e-9, iter_dtype=torch.float64)[0]
            means[c] = mean
    # score pass: ((r - mean_c) . v_c)^2 = (r . v_c - mean_c . v_c)^2, for all classes in
    # one product of the (batch, d) rows with the (K, d) directions; no gathered or
    # centred copy of the rows
    V = dirs.float().contiguous()  # (K, d): x @ V.T as F.linear, twice as fast as x @ (d, K) on a CPU
    offs = (means * dirs).sum(1)  # (K,)
    scores = np.zeros(len(R), dtype=np.float64)
    for start in range(0, len(R), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(R[start:start + batch_size])).to(device)
        lb = torch.from_numpy(np.asarray(lab[start:start + batch_size], dtype=np.int64)).to(device)
        proj = torch.nn.functional.linear(xb, V).double().gather(1, lb[:, None]).squeeze(1) - offs[lb]
        out = proj ** 2
        out[counts[lb] < 2] = 0.0
        scores[start:start + len(xb)] = out.cpu().numpy()
    return scores


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    """Scores plus the paper's removal rule: the top ``1.5 * eps`` of every class, with
    eps ``config.spectral_eps`` or else the verdict's estimated poison rate."""
    eps = config.spectral_eps if config.spectral_eps is not None else outputs.poison_rate
    y = outputs.labels
    reps = outputs.early_representations if outputs.early_representations is not None else outputs.representations
    scores = spectral_scores(reps, y, method=config.spectral_method, seed=config.seed, device=outputs.device)
    flagged = top_fraction_per_class(scores, y, 1.5 * eps)
    return ScreenOutput(scores, flagged, screen_summary(
        {"method": config.spectral_method, "eps": float(eps), "removal_fraction_per_class": 1.5 * float(eps)},
        flagged, y, outputs.classes))


SCREEN = Screen("spectral", ("early_representations", "representations", "poison_rate"), _run,
                "spectral signature of the data-trained probe's representations early in training "
                "(Tran et al. 2018)",
                settings=("spectral_eps", "spectral_method", "seed"), canary=True, report_order=1, contract_column=0,
                evidence=("representation",))
