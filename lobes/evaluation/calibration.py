"""Score calibration: affine maps fitted on dev scores, turning raw
countermeasure scores into natural-log likelihood ratios.

``s' = a s + b`` (or ``w . s + b`` for a fusion of several systems) is fitted
by prior-weighted logistic regression (Brümmer's objective, as in the
BOSARIS toolkit): minimise, at a stated prior ``P`` of bona fide,

    P mean_bonafide softplus(-(s' + logit P)) + (1 - P) mean_spoof softplus(s' + logit P)

whose minimiser makes ``s'`` an LLR. The default prior is the cost model's
effective prior (0.655 for ASVspoof 5), so calibration serves the cost at
which actDCF is read. The objective is the few lines below; ``scipy.optimize``
minimises it. (scikit-learn's ``LogisticRegression`` could fit the same model
with sample weights, but it would add a dependency for three lines and always
regularises its weights unless told not to.)

Recipes call ``calibrated_test_outputs`` once per scored set: dev fits the
map and stores it in ``calibration.json``; every other set is mapped with the
map fitted on ``scores/dev.txt`` of the same output folder (so each depth of
a multi-depth run calibrates on its own dev scores) and written to
``scores/<set>.calibrated.txt``.
"""

import json
import logging
import math
import os
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from lobes.evaluation.metrics import ASVSPOOF5_COSTS, detection_metrics
from lobes.evaluation.scores import ScoreRecord, read_scores, write_scores
from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import CALIBRATION_FILE, DEV_SET, score_path

logger = logging.getLogger(__name__)

MIN_SLOPE = 1e-6


def check_prior(prior, option="calibration_prior"):
    """``prior`` if None (the cost model's) or a number in (0, 1); else an
    error naming ``option``, so that a bad value stops a run at start-up
    rather than after training.

    Example
    -------
    >>> check_prior(1.5)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: calibration_prior must be null (the cost model's effective prior) or a bona fide prior in (0, 1),
    got 1.5
    """
    if prior is None:
        return None
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0.0 < prior < 1.0:
        raise ValueError(
            f"{option} must be null (the cost model's effective prior) or a bona fide "
            f"prior in (0, 1), got {prior!r}"
        )
    return float(prior)


def prior_or_default(prior, costs=ASVSPOOF5_COSTS, option="prior"):
    """``prior`` checked (``check_prior``), or the effective prior of the
    cost model ``costs`` when it is None: the one default of every
    calibration, fusion and detector output.

    Example
    -------
    >>> round(prior_or_default(None), 4), prior_or_default(0.5)
    (0.6552, 0.5)
    """
    prior = check_prior(prior, option=option)
    return costs.effective_prior if prior is None else prior


def fit_logistic(features, is_bonafide, prior, l2=1e-4, min_weight=None):
    """Prior-weighted logistic regression: weights ``w`` and bias ``b`` such
    that ``features @ w + b`` are LLRs (bona fide vs spoof) at ``prior``.

    Arguments
    ---------
    features : array-like, shape (n_trials, n_systems)
    is_bonafide : array-like of bool, shape (n_trials,)
    prior : float
        Prior of bona fide in (0, 1) that weights the two classes.
    l2 : float
        Penalty ``l2 / 2 * |w|^2`` on the weights (not the bias). Tiny, it
        barely moves a fit on overlapping classes but keeps the map finite
        when dev scores separate the classes perfectly, where the
        unpenalised optimum lies at infinite scale.
    min_weight : float, optional
        Lower bound of every weight (none by default: a fusion may weigh a
        system negatively).

    Example
    -------
    >>> w, b = fit_logistic([[2.0], [1.0], [-1.0], [-2.0], [0.5], [-0.5]],
    ...                     [True, True, False, False, False, True], 0.5)
    >>> bool(w[0] > 0)
    True
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    target = np.asarray(is_bonafide, dtype=bool)
    if not 0.0 < prior < 1.0:
        raise ValueError(f"calibration prior must lie in (0, 1), got {prior}")
    n_bonafide, n_spoof = int(target.sum()), int((~target).sum())
    if n_bonafide == 0 or n_spoof == 0:
        raise ValueError(
            f"calibration needs bona fide and spoof scores, got {n_bonafide} and {n_spoof}"
        )
    # Per-trial weight of each class, and +1/-1 labels: the loss of a trial
    # is weight * softplus(-label * (llr + logit prior)).
    weight = np.where(target, prior / n_bonafide, (1 - prior) / n_spoof)
    sign = np.where(target, 1.0, -1.0)
    offset = np.log(prior / (1 - prior))
    design = np.hstack([x, np.ones((x.shape[0], 1))])

    def objective(params):
        margin = sign * (design @ params + offset)
        loss = np.sum(weight * np.logaddexp(0.0, -margin))
        grad = design.T @ (-weight * sign * expit(-margin))
        loss += 0.5 * l2 * np.sum(params[:-1] ** 2)
        grad[:-1] += l2 * params[:-1]
        return loss, grad

    start = np.concatenate([np.full(x.shape[1], 1.0 / x.shape[1]), [0.0]])
    bounds = [(min_weight, None)] * x.shape[1] + [(None, None)]
    result = minimize(
        objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000}
    )
    if not np.all(np.isfinite(result.x)):
        raise RuntimeError(f"logistic regression diverged: {result.message}")
    return result.x[:-1], float(result.x[-1])


@dataclass(frozen=True)
class Calibration:
    """An affine map ``a s + b`` from raw scores to LLRs, fitted at ``prior``."""

    a: float
    b: float
    prior: float

    def apply(self, scores):
        """Calibrated scores (natural-log LLRs): ``a * scores + b``."""
        return self.a * np.asarray(scores, dtype=np.float64) + self.b

    def apply_records(self, records):
        """The records with calibrated scores."""
        calibrated = self.apply([r.score for r in records]).tolist()
        return [ScoreRecord(r.utt_id, r.attack, r.key, s) for r, s in zip(records, calibrated)]


def fit_calibration(records, prior=None, costs=ASVSPOOF5_COSTS):
    """Fits ``a s + b`` on scored dev records at ``prior`` (bona fide; the
    cost model's effective prior when None).

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> dev = [R(str(i), "-", "bonafide", s) for i, s in enumerate([20.0, 10.0, 5.0, -10.0])]
    >>> dev += [R(f"s{i}", "A01", "spoof", s) for i, s in enumerate([-20.0, -5.0, 8.0, -30.0])]
    >>> cal = fit_calibration(dev)
    >>> 0 < cal.a < 1, round(cal.prior, 4)  # scores ten times too confident shrink
    (True, 0.6552)
    """
    prior = prior_or_default(prior, costs)
    scores = np.array([r.score for r in records])
    is_bonafide = np.array([r.key == "bonafide" for r in records])
    # The map stays increasing (a >= MIN_SLOPE), so EER and minDCF never
    # change: scores that rank worse than chance on dev are not turned round.
    weights, bias = fit_logistic(scores[:, None], is_bonafide, prior, min_weight=MIN_SLOPE)
    return Calibration(a=float(weights[0]), b=bias, prior=prior)


def read_calibration(model_dir):
    """The ``Calibration`` in ``<model_dir>/calibration.json``, or None if absent.

    A file that is not a calibration (missing or non-numeric ``a``, ``b``,
    ``prior``, a slope that is not positive) is an error naming the file.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "calibration.json").write_text('{"a": 0.5, "b": 1.0, "prior": 0.6}')
    >>> read_calibration(folder)
    Calibration(a=0.5, b=1.0, prior=0.6)
    >>> _ = (folder / "calibration.json").write_text('{"a": -1, "b": 0, "prior": 0.5}')
    >>> read_calibration(folder)
    Traceback (most recent call last):
    ...
    ValueError: .../calibration.json: expected numbers a > 0, b and 0 < prior < 1, got {'a': -1, 'b': 0, 'prior': 0.5}
    >>> _ = (folder / "calibration.json").write_text('{"a": 0.5, "b')
    >>> read_calibration(folder)
    Traceback (most recent call last):
    ...
    ValueError: .../calibration.json is not a calibration file (not valid JSON: Unterminated string ...)
    """
    path = os.path.join(str(model_dir), CALIBRATION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fin:
            fields = json.load(fin)
    except (ValueError, UnicodeDecodeError) as err:  # empty, truncated or not JSON
        raise ValueError(f"{path} is not a calibration file (not valid JSON: {err})") from None
    try:
        a, b, prior = (float(fields[key]) for key in ("a", "b", "prior"))
        valid = a > 0 and math.isfinite(a) and math.isfinite(b) and 0 < prior < 1
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        shown = {k: fields.get(k) for k in ("a", "b", "prior")} if isinstance(fields, dict) else fields
        raise ValueError(f"{path}: expected numbers a > 0, b and 0 < prior < 1, got {shown}")
    return Calibration(a=a, b=b, prior=prior)


def posterior(llr, prior):
    """Posterior probability of bona fide given calibrated ``llr`` (scalar or
    array) at a bona fide ``prior``: ``sigmoid(llr + logit(prior))``.

    Example
    -------
    >>> round(float(posterior(0.0, 0.25)), 4), posterior(np.array([-50.0, 50.0]), 0.5).round(3).tolist()
    (0.25, [0.0, 1.0])
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must lie in (0, 1), got {prior}")
    return expit(np.asarray(llr, dtype=np.float64) + math.log(prior / (1.0 - prior)))


def calibrated_path(folder, name):
    """``<folder>/scores/<name>.calibrated.txt``."""
    return score_path(folder, name, calibrated=True)


def dev_calibration(folder, prior=None, costs=ASVSPOOF5_COSTS):
    """The calibration of ``folder``: the one saved in ``calibration.json``
    when the dev set was scored there, or else (another prior asked for, a
    saved file older than ``scores/dev.txt``, or none) one fitted on
    ``scores/dev.txt``. None when the dev set has not been scored there."""
    dev_scores = score_path(folder, DEV_SET)
    if not os.path.isfile(dev_scores):
        return None
    prior = prior_or_default(prior, costs)
    saved = os.path.join(folder, CALIBRATION_FILE)
    if os.path.isfile(saved) and os.path.getmtime(saved) >= os.path.getmtime(dev_scores):
        calibration = read_calibration(folder)
        if calibration.prior == prior:
            return calibration
    return fit_calibration(read_scores(dev_scores), prior, costs)


def calibrated_test_outputs(records, folder, name, prior=None, costs=ASVSPOOF5_COSTS):
    """Calibration outputs of one scored set, as entries for its results.

    ``name == "dev"``: fits the map on ``records``, saves it to
    ``<folder>/calibration.json`` and reports the dev metrics after
    calibration (optimistic: fitted on themselves). Any other set: applies
    the map fitted on ``<folder>/scores/dev.txt``, writes
    ``scores/<name>.calibrated.txt`` and reports EER, minDCF (both unchanged
    by an increasing map), actDCF and Cllr of the calibrated scores. Without
    dev scores nothing is calibrated, and the results say why.
    """
    output = calibrated_path(folder, name)
    if name == DEV_SET:
        calibration = fit_calibration(records, prior, costs)
        atomic_write_text(
            os.path.join(folder, CALIBRATION_FILE),
            json.dumps({**asdict(calibration), "fitted_on": f"scores/{DEV_SET}.txt"}, indent=2)
            + "\n",
        )
    else:
        calibration = dev_calibration(folder, prior, costs)
    if calibration is None:
        if os.path.isfile(output):
            os.remove(output)  # a stale file from an earlier run would mislead
        reason = f"no dev scores in {os.path.join(folder, 'scores')}: score the dev set first"
        logger.warning("%s: not calibrated (%s)", name, reason)
        return {"calibration": None, "calibration_note": reason}
    raw = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    is_bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
    calibrated = calibration.apply(raw)
    entries = {
        "calibration": {**asdict(calibration), "fitted_on": f"scores/{DEV_SET}.txt"},
        "calibrated": detection_metrics(calibrated[is_bonafide], calibrated[~is_bonafide], costs),
    }
    if name != DEV_SET:
        write_scores(output, records, calibrated.tolist())
        entries["calibrated_score_file"] = output
    return entries
