"""The command line says what it did (issue 16, item 7) and never prints a traceback: true output paths, one
documented JSON encoding of non-finite numbers, one-line exit-2 errors for unwritable outputs and unreadable inputs,
130 on Ctrl-C, silence when stdout is closed."""

import json
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import meanfield
from meanfield.cli import _jsonable, build_parser, main, to_json

PACKAGE = pathlib.Path(meanfield.__file__).parent


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, out, err, command):
    assert code == 2 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"meanfield {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def X(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.random.default_rng(0).normal(size=(4, 3)))
    return path


# ---------------------------------------------------------------------------------------------- true output paths
def test_kernel_output_directory_refused(capsys, tmp_path, X):
    """``--output /tmp`` wrote ``/tmp.npz`` and said ``/tmp``: a directory is refused, and nothing is written."""
    d = tmp_path / "outdir"
    d.mkdir()
    msg = one_line_error(*run(capsys, "kernel", "--input", X, "--depth", "3", "--output", d), "kernel")
    assert "is a directory" in msg
    assert not (tmp_path / "outdir.npz").exists()


def test_kernel_output_without_suffix_reports_the_written_file(capsys, tmp_path, X):
    """``--output Kout`` writes ``Kout.npz``: that is the path reported, in the table and in the JSON."""
    code, out, _ = run(capsys, "kernel", "--input", X, "--depth", "3", "--output", tmp_path / "Kout")
    written = tmp_path / "Kout.npz"
    assert code == 0 and written.exists() and not (tmp_path / "Kout").exists()
    assert f"to {written}\n" in out
    code, out, _ = run(capsys, "kernel", "--input", X, "--depth", "3", "--output", tmp_path / "K2", "--json")
    assert code == 0 and json.loads(out)["output"] == str(tmp_path / "K2.npz")
    with np.load(tmp_path / "K2.npz", allow_pickle=False) as saved:
        assert saved["ntk"].shape == (4, 4)


def test_simulate_output_reports_the_written_file(capsys, tmp_path):
    code, out, _ = run(capsys, "simulate", "--random", "2,3", "--depth", "2", "--width", "8", "--nets", "3",
                       "--output", tmp_path / "S")  # fmt: skip
    assert code == 0 and (tmp_path / "S.npz").exists()
    assert f"to {tmp_path / 'S.npz'}" in out


def test_peak_layer_plot_paths(capsys, tmp_path):
    """``--plot /tmp`` wrote ``/tmp.png``: a directory is refused; a name without extension gets ``.png`` and is
    reported so; an unknown extension is refused before the work."""
    one_line_error(*run(capsys, "peak-layer", "--depth", "10", "20", "--plot", tmp_path), "peak-layer")
    assert not pathlib.Path(str(tmp_path) + ".png").exists()
    code, out, _ = run(capsys, "peak-layer", "--depth", "10", "20", "--plot", tmp_path / "p")
    assert code == 0 and (tmp_path / "p.png").exists() and f"plot written to {tmp_path / 'p.png'}" in out
    msg = one_line_error(*run(capsys, "peak-layer", "--depth", "10", "--plot", tmp_path / "p.xyz"), "peak-layer")
    assert "unknown figure format" in msg and "png" in msg


@pytest.mark.parametrize(
    "argv, command",
    [
        (["kernel", "--input", "{X}", "--depth", "3", "--output", "/nonexistent/K.npz"], "kernel"),
        (["kernel", "--input", "{X}", "--depth", "3", "--output", "/proc/K.npz"], "kernel"),
        (["simulate", "--random", "2,3", "--depth", "2", "--width", "4", "--nets", "3", "--output", "/nonexistent/S"],
         "simulate"),
        (["peak-layer", "--depth", "10", "--plot", "/nonexistent/p.png"], "peak-layer"),
        (["peak-layer", "--depth", "10", "--plot", "/proc/p.png"], "peak-layer"),
    ],
)  # fmt: skip
def test_unwritable_outputs_are_one_line_exit_2(capsys, X, argv, command):
    argv = [str(X) if a == "{X}" else a for a in argv]
    msg = one_line_error(*run(capsys, *argv), command)
    assert "/nonexistent" in msg or "/proc" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_refused_before_the_work(capsys, tmp_path, X):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        msg = one_line_error(*run(capsys, "kernel", "--input", X, "--depth", "3", "--output", ro / "K"), "kernel")
        assert "not writable" in msg
    finally:
        ro.chmod(0o700)


# -------------------------------------------------------------------------------------------------------- inputs
def test_input_text_npz_and_object_arrays_say_what_is_expected(capsys, tmp_path):
    (tmp_path / "t.txt").write_text("1 2 3\n4 5 6\n")
    np.savez(tmp_path / "A.npz", X=np.eye(3))
    np.save(tmp_path / "obj.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    np.save(tmp_path / "c.npy", np.ones((2, 2), complex))
    cases = {"t.txt": "numpy.loadtxt", "A.npz": ".npz archive", "obj.npy": "Python objects", "c.npy": "complex128"}
    for name, word in cases.items():
        for command in ("kernel", "simulate"):
            extra = ["--width", "4", "--nets", "3"] if command == "simulate" else []
            msg = one_line_error(*run(capsys, command, "--input", tmp_path / name, "--depth", "3", *extra), command)
            assert word in msg and "numpy.save" in msg
            assert "allow_pickle" not in msg and "pickle" not in msg.lower()


def test_every_np_load_in_the_package_refuses_pickles():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for m in re.finditer(r"np\.load\(([^()]*(\([^()]*\))?[^()]*)\)", path.read_text()):
            calls.append((path.name, m.group(1)))
    assert calls, "the CLI reads .npy inputs with np.load"
    for name, args in calls:
        assert "allow_pickle=False" in args, (name, args)


# ---------------------------------------------------------------------------------------------------------- JSON
def _strict(text):
    def bad(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=bad)


def test_json_encoding_of_nonfinite_numbers_is_one_documented_convention():
    data = {"a": float("nan"), "b": np.inf, "c": -np.inf, "d": np.array([1.0, np.nan]), "e": None, "f": 2.5}
    enc = _jsonable(data)
    assert enc == {"a": "nan", "b": "inf", "c": "-inf", "d": [1.0, "nan"], "e": None, "f": 2.5}
    back = _strict(to_json(data))
    assert math.isnan(float(back["a"])) and float(back["b"]) == math.inf and float(back["c"]) == -math.inf
    # documented in the CLI help and the README's command-line section
    assert '"nan", "inf", "-inf"' in " ".join(build_parser().format_help().split())
    readme = (PACKAGE.parent / "README.md").read_text()
    assert '`"nan"`, `"inf"` or `"-inf"`' in readme


def test_phase_json_nan_and_inf_are_strings_not_null(capsys):
    """ReLU at (3, 0): c* and chi_c are NaN, xi_q infinite. Before: ``null`` next to ``"inf"``."""
    code, out, _ = run(capsys, "phase", "--activation", "relu", "--sigma-w2", "3", "--json")
    data = _strict(out)
    assert code == 0
    assert data["c_star"] == "nan" and data["xi_q"] == "inf"
    assert None not in data.values()


@pytest.mark.parametrize(
    "argv",
    [
        ["phase", "--activation", "relu", "--sigma-w2", "3"],
        ["eoc", "--activation", "tanh"],
        ["peak-layer", "--depth", "2", "10", "20"],
        ["nfa-early", "--width", "16", "--nets", "2", "--samples", "6"],
        ["simulate", "--random", "2,3", "--depth", "2", "--width", "8", "--nets", "3"],
        ["dispersion", "--sigma-w2", "2", "--width", "5", "--depth", "3", "--simulate", "20"],
        ["silent"],
    ],
)
def test_every_command_prints_strict_json(capsys, argv):
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    _strict(out)


# ---------------------------------------------------------------------------------------- signals, pipes (real)
def _spawn(argv, **kw):
    """The CLI in a subprocess; prints 'ready' once meanfield is imported (so a signal lands in main)."""
    code = f"import sys, meanfield.cli as c; print('ready', flush=True); sys.exit(c.main({argv!r}))"
    # a user's shell delivers Ctrl-C: restore SIGINT's default in the child, which inherits SIG_IGN when the tests
    # run as a background job (nohup ... &) or in a worker process that ignores it, and Python then installs no
    # KeyboardInterrupt handler at all
    kw.setdefault("preexec_fn", _default_sigint)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_with_one_line():
    p = _spawn(["simulate", "--random", "20,10", "--depth", "10", "--width", "512", "--nets", "1000000"])
    try:
        assert p.stdout.readline() == b"ready\n"
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130
    assert err.decode() == "meanfield: interrupted\n"
    assert out == b""


def test_closed_stdout_ends_quietly():
    """``meanfield peak-layer --depth 2:20000 | head -1``: no BrokenPipeError traceback, status 141."""
    p = _spawn(["peak-layer", "--depth", "2:20000"])
    try:
        assert p.stdout.readline() == b"ready\n"
        assert p.stdout.readline().split()[:2] == [b"L", b"l*"]
        p.stdout.close()  # the reader goes away
        err = p.stderr.read()
        p.wait(timeout=120)
    finally:
        p.kill()
    assert err == b"" and p.returncode == 141


def test_module_entry_point_exit_code():
    out = subprocess.run([sys.executable, "-m", "meanfield.cli", "phase", "--sigma-w2", "-1"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "sigma_w2" in out.stderr
