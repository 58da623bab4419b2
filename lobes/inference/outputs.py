"""Calibrated outputs of a detector: raw score -> LLR -> posterior -> decision.

The calibration (``lobes.evaluation.calibration``, fitted on dev) maps a raw bona fide
logit ``s`` to a log-likelihood ratio ``llr = a s + b``. At a prior ``P`` of
bona fide, the posterior probability of bona fide is
``sigmoid(llr + logit P)`` and the Bayes decision (minimum expected cost) is
bona fide when ``llr >= -logit P``. The default prior is the ASVspoof 5 cost
model's effective prior (``lobes.evaluation.metrics.ASVSPOOF5_COSTS``), at which that
threshold is the one actDCF is read at.
"""

import math
from dataclasses import dataclass

from lobes.evaluation.calibration import posterior, prior_or_default
from lobes.evaluation.metrics import ASVSPOOF5_COSTS

OUTPUTS = ("raw", "llr", "prob")
DESCRIPTIONS = {
    "raw": "raw score: bona fide logit of the model (higher = more bona fide), not calibrated",
    "llr": "calibrated log-likelihood ratio, natural log, bona fide vs spoof",
    "prob": "posterior probability of bona fide",
}


@dataclass(frozen=True)
class CalibratedOutputs:
    """LLRs, posteriors and Bayes decisions from raw scores.

    Arguments
    ---------
    a, b : float
        The calibration map ``llr = a * raw + b``.
    prior : float
        Prior of bona fide for posteriors and the Bayes threshold.

    Example
    -------
    >>> out = CalibratedOutputs(a=0.5, b=-1.0, prior=0.5)
    >>> out.llr(4.0), out.posterior(1.0), out.bayes_threshold
    (1.0, 0.7310585786300049, 0.0)
    >>> out.decision(1.0), out.decision(-0.5)
    ('bonafide', 'spoof')
    >>> round(CalibratedOutputs(1.0, 0.0).bayes_threshold, 4)  # ASVspoof 5: -ln(beta)
    -0.6419
    """

    a: float
    b: float
    prior: float = ASVSPOOF5_COSTS.effective_prior

    @classmethod
    def from_calibration(cls, calibration, prior=None):
        """From a ``lobes.evaluation.calibration.Calibration``; ``prior`` None: the cost model's."""
        return cls(calibration.a, calibration.b, prior_or_default(prior))

    @property
    def bayes_threshold(self):
        """LLR threshold of the Bayes decision at ``prior``: ``-logit(prior)``."""
        return math.log((1.0 - self.prior) / self.prior)

    def llr(self, raw):
        """The calibrated LLR of a raw score: ``a * raw + b``."""
        return self.a * float(raw) + self.b

    def posterior(self, llr):
        """Probability of bona fide given ``llr`` at ``prior``."""
        return float(posterior(llr, self.prior))

    def decision(self, llr, threshold=None):
        """``bonafide`` at or above the Bayes threshold (or ``threshold``)."""
        threshold = self.bayes_threshold if threshold is None else threshold
        return "bonafide" if llr >= threshold else "spoof"

    def column(self, raw, output):
        """The value of ``output`` (``raw``, ``llr`` or ``prob``) for a raw score."""
        if output == "raw":
            return float(raw)
        llr = self.llr(raw)
        return llr if output == "llr" else self.posterior(llr)
