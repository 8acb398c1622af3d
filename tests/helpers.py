"""Small input factories shared by the test modules (import as ``from helpers import ...``)."""

import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings

from meanfield.data import to_sphere


def inputs_at_correlations(rhos, d=8, seed=0):
    """x0 with ||x0||^2 = d, then one partner per rho with correlation rho to x0 (same norm), stacked as rows."""
    rng = np.random.default_rng(seed)
    x0 = to_sphere(rng.standard_normal((1, d)))[0]
    v = rng.standard_normal(d)
    v -= (v @ x0) / d * x0
    v = to_sphere(v[None])[0]
    return np.stack([x0] + [rho * x0 + np.sqrt(1 - rho**2) * v for rho in rhos])


#: random examples per property in the slow suite (``pytest -m slow``)
SLOW_EXAMPLES = 500


def check(budget, fast, prop, examples=(), **strategies):
    """Run the property ``prop`` under ``given(**strategies)`` after the explicit ``examples`` (the issue's
    reproducers, run first in both budgets): ``fast`` derandomized examples (no shrinking, so a failure costs no more
    than the budget) or :data:`SLOW_EXAMPLES` random ones (shrunk)."""
    is_fast = budget == "fast"
    conf = settings(
        max_examples=fast if is_fast else SLOW_EXAMPLES,
        deadline=None,  # numba compiles on the first call
        derandomize=is_fast,
        database=None,
        print_blob=True,
        phases=(Phase.explicit, Phase.generate) if is_fast else tuple(Phase),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    test = given(**strategies)(prop)
    for ex in examples:
        test = example(**ex)(test)
    conf(test)()


#: the two budgets of every property: derandomized in the fast suite, random in the slow one
BUDGETS = [pytest.param("fast", id="fast"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]


@contextmanager
def documented_warnings():
    """Ignore the documented warnings (generalized definitions, no sign change, undefined debiased CKA, accuracy of
    the general path); every other RuntimeWarning (overflow, invalid value, ...) is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("error", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*(Hermite expansion|accura)", category=RuntimeWarning)
        yield
