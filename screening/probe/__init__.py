"""The probe: small models trained on the data whose outputs the screens read.

* :func:`cross_validated_probe` (``cross_validated.py``) -- k-fold over the data:
  out-of-sample ``pred_probs`` (N, K) (and, on request, out-of-fold representations).
* :func:`anchored_probe` (``anchored.py``) -- only with a trusted reference: trained on
  the reference, refined by cross-fitted self-training; it never learns a trigger that
  only poisoned rows carry, so poisoned rows look mislabelled to it.
* :func:`data_trained_probe` (``attribution.py``) -- one fit on all rows, as a victim
  model would be trained: TracIn self-influence, per-row loss dynamics and the final
  representations.

Networks in ``models.py``, the one training loop in ``training.py``, input
standardisation in ``normaliser.py``, folds and the label margin in ``common.py``. GPU
when available, CPU otherwise; inference is batched so memory stays bounded.
"""

from .anchored import AnchoredProbe, admit_span, anchored_probe, reference_duplicates
from .attribution import DataTrainedProbe, data_trained_probe, influence_scores
from .common import label_margin, stratified_folds
from .cross_validated import CrossValidatedProbe, cross_validated_probe
from .models import cnn_step_flops, inference_rows, make_model
from .normaliser import Normaliser, normalised_rows

__all__ = ["AnchoredProbe", "CrossValidatedProbe", "DataTrainedProbe", "Normaliser", "admit_span", "anchored_probe",
           "cnn_step_flops", "cross_validated_probe", "data_trained_probe", "inference_rows", "influence_scores",
           "label_margin", "make_model", "normalised_rows", "reference_duplicates", "stratified_folds"]
