"""Every use of another library's private or version-dependent API, in one place.

Each section names the library and why the private name is needed, so that a
change upstream breaks one file and one test, not the estimators.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# scikit-learn: parameter-constraint objects. scikit-learn declares estimator
# parameters as data (``_parameter_constraints``) and validates them in
# ``BaseEstimator._validate_params``; the constraint classes are not public.
# ---------------------------------------------------------------------------
from sklearn.utils._param_validation import Interval, StrOptions  # noqa: F401


def validate_params(estimator) -> None:
    """Check ``estimator``'s parameters against its ``_parameter_constraints``.

    Raises scikit-learn's ``InvalidParameterError`` (a ``ValueError`` and
    ``TypeError``), whose message names the parameter, the allowed values and the
    value given.
    """
    estimator._validate_params()
