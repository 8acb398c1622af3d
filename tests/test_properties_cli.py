"""Property-based tests (hypothesis) of the ``meanfield`` command line, run in-process through ``cli.main``.

Random valid argument lists of every command exit 0 with parseable output (a table whose first line is the header,
or, with ``--json``, strict JSON: no ``NaN``/``Infinity`` tokens); random invalid ones (one option's value replaced
by NaN, inf, a negative or zero number, a non-number, an out-of-range value, an unreadable or unwritable path)
exit 2 with a one-line message on stderr and no traceback. As in ``test_properties.py``, each property runs in the
fast suite with a small derandomized budget and, marked ``slow``, with ``SLOW_EXAMPLES`` random examples.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import warnings

import numpy as np
import pytest
from helpers import SLOW_EXAMPLES, check  # noqa: F401 (SLOW_EXAMPLES: the slow budget)
from hypothesis import strategies as st

from meanfield import ACTIVATION_NAMES, get_activation
from meanfield.activations import KIND_HERMITE
from meanfield.cli import main

#: examples per property in the slow suite

BUDGETS = [pytest.param("fast", id="fast"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]

HERMITE = tuple(a for a in ACTIVATION_NAMES if get_activation(a).kind == KIND_HERMITE)
ACTIVATIONS = tuple(ACTIVATION_NAMES) + ("leaky_relu:0.2",)
BOUNDED = ("erf", "tanh", "sigmoid")


def run_cli(argv):
    """(exit status, stdout, stderr) of ``meanfield argv`` run in-process; documented accuracy warnings ignored."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("error", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*(Hermite expansion|accura)", category=RuntimeWarning)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse exits 2 on a parse error
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def assert_ok(argv, code, out, err):
    assert code == 0, f"meanfield {' '.join(argv)} exited {code}: {err}"
    assert "Traceback" not in out + err
    if "--json" in argv:
        data = json.loads(out, parse_constant=_reject_constant)
        assert isinstance(data, dict) and data
    else:
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) >= 2, f"no table in {out!r}"
        header = lines[0].split()
        assert header and not any(_is_number(h) for h in header), f"first line is not a header: {lines[0]!r}"


def assert_refused(argv, code, out, err):
    assert code == 2, f"meanfield {' '.join(argv)} exited {code} (stdout {out[:200]!r}, stderr {err[:300]!r})"
    assert "Traceback" not in out + err
    msg = err.strip()
    assert msg and "\n" not in msg, f"not a one-line message: {err!r}"
    assert "error" in msg


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def num(x):
    """A float as the command line would get it."""
    return repr(float(x))


def log_uniform(lo, hi):
    return st.floats(lo, hi).map(lambda e: float(10.0**e))


# ---------------------------------------------------------------------------------------------------------------
# valid argument lists, per command
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def network_args(draw, hermite_sw=(0.3, 1.5), hermite_sb=0.5):
    act = draw(st.sampled_from(ACTIVATIONS))
    if act in HERMITE:  # keep the general path in its documented accuracy domain (q <= 10)
        sw, sb = draw(st.floats(*hermite_sw)), draw(st.one_of(st.just(0.0), st.floats(0.0, hermite_sb)))
    else:
        sw, sb = draw(log_uniform(-1.0, 0.7)), draw(st.one_of(st.just(0.0), log_uniform(-4.0, 0.5)))
    return ["--activation", act, "--sigma-w2", num(sw), "--sigma-b2", num(sb)]


def flags(draw, *names):
    return [f for f in names if draw(st.booleans())]


@st.composite
def phase_argv(draw):
    return ["phase", *draw(network_args(hermite_sw=(0.05, 8.0), hermite_sb=4.0)), *flags(draw, "--json")]


@st.composite
def eoc_argv(draw):
    act = draw(st.sampled_from(ACTIVATIONS))
    sb = 0.0 if act.startswith(("relu", "leaky", "linear")) else draw(st.one_of(st.just(0.0), log_uniform(-4, 2)))
    return ["eoc", "--activation", act, "--sigma-b2", num(sb), *flags(draw, "--json")]


@st.composite
def kernel_argv(draw, tmp):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    np.save(os.path.join(tmp, "X.npy"), rng.standard_normal((n, d)))
    argv = ["kernel", "--input", os.path.join(tmp, "X.npy"), "--depth", str(draw(st.integers(1, 6)))]
    argv += draw(network_args())
    if draw(st.booleans()):
        np.save(os.path.join(tmp, "X2.npy"), rng.standard_normal((draw(st.integers(1, 4)), d)))
        argv += ["--input2", os.path.join(tmp, "X2.npy")]
    if draw(st.booleans()):
        argv += ["--parameterization", "standard", "--width", str(draw(st.integers(1, 500)))]
    if draw(st.booleans()):
        argv += ["--output", os.path.join(tmp, draw(st.sampled_from(["K.npz", "K", "sub.K.npz"])))]
    return argv + flags(draw, "--layers", "--json")


@st.composite
def phase_diagram_argv(draw, tmp):
    act = draw(st.sampled_from(("relu", "leaky_relu:0.2", "erf", "tanh", "sigmoid")))
    a = draw(log_uniform(-2, 0.5))
    b = a * (1.0 + draw(st.floats(0.05, 4.0)))
    sb = draw(st.floats(0.0, 1.0))
    argv = ["phase-diagram", "--activation", act, "--sigma-w2", f"{num(a)}:{num(b)}:{draw(st.integers(2, 6))}"]
    argv += ["--sigma-b2", draw(st.sampled_from((num(sb), f"{num(sb)}:{num(sb + 0.5)}:{draw(st.integers(2, 4))}")))]
    if draw(st.sampled_from((False, False, True))):
        argv += ["--plot", os.path.join(tmp, "pd.png")]
    return argv + flags(draw, "--json")


@st.composite
def peak_layer_argv(draw, tmp):
    tokens = []
    for _ in range(draw(st.integers(1, 3))):
        a = draw(st.integers(2, 300))
        kind = draw(st.sampled_from(("int", "range", "step")))
        if kind == "int":
            tokens.append(str(a))
        else:
            b = draw(st.integers(a, a + 300))
            tokens.append(f"{a}:{b}" if kind == "range" else f"{a}:{b}:{draw(st.integers(1, 50))}")
    argv = ["peak-layer", "--depth", *tokens, *draw(network_args(hermite_sb=0.2))]
    argv += ["--eps", num(draw(st.floats(0.01, 1.99))), "--form", draw(st.sampled_from(("corrected", "published")))]
    argv += ["--score", draw(st.sampled_from(("crossing", "harmonic")))]
    if draw(st.sampled_from((False, False, False, True))):
        argv += ["--plot", os.path.join(tmp, "p.png")]
    return argv + flags(draw, "--json")


@st.composite
def simulate_argv(draw, tmp):
    argv = ["simulate", "--random", f"{draw(st.integers(1, 4))},{draw(st.integers(1, 4))}"]
    argv += ["--depth", str(draw(st.integers(1, 4))), "--width", str(draw(st.integers(1, 32)))]
    argv += ["--nets", str(draw(st.integers(2, 20))), *draw(network_args())]
    argv += ["--parameterization", draw(st.sampled_from(("ntk", "standard"))), "--seed", str(draw(st.integers(0, 99)))]
    qs = draw(st.lists(st.sampled_from(("nngp", "ntk", "backward", "ntk_layers")), min_size=1, max_size=3, unique=True))
    argv += ["--quantities", ",".join(qs)]
    if draw(st.booleans()):
        argv += ["--batch-size", str(draw(st.integers(1, 8)))]
    if draw(st.booleans()):
        argv += ["--output", os.path.join(tmp, "S.npz")]
    return argv + flags(draw, "--layers", "--json")


@st.composite
def dispersion_argv(draw):
    simulate = draw(st.booleans())
    width = draw(st.integers(1, 32 if simulate else 200))
    argv = ["dispersion", "--sigma-w2", num(draw(log_uniform(-1.0, 1.0))), "--width", str(width)]
    argv += [
        "--depth",
        str(draw(st.integers(1, 8 if simulate else 100))),
        "--alpha0",
        num(draw(st.floats(1.0 / width, 10.0))),
    ]
    argv += ["--x0-norm2", num(draw(log_uniform(-5.0, 5.0)))]
    if simulate:  # a small Monte Carlo (its cost is width * depth * N)
        argv += ["--simulate", str(draw(st.integers(3, 50))), "--seed", str(draw(st.integers(0, 99)))]
    return argv + flags(draw, "--published", "--json")


@st.composite
def silent_argv(draw):
    argv = ["silent", "--dim", str(draw(st.integers(2, 50))), "--sigma", num(draw(log_uniform(-4.0, -1.0)))]
    argv += ["--width", str(draw(st.integers(1, 100))), "--scale", num(draw(log_uniform(-0.5, 1.0)))]
    argv += ["--depth", str(draw(st.integers(2, 5))), "--frac", num(draw(st.floats(0.05, 0.95)))]
    return argv + flags(draw, "--json")


@st.composite
def nfa_early_argv(draw):
    task = draw(st.sampled_from(("sign", "chain")))
    argv = ["nfa-early", "--depth", str(draw(st.integers(2, 4))), *draw(network_args())]
    argv += ["--dim", str(draw(st.integers(3, 10))), "--samples", str(draw(st.integers(8, 40))), "--task", task]
    argv += ["--seed", str(draw(st.integers(0, 99)))]
    if draw(st.booleans()):
        argv += ["--width", str(draw(st.integers(4, 32))), "--nets", str(draw(st.integers(2, 6)))]
    return argv + flags(draw, "--json")


@st.composite
def predict_argv(draw, tmp):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, m, d, k = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(0, 2))
    for name, shape in (("Xp", (n, d)), ("yp", (n, k) if k else (n,)), ("Xtp", (m, d))):
        np.save(os.path.join(tmp, f"{name}.npy"), rng.standard_normal(shape))
    argv = ["predict", "--train", os.path.join(tmp, "Xp.npy"), "--targets", os.path.join(tmp, "yp.npy")]
    argv += ["--test", os.path.join(tmp, "Xtp.npy"), "--depth", str(draw(st.integers(1, 5))), *draw(network_args())]
    argv += ["--diag-reg", num(draw(log_uniform(-3.0, 0.0)))]  # random inputs may give a singular kernel
    if draw(st.booleans()):
        argv += ["--kernel", "nngp"]
    elif draw(st.booleans()):
        argv += ["--time", ",".join(num(t) for t in draw(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=3)))]
    if draw(st.booleans()):
        argv += ["--output", os.path.join(tmp, "P.npz")]
    return argv + flags(draw, "--mean-only", "--json")


@st.composite
def experiment_argv(draw, tmp):
    """The smoke preset of ``experiment equilibrium`` (a second or two); the output file is named by the settings,
    so a rerun with the same settings resumes it and one with other settings never meets it."""
    depths = sorted(draw(st.sets(st.sampled_from((3, 4, 6)), min_size=1, max_size=2)))
    runs, seed = draw(st.integers(1, 2)), draw(st.integers(0, 3))
    scale = draw(st.sampled_from(("0.5", "1.0")))
    nostop = draw(st.booleans())
    argv = ["experiment", "equilibrium", "--preset", "smoke", "--runs", str(runs), "--seed", str(seed)]
    argv += ["--depths", ",".join(map(str, depths)), "--lr-scale", scale] + (["--no-stop"] if nostop else [])
    if draw(st.booleans()):
        name = f"eh-{'-'.join(map(str, depths))}-{seed}-{scale}-{int(nostop)}.json"
        argv += ["--out", os.path.join(tmp, name)]
    return argv + flags(draw, "--json")


def _documented_refusal(argv, err):
    """Valid arguments whose refusal is documented: no edge of chaos for that activation and bias; labels of the
    sampled task constant."""
    if argv[0] == "eoc":
        act = argv[argv.index("--activation") + 1]
        return act not in BOUNDED and "no edge of chaos" in err
    return argv[0] == "nfa-early" and "labels are constant" in err


def _valid(argv_and_tmp):
    argv, tmp = argv_and_tmp
    code, out, err = run_cli(argv)
    if code == 2 and _documented_refusal(argv, err):
        assert_refused(argv, code, out, err)
        return
    assert_ok(argv, code, out, err)
    for opt in ("--output", "--plot"):
        if opt in argv:
            path = argv[argv.index(opt) + 1]
            reported = json.loads(out).get("output") if "--json" in argv else None
            # the file written is the one the CLI names: the path as typed, or with the suffix numpy/matplotlib add
            # (then the output must name it)
            written = [p for p in (reported, path, path + ".npz", path + ".png") if p and os.path.exists(p)]
            assert any(p == path or p in out for p in written), f"{opt} {path} not written where reported"
            named = reported or next((w for w in out.split() if w.startswith(tmp)), path)
            assert os.path.isfile(named.rstrip(".,;")), f"{opt}: the command names {named!r}, which is not a file"


COMMANDS = {
    "phase": lambda tmp: phase_argv(),
    "phase-diagram": phase_diagram_argv,
    "eoc": lambda tmp: eoc_argv(),
    "kernel": kernel_argv,
    "peak-layer": peak_layer_argv,
    "simulate": simulate_argv,
    "dispersion": lambda tmp: dispersion_argv(),
    "silent": lambda tmp: silent_argv(),
    "nfa-early": lambda tmp: nfa_early_argv(),
    "predict": predict_argv,
    "experiment": experiment_argv,
}

FAST_VALID = {
    "phase": 12,
    "phase-diagram": 4,
    "eoc": 8,
    "kernel": 12,
    "peak-layer": 6,
    "simulate": 10,
    "dispersion": 10,
    "silent": 10,
    "nfa-early": 6,
    "predict": 6,
    "experiment": 3,
}


@pytest.fixture(scope="module")
def tmp():
    with tempfile.TemporaryDirectory() as path:
        yield path


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_valid_arguments_exit_zero_with_parseable_output(command, budget, tmp):
    check(budget, FAST_VALID[command], _valid, argv_and_tmp=COMMANDS[command](tmp).map(lambda a: (a, tmp)))


# ---------------------------------------------------------------------------------------------------------------
# invalid argument lists: one option's value replaced
# ---------------------------------------------------------------------------------------------------------------

POSITIVE_FLOAT = ["nan", "inf", "-inf", "-1", "0", "abc", "", "1e400", "1+2j", "True", "-1e-300"]
NONNEGATIVE_FLOAT = ["nan", "inf", "-inf", "-1", "abc", "", "1e400", "-1e-300", "1j"]
POSITIVE_INT = ["0", "-3", "1.5", "abc", "", "1e3", "nan", "inf"]
ACTIVATION = ["relu6", "", "RELU", "tanh:2", "leaky_relu:abc", "leaky_relu:nan", "leaky_relu:inf"]
BAD_PATHS = ["/nonexistent/dir/out.npz", "/proc/out.npz", "{tmp}"]

#: option -> bad values, per command (an option absent from the valid argv is appended)
INVALID = {
    "phase": {"--sigma-w2": POSITIVE_FLOAT, "--sigma-b2": NONNEGATIVE_FLOAT, "--activation": ACTIVATION},
    "phase-diagram": {
        "--sigma-w2": POSITIVE_FLOAT + ["0:1:5", "2:1:5", "1:2", "1:2:1", "1:2:x", "nan:1:3", "-1:2:3", "1:inf:3"],
        "--sigma-b2": NONNEGATIVE_FLOAT + ["-1:0:3", "0:1", "0:nan:3"],
        "--activation": ACTIVATION,
        "--plot": ["/nonexistent/dir/p.png", "/proc/p.png", "{tmp}", "{tmp}/p.xyz"],
    },
    "eoc": {"--sigma-b2": NONNEGATIVE_FLOAT, "--activation": ACTIVATION},
    "kernel": {
        "--depth": POSITIVE_INT,
        "--sigma-w2": POSITIVE_FLOAT,
        "--sigma-b2": NONNEGATIVE_FLOAT,
        "--activation": ACTIVATION,
        "--width": POSITIVE_INT,
        "--output": BAD_PATHS,
        "--input": [
            "/nonexistent/X.npy",
            "{tmp}",
            "{tmp}/text.npy",
            "{tmp}/nan.npy",
            "{tmp}/cube.npy",
            "{tmp}/complex.npy",
            "{tmp}/arrays.npz",
            "{tmp}/object.npy",
            "{tmp}/vector.npy",
        ],
        "--parameterization": ["ntp", "", "NTK"],
    },
    "peak-layer": {
        "--depth": ["1", "0", "-5", "5:3", "2:10:0", "abc", "2.5", "10:x", "20000000", "2:3:4:5", ""],
        "--eps": ["0", "2", "nan", "-0.5", "abc", "inf", "2.5"],
        "--sigma-w2": POSITIVE_FLOAT,
        "--sigma-b2": NONNEGATIVE_FLOAT,
        "--activation": ACTIVATION,
        "--form": ["exact", ""],
        "--plot": ["/nonexistent/dir/p.png", "/proc/p.png", "{tmp}"],
    },
    "simulate": {
        "--depth": POSITIVE_INT,
        "--width": POSITIVE_INT,
        "--nets": POSITIVE_INT + ["1"],
        "--sigma-w2": POSITIVE_FLOAT,
        "--sigma-b2": NONNEGATIVE_FLOAT,
        "--activation": ACTIVATION,
        "--seed": ["-1", "abc", "1.5"],
        "--random": ["0,3", "3", "a,b", "3,0", "-1,2", "3,3,3", ""],
        "--quantities": ["foo", "nngp,foo", ""],
        "--batch-size": POSITIVE_INT,
        "--output": BAD_PATHS,
    },
    "dispersion": {
        "--sigma-w2": POSITIVE_FLOAT,
        "--width": POSITIVE_INT,
        "--depth": POSITIVE_INT,
        "--alpha0": POSITIVE_FLOAT,
        "--x0-norm2": POSITIVE_FLOAT,
        "--simulate": ["-1", "1", "2", "abc", "1.5"],
        "--seed": ["-1", "abc"],
    },
    "silent": {
        "--dim": POSITIVE_INT + ["1"],
        "--sigma": POSITIVE_FLOAT,
        "--width": POSITIVE_INT,
        "--scale": POSITIVE_FLOAT,
        "--depth": POSITIVE_INT + ["1"],
        "--frac": ["0", "1", "1.5", "nan", "abc", "-0.5"],
    },
    "nfa-early": {
        "--depth": POSITIVE_INT + ["1"],
        "--sigma-w2": POSITIVE_FLOAT,
        "--sigma-b2": NONNEGATIVE_FLOAT,
        "--activation": ACTIVATION,
        "--dim": POSITIVE_INT,
        "--samples": POSITIVE_INT + ["1"],
        "--width": POSITIVE_INT,
        "--nets": POSITIVE_INT + ["1"],
        "--task": ["", "parity"],
    },
    "predict": {
        "--depth": POSITIVE_INT,
        "--sigma-w2": POSITIVE_FLOAT,
        "--sigma-b2": NONNEGATIVE_FLOAT,
        "--activation": ACTIVATION,
        "--diag-reg": ["nan", "inf", "-inf", "-1", "abc", "", "1e400", "-1e-300"],
        "--lr": ["nan", "inf", "-1", "0", "abc", "", "1e9"],
        "--time": ["nan", "-1", "abc", "", "1,,2", "1,-1"],
        "--kernel": ["gp", ""],
        "--output": BAD_PATHS,
        "--train": [
            "/nonexistent/X.npy",
            "{tmp}",
            "{tmp}/text.npy",
            "{tmp}/nan.npy",
            "{tmp}/cube.npy",
            "{tmp}/complex.npy",
            "{tmp}/arrays.npz",
            "{tmp}/object.npy",
            "{tmp}/vector.npy",
        ],
        "--targets": ["/nonexistent/y.npy", "{tmp}/nan.npy", "{tmp}/cube.npy", "{tmp}/object.npy"],
    },
    "experiment": {
        "--runs": POSITIVE_INT,
        "--lr-scale": POSITIVE_FLOAT,
        "--workers": POSITIVE_INT,
        "--seed": ["-1", "abc", "1.5"],
        "--depths": ["15", "3,15", "", "abc", "2.5"],
        "--preset": ["", "fast"],
        "--dataset": ["", "mnist"],
        "--residual": ["2", ""],
        "--out": BAD_PATHS,
    },
}


def _bad_inputs(tmp):
    """Files that are not an (n, d) float array in .npy format."""
    with open(os.path.join(tmp, "text.npy"), "w") as fh:
        fh.write("1 2 3\n4 5 6\n")
    np.save(os.path.join(tmp, "nan.npy"), np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(os.path.join(tmp, "cube.npy"), np.ones((2, 2, 2)))
    np.save(os.path.join(tmp, "complex.npy"), np.array([[1.0 + 1j, 0.0], [0.0, 1.0]]))
    np.save(os.path.join(tmp, "vector.npy"), np.ones(3))
    np.savez(os.path.join(tmp, "arrays.npz"), X=np.ones((2, 2)))
    np.save(os.path.join(tmp, "object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _replace(argv, option, value):
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
        if option == "--depth" and argv[0] == "peak-layer":  # drop the other depth tokens
            i = argv.index(option) + 2
            while i < len(argv) and not argv[i].startswith("--"):
                del argv[i]
    else:
        argv += [option, value]
    if option == "--width" and argv[0] == "kernel" and "--parameterization" not in argv:
        argv += ["--parameterization", "standard"]
    if option == "--nets" and argv[0] == "nfa-early" and "--width" not in argv:
        argv += ["--width", "8"]
    return argv


@st.composite
def invalid_argv(draw, command, tmp):
    argv = draw(COMMANDS[command](tmp))
    option = draw(st.sampled_from(sorted(INVALID[command])))
    value = draw(st.sampled_from(INVALID[command][option])).replace("{tmp}", tmp)
    if option == "--input" and "--input" not in argv:  # simulate takes --input or --random
        return argv
    if argv[0] == "simulate" and option == "--random":
        argv = [a for i, a in enumerate(argv) if a != "--input" and (i == 0 or argv[i - 1] != "--input")]
    return _replace(argv, option, value)


def _invalid(argv_and_tmp):
    argv, tmp = argv_and_tmp
    code, out, err = run_cli(argv)
    if code == 2 and argv[0] == "eoc" and _documented_refusal(argv, err):
        return
    assert_refused(argv, code, out, err)


FAST_INVALID = {
    "phase": 15,
    "phase-diagram": 8,
    "eoc": 10,
    "kernel": 20,
    "peak-layer": 15,
    "simulate": 15,
    "dispersion": 12,
    "silent": 12,
    "nfa-early": 12,
    "predict": 10,
    "experiment": 10,
}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("command", sorted(INVALID))
def test_invalid_arguments_exit_two_with_one_line(command, budget, tmp):
    _bad_inputs(tmp)
    x = os.path.join(tmp, "X.npy")
    np.save(x, np.random.default_rng(0).normal(size=(4, 3)))
    reproducers = {  # issue item 7 and "resource requests": wrong or no paths, exit 0 on complex input
        "kernel": [
            ["kernel", "--input", x, "--depth", "2", "--output", tmp],
            ["kernel", "--input", x, "--depth", "2", "--output", "/nonexistent/K.npz"],
            ["kernel", "--input", x, "--depth", "2", "--output", "/proc/K.npz"],
            ["kernel", "--input", os.path.join(tmp, "complex.npy"), "--depth", "2"],
        ],
        "peak-layer": [["peak-layer", "--depth", "10", "--plot", "/nonexistent/p.png"]],
    }
    examples = [dict(argv_and_tmp=(argv, tmp)) for argv in reproducers.get(command, [])]
    check(
        budget,
        FAST_INVALID[command],
        _invalid,
        examples,
        argv_and_tmp=invalid_argv(command, tmp).map(lambda a: (a, tmp)),
    )


def test_strategies_cover_every_command():
    from meanfield.cli import COMMANDS as CLI_COMMANDS

    assert set(COMMANDS) == set(CLI_COMMANDS) | {"eoc"} == set(INVALID)
    assert not math.isnan(float(num(1.0)))
