"""The neural feature ansatz and feature learning as alignment (Beaglehole et al. 2024)."""

from .._checks import MAX_OPERATOR_ENTRIES, check_operator_size
from .early import cnfc_early_infinite, cnfc_early_kernels
from .measures import (
    METHODS,
    METRICS,
    cnfc,
    cnfc_early,
    cuc_ratio,
    double_centered_nfc,
    nfc,
    ptk_centered_nfc,
)
from .quadratic import (
    FORMS,
    SecondDerivatives,
    quadratic_expected_second_derivatives,
    quadratic_free_cnfc,
    quadratic_r_moments,
)
from .targets import alignment_reversing, chain_monomial, chain_monomial_egop, chain_monomial_gradient, egop

__all__ = [
    "FORMS",
    "MAX_OPERATOR_ENTRIES",
    "METHODS",
    "METRICS",
    "SecondDerivatives",
    "alignment_reversing",
    "chain_monomial",
    "chain_monomial_egop",
    "chain_monomial_gradient",
    "check_operator_size",
    "cnfc",
    "cnfc_early",
    "cnfc_early_infinite",
    "cnfc_early_kernels",
    "cuc_ratio",
    "double_centered_nfc",
    "egop",
    "nfc",
    "ptk_centered_nfc",
    "quadratic_expected_second_derivatives",
    "quadratic_free_cnfc",
    "quadratic_r_moments",
]
