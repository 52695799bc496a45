"""The exercise notebooks (exercises/) and their checks (xai_course/exercises.py).

Each chapter's exercises are written once, as a master notebook with solutions in
exercises/source/; otter-grader's `otter assign` makes the students' notebook from it
(`make exercises`). Checked here:
- every master, with its solutions, runs top to bottom and every `grader.check` passes;
- every student notebook runs top to bottom unfilled, and every check says "not done yet";
- the committed student notebooks are what `otter assign` makes of the masters now, and hold
  no solutions, outputs or hidden tests;
- for each "implement" exercise, typical wrong answers are caught and the message names the
  mistake; so are a wrong prediction, a wrong measurement and a failed "break it".
New masters in exercises/source/ are picked up without editing this file.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from test_binder import MEMORY_LIMIT, kernel_tree_peak

from xai_course import exercises, gradients

ROOT = Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "exercises" / "source").glob("[0-9][0-9]_*.ipynb"))
OTTER = Path(sys.executable).parent / "otter"


def test_there_are_exercises_for_chapter_02():
    assert "02_gradients.ipynb" in [m.name for m in MASTERS]
    assert (ROOT / "exercises" / "02_gradients.ipynb").is_file()


@pytest.fixture(scope="module")
def assigned(tmp_path_factory) -> dict[str, Path]:
    """{chapter name: the folder `otter assign` writes for its master now}: autograder/ (the
    notebook with solutions and check cells) and student/ (the students' notebook)."""
    out = {}
    for master in MASTERS:
        result = tmp_path_factory.mktemp("assign") / master.stem
        done = subprocess.run([str(OTTER), "assign", "--no-run-tests", str(master),
                               str(result)], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, f"otter assign {master.name}: {done.stderr[-2000:]}"
        out[master.stem] = result
    return out


def run(path: Path, tmp_path: Path, monkeypatch) -> tuple[nbformat.NotebookNode, int]:
    """Execute a copy of the notebook in tmp_path (otter writes its log where the notebook
    runs), as test_binder.py runs the chapters: the executed notebook and the kernel's peak
    resident memory."""
    monkeypatch.setenv("XAI_COURSE_SYNC", "1")  # explorers compute inside their cell
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    peak = 0

    def measure(cell, cell_index):
        nonlocal peak
        peak = kernel_tree_peak(km.provisioner.process.pid)

    client.on_cell_complete = measure
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        km.shutdown_kernel(now=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors}"
    assert peak < MEMORY_LIMIT, f"{path.name}: {peak / 2**30:.2f} GiB of peak memory"
    return nb, peak


def check_results(nb) -> dict[str, str]:
    """{question: the text `grader.check(question)` showed} for every check cell."""
    results = {}
    for cell in nb.cells:
        found = re.fullmatch(r'grader\.check\("(\w+)"\)', cell.source.strip())
        if cell.cell_type == "code" and found:
            results[found.group(1)] = "\n".join(
                o.get("text", "") + o.get("data", {}).get("text/plain", "")
                for o in cell.outputs)
    return results


def questions(master: Path) -> list[str]:
    nb = nbformat.read(master, as_version=4)
    return [re.search(r"name:\s*(\w+)", c.source).group(1) for c in nb.cells
            if c.cell_type == "raw" and c.source.startswith("# BEGIN QUESTION")]


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_master_runs_top_to_bottom_and_every_check_passes(master, assigned, tmp_path,
                                                          monkeypatch):
    """The notebook otter makes with the solutions and the check cells: no error, and every
    question's check passes."""
    nb, peak = run(assigned[master.stem] / "autograder" / master.name, tmp_path, monkeypatch)
    results = check_results(nb)
    assert sorted(results) == sorted(questions(master)), "a question has no check cell"
    assert 3 <= len(results) <= 5, f"{master.name}: {len(results)} exercises, not 3 to 5"
    for question, text in results.items():
        assert "passed" in text and "failed" not in text, f"{master.name} {question}: {text}"
    print(f"{master.name}: {len(results)} checks pass; kernel peak {peak / 2**20:.0f} MiB")


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_student_notebook_runs_unfilled_and_every_check_says_not_done_yet(master, tmp_path,
                                                                         monkeypatch):
    nb, peak = run(ROOT / "exercises" / master.name, tmp_path, monkeypatch)
    results = check_results(nb)
    assert sorted(results) == sorted(questions(master))
    for question, text in results.items():
        assert exercises.NOT_DONE in text, f"{master.name} {question}: {text}"
        assert "Traceback" not in text and "raised" not in text, text
    print(f"{master.name}: {len(results)} checks say '{exercises.NOT_DONE}'; kernel peak "
          f"{peak / 2**20:.0f} MiB")


def cells(path: Path) -> list[tuple[str, str]]:
    """(type, source) of each cell: what a student sees, without ids and metadata."""
    return [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]


def otter_tests(path: Path) -> dict:
    return nbformat.read(path, as_version=4).metadata.get("otter", {}).get("tests", {})


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_committed_student_notebook_is_what_otter_assign_makes(master, assigned):
    committed = ROOT / "exercises" / master.name
    generated = assigned[master.stem] / "student" / master.name
    assert cells(committed) == cells(generated), \
        f"exercises/{master.name} is not what its master makes: run `make exercises`"
    assert otter_tests(committed) == otter_tests(generated)


def solution_lines(master: Path) -> list[str]:
    """The master's solution code: lines marked `# SOLUTION` and lines between
    `# BEGIN SOLUTION` and `# END SOLUTION` comments."""
    lines, inside = [], False
    for cell in nbformat.read(master, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            text = line.strip()
            if text == "# BEGIN SOLUTION":
                inside = True
            elif text == "# END SOLUTION":
                inside = False
            elif inside and text:
                lines.append(text)
            elif text.endswith("# SOLUTION"):
                lines.append(text.removesuffix("# SOLUTION").strip())
    return lines


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_student_notebook_has_no_solutions_outputs_or_hidden_tests(master):
    path = ROOT / "exercises" / master.name
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code)
    source = "\n".join("".join(c["source"]) for c in code)  # the prose may name a call
    answers = solution_lines(master)
    assert len(answers) >= 3, answers
    shown = [line for line in answers if line in source and line not in ("...",)]
    assert not shown, f"solutions in exercises/{master.name}: {shown}"
    assert "SOLUTION" not in "\n".join("".join(c["source"]) for c in nb["cells"])
    tests = nb["metadata"]["otter"]["tests"]
    assert sorted(tests) == sorted(questions(master))
    assert not any("hidden=True" in t for t in tests.values())


def assert_caught(check, wrong, case: int, says: str | None) -> str:
    """`check` fails the answer `wrong` at hidden case `case`, with a message naming the
    mistake (`says`); the message is printed and returned."""
    feedback = check(wrong)
    assert not feedback.passed
    assert feedback.message.startswith(f"case {case} of 3"), feedback.message
    assert says is None or says in feedback.message, feedback.message
    print(feedback.message)
    return feedback.message


# ====================================================== chapter 02: the checks themselves
def ig_midpoint(model, x, target, baseline, steps):
    """The exercise's answer: IG with the midpoint rule, a loop over the gradient."""
    total = torch.zeros_like(x)
    for k in range(steps):
        total = total + gradients.gradient(model, baseline + (k + 0.5) / steps * (x - baseline),
                                           target)
    return (x - baseline) * total / steps


def ig_without_the_factor(model, x, target, baseline, steps):
    return ig_midpoint(model, x, target, baseline, steps) / (x - baseline).where(
        (x - baseline).abs() > 1e-4, torch.ones_like(x))


def ig_with_a_sum(model, x, target, baseline, steps):
    return ig_midpoint(model, x, target, baseline, steps) * steps


def ig_left_rule(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(steps):
        total = total + gradients.gradient(model, baseline + k / steps * (x - baseline), target)
    return (x - baseline) * total / steps


def ig_path_from_black(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(steps):
        total = total + gradients.gradient(model, (k + 0.5) / steps * x, target)
    return (x - baseline) * total / steps


def ig_times_x(model, x, target, baseline, steps):
    return ig_midpoint(model, x, target, baseline, steps) * x / (x - baseline).where(
        (x - baseline).abs() > 1e-4, torch.ones_like(x))


def test_ig_check_passes_the_loop_and_names_the_cases():
    feedback = exercises.check_integrated_gradients(ig_midpoint)
    assert feedback.passed, feedback.message
    assert "all 3 cases" in feedback.message


@pytest.mark.parametrize("wrong, case, says", [
    (ig_without_the_factor, 1, "Did you multiply by x - baseline?"),
    (ig_with_a_sum, 1, "your map is 8 times too large (n = 8 steps)"),
    (ig_left_rule, 1, "the left rule"),
    (ig_path_from_black, 2, "they start at black, not at the baseline"),
    (ig_times_x, 2, "you multiplied by x; IG multiplies by x - baseline"),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_ig_check_names_the_mistake(wrong, case, says):
    message = assert_caught(exercises.check_integrated_gradients, wrong, case, says)
    # the completeness numbers it quotes: the wrong map's sum and S(x) - S(x')
    assert re.search(r"your map sums to \[([^\]]+)\] but f\(x\) - f\(baseline\) = "
                     r"\[([^\]]+)\]", message), message


def test_ig_check_reports_the_sum_it_was_given():
    """The quoted sum is the wrong map's own: 8 x the right one for the sum instead of the
    mean, on case 1."""
    right = float(re.search(r"course's IG sums to \[([^\]]+)\]",
                            exercises.check_integrated_gradients(ig_with_a_sum).message)[1])
    got = float(re.search(r"your map sums to \[([^\]]+)\]",
                          exercises.check_integrated_gradients(ig_with_a_sum).message)[1])
    assert got == pytest.approx(8 * right, rel=0.01)


def test_ig_check_turns_errors_shapes_and_blanks_into_messages():
    def raises(model, x, target, baseline, steps):
        return gradients.gradient(model, x[:, :, :5], target) @ x

    def channels_summed(model, x, target, baseline, steps):
        return ig_midpoint(model, x, target, baseline, steps).sum(1)

    def blank(model, x, target, baseline, steps):
        ...

    def half_done(model, x, target, baseline, steps):
        total = ...
        return total * (x - baseline)

    def not_implemented(model, x, target, baseline, steps):
        raise NotImplementedError

    said = {f.__name__: exercises.check_integrated_gradients(f).message
            for f in (raises, channels_summed, blank, half_done, not_implemented)}
    assert said["raises"].startswith("case 1 of 3") and "your function raised" in said["raises"]
    assert "expected shape (1, 1, 32, 32)" in said["channels_summed"]
    assert "sum over the channels" in said["channels_summed"]
    for name in ("blank", "half_done", "not_implemented"):
        assert said[name].startswith(exercises.NOT_DONE), said[name]
    assert exercises.check_integrated_gradients(...).message.startswith(exercises.NOT_DONE)
    assert not exercises.check_integrated_gradients(channels_summed).passed


@pytest.fixture(scope="module")
def measured_shares() -> dict[str, float]:
    """The shares the exercise asks for, measured with the course's functions."""
    from xai_course import local_global, zoo

    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=4)
    shares = {}
    for letter, baseline in exercises.ig_baselines(data.x, data.mask).items():
        ig = gradients.integrated_gradients(model, data.x, data.y, baseline=baseline, steps=16)
        shares[letter] = local_global.mass_inside(ig, data.mask).mean().item()
    return shares


def test_the_digit_only_baseline_gives_the_digit_nothing(measured_shares):
    print({k: round(v, 3) for k, v in measured_shares.items()})
    assert measured_shares["d"] == 0.0
    assert measured_shares["c"] > 0.99  # the erased digit's baseline: all of it on the digit
    assert min(measured_shares["a"], measured_shares["b"]) > 0.05


def test_baseline_check_judges_the_prediction_by_the_measurement(measured_shares):
    check = exercises.check_baseline_that_ignores_the_digit
    assert check("d", measured_shares).passed
    assert check("(D)", measured_shares).passed
    wrong = check("c", measured_shares)
    assert not wrong.passed and "your prediction is not" in wrong.message
    assert f"{measured_shares['c']:.0%}" in wrong.message and "(d)" in wrong.message
    off = dict(measured_shares, b=measured_shares["b"] + 0.1)
    bad_measure = check("d", off)
    assert not bad_measure.passed and f"{off['b']:.3f}" in bad_measure.message
    assert f"{measured_shares['b']:.3f}" in bad_measure.message
    assert check("d", {}).message.startswith(exercises.NOT_DONE)
    assert check(..., measured_shares).message.startswith(exercises.NOT_DONE)
    assert not check("e", measured_shares).passed
    print(wrong.message, bad_measure.message, sep="\n")


def test_break_it_check_measures_guided_backprop_against_the_gradient():
    check = exercises.check_guided_backprop_blind_to_the_class
    found = check(dict(model="cluttered-digits", sample=0, classes=(0, 6)))
    assert found.passed, found.message
    alike, apart = map(float, re.findall(r"correlate at (-?[\d.]+)", found.message))
    assert alike >= exercises.GB_ALIKE and apart <= exercises.GRADIENT_APART
    not_alike = check(dict(model="digits", sample=0, classes=(0, 1)))
    assert not not_alike.passed and "not yet >= 0.95" in not_alike.message
    assert "not an image classifier" in check(dict(model="reviews", sample=0,
                                                   classes=(0, 1))).message
    assert not check(dict(model="digits", sample=0, classes=(3, 3))).passed
    assert check(...).message.startswith(exercises.NOT_DONE)
    print(found.message, not_alike.message, sep="\n")


# ====================================================== chapter 03: the checks themselves
def test_grad_cam_check_passes_the_mean_gradient():
    feedback = exercises.check_grad_cam_weights(lambda maps: maps.gradients.mean(dim=(2, 3)))
    assert feedback.passed, feedback.message


@pytest.mark.parametrize("wrong, case, says", [
    # on a GAP + linear head (case 1) the gradient is the same at every place: max == mean
    (lambda maps: maps.gradients.amax(dim=(2, 3)), 2, "largest value (max)"),
    (lambda maps: maps.gradients.sum(dim=(2, 3)), 1, "h x w = 64 times too large"),
    (lambda maps: maps.activations.mean(dim=(2, 3)), 1, "you averaged the activations A"),
    (lambda maps: maps.gradients.clamp(min=0).mean(dim=(2, 3)), 1,
     "only the positive gradients"),
    (lambda maps: maps.gradients.mean(dim=1), 1, "You averaged over the channels (dim 1)"),
], ids=["max", "sum", "activations", "positive-only", "channel-mean"])
def test_grad_cam_check_names_the_mistake(wrong, case, says):
    assert_caught(exercises.check_grad_cam_weights, wrong, case, says)


def test_grad_cam_check_quotes_the_weights_it_expected():
    """The weights quoted as expected are the course's, for the channels named."""
    from xai_course import cam, zoo

    message = exercises.check_grad_cam_weights(
        lambda maps: maps.gradients.sum(dim=(2, 3))).message
    quoted = re.search(r"should be \[([^\]]+)\], yours are \[([^\]]+)\]", message)
    expected = [float(v) for v in quoted[1].split(", ")]
    got = [float(v) for v in quoted[2].split(", ")]
    data = zoo.dataset("cluttered-digits", n=2)
    model = zoo.load_model("cluttered-digits", "cpu")
    maps = cam.layer_maps(model, data.x, data.y, "features")
    ours = cam.grad_cam_weights(model, data.x, maps)[0, :4].tolist()
    assert expected == pytest.approx(ours, rel=5e-3)  # quoted to 3 significant digits
    assert got == pytest.approx([64 * v for v in ours], rel=5e-3)


def test_cam_check_judges_the_prediction_by_the_measurement():
    from xai_course import cam, zoo

    check = exercises.check_cam_equals_grad_cam
    data = zoo.dataset("cluttered-digits", n=4)
    model = zoo.load_model("cluttered-digits", "cpu")
    raw = dict(relu=False, upsample=None)
    a, b = (f(model, data.x, data.y, "features", **raw) for f in (cam.cam, cam.grad_cam))
    difference = ((a - b).abs().max() / a.abs().max()).item()
    print(f"max |CAM - Grad-CAM| / max |CAM| = {difference:.1e}")
    assert difference < 1e-4
    assert check("a", difference).passed
    wrong = check("b", difference)
    assert not wrong.passed and "your prediction is not" in wrong.message
    assert f"{difference:.1e}" in wrong.message
    off = check("a", 0.3)
    assert not off.passed and "your difference is 0.3" in off.message
    assert check("a", ...).message.startswith(exercises.NOT_DONE)
    assert check(..., difference).message.startswith(exercises.NOT_DONE)
    assert not check("a", "small").passed


def test_break_it_check_compares_the_shares_for_the_right_and_a_wrong_class():
    from xai_course import cam, local_global, zoo

    check = exercises.check_early_layer_blind_to_the_class
    data = zoo.dataset("cluttered-digits", n=1)
    model = zoo.load_model("cluttered-digits", "cpu")
    label, wrong = int(data.y[0]), (int(data.y[0]) + 5) % 10
    shares = {layer: [local_global.mass_inside(cam.grad_cam(model, data.x, c, layer),
                                               data.mask).item() for c in (label, wrong)]
              for layer in ("features.relu1", "features")}
    print(shares)
    early = check(dict(layer="features.relu1", sample=0, wrong_class=wrong))
    late = check(dict(layer="features", sample=0, wrong_class=wrong))
    assert early.passed == (shares["features.relu1"][1] >= shares["features.relu1"][0])
    assert late.passed == (shares["features"][1] >= shares["features"][0])
    assert early.passed and not late.passed  # the exercise's point, on this canvas
    assert f"{shares['features'][0]:.0%}" in late.message
    assert not check(dict(layer="features.relu1", sample=0, wrong_class=label)).passed
    assert "layer must be one of" in check(dict(layer="fc", sample=0, wrong_class=wrong)).message
    assert check(...).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 04: the checks themselves
def window_drop(model, x, target, top, left, size, fill, rows=None, cols=None, channels=None):
    """The exercise's answer; rows / cols / channels override the window to make mistakes."""
    from xai_course.convention import class_scores

    hidden = x.clone()
    rows = rows or slice(top, top + size)
    cols = cols or slice(left, left + size)
    hidden[:, channels or slice(None), rows, cols] = fill
    with torch.no_grad():
        return class_scores(model, x, target) - class_scores(model, hidden, target)


def test_window_check_passes_the_drop_and_it_is_the_occlusion_map():
    feedback = exercises.check_window_drop(window_drop)
    assert feedback.passed, feedback.message
    from xai_course import perturbation, zoo

    model, data = zoo.load_model("cluttered-digits", "cpu"), zoo.dataset("cluttered-digits", n=2)
    drop = window_drop(model, data.x, data.y, 16, 32, 16, 0.0)
    occlusion_map = perturbation.occlusion(model, data.x, data.y, window=16, stride=16)
    print(f"drops {drop.tolist()}; the occlusion map there {occlusion_map[:, 0, 16, 32].tolist()}")
    assert torch.allclose(drop, occlusion_map[:, 0, 31, 47], atol=1e-5)  # the whole window


@pytest.mark.parametrize("wrong, says", [
    (lambda m, x, t, top, left, size, fill: -window_drop(m, x, t, top, left, size, fill),
     "wrong sign"),
    (lambda m, x, t, top, left, size, fill: window_drop(m, x, t, top, left, size, fill,
                                                        rows=slice(left, left + size),
                                                        cols=slice(top, top + size)),
     "you swapped rows and columns"),
    (lambda m, x, t, top, left, size, fill: window_drop(m, x, t, top, left, size, fill,
                                                        channels=slice(0, 1)),
     "you hid only channel 0"),
    (lambda m, x, t, top, left, size, fill: window_drop(m, x, t, top, left, size - 1, fill),
     "your window is 15 x 15"),
], ids=["sign", "rows-and-columns", "one-channel", "off-by-one"])
def test_window_check_names_the_mistake(wrong, says):
    assert_caught(exercises.check_window_drop, wrong, 1, says)


def test_window_check_catches_an_input_changed_in_place():
    def in_place(model, x, target, top, left, size, fill):
        before = window_drop(model, x, target, top, left, size, fill)
        x[:, :, top:top + size, left:left + size] = fill
        return before

    message = exercises.check_window_drop(in_place).message
    assert "your function changed the input x" in message


def test_passes_check_judges_the_prediction_by_the_count():
    from xai_course import perturbation, zoo

    model, data = zoo.load_model("cluttered-digits", "cpu"), zoo.dataset("cluttered-digits", n=1)
    with perturbation.count_passes(model) as counted:
        perturbation.occlusion(model, data.x, data.y, window=8, stride=4)
    positions = (-(-(64 - 8) // 4) + 1) ** 2  # ceil((64 - 8) / 4) + 1 per side
    assert counted.forward == 1 + positions == 226
    check = exercises.check_occlusion_passes
    assert check("b", counted.forward).passed
    assert check("b", counted).passed  # the counter itself is read too
    wrong = check("c", counted.forward)
    assert not wrong.passed and "(b) 226" in wrong.message
    assert "course counts 226" in check("b", positions).message
    assert check("b", ...).message.startswith(exercises.NOT_DONE)


def test_adversarial_check_measures_probability_deletion_and_speckle():
    check = exercises.check_adversarial_mask
    speckle = check(dict(sample=0, tv=0.0, mask_size=64, l1=0.3, steps=60))
    assert speckle.passed, speckle.message
    ratio = float(re.search(r"a mask (\d+) times as speckled", speckle.message)[1])
    assert ratio >= exercises.SPECKLE
    smooth = check(dict(exercises.SMOOTH, sample=0))  # the chapter's own smooth mask
    assert not smooth.passed and "1.0 times the smooth mask's" in smooth.message
    large = check(dict(sample=0, tv=0.0, mask_size=64, l1=0.05, steps=60))
    assert not large.passed and "more than 20%" in large.message
    kept = check(dict(sample=0, tv=5.0, mask_size=4, l1=10.0, steps=60))
    assert not kept.passed and "has not destroyed the score" in kept.message
    assert not check(dict(sample=0, tv=0.0, mask_size=64, l1=0.3, steps=1000)).passed
    assert check(...).message.startswith(exercises.NOT_DONE)
    print(speckle.message, smooth.message, large.message, kept.message, sep="\n")


# ====================================================== chapter 05: the checks themselves
def lime_surrogate(z, y, kernel_width, alpha, weights=None, penalty=None):
    """The exercise's answer; `weights` / `penalty` replace the kernel / alpha for mistakes."""
    z, y = z.double(), y.double()
    distance = 1 - (z.sum(dim=1) / z.shape[1]).sqrt()
    pi = torch.exp(-distance ** 2 / kernel_width ** 2).sqrt() if weights is None else weights
    pi = pi.double()
    z_mean, y_mean = (pi[:, None] * z).sum(0) / pi.sum(), (pi * y).sum() / pi.sum()
    zc, yc = z - z_mean, y - y_mean
    alpha = alpha if penalty is None else penalty
    beta = torch.linalg.solve(zc.T @ (pi[:, None] * zc)
                              + alpha * torch.eye(z.shape[1], dtype=z.dtype), zc.T @ (pi * yc))
    return beta, (y_mean - z_mean @ beta).item()


def test_lime_check_passes_the_weighted_ridge_and_it_is_the_course_fit():
    from xai_course import surrogates

    feedback = exercises.check_lime_surrogate(lime_surrogate)
    assert feedback.passed, feedback.message
    z = surrogates.sample_switches(50, 6, torch.Generator().manual_seed(0))
    y = z @ torch.arange(6.0) + 1
    fit = surrogates.fit_surrogate(z, y, surrogates.kernel_weights(1 - (z.mean(1)).sqrt(), 0.25))
    beta, intercept = lime_surrogate(z, y, 0.25, 1.0)
    assert torch.allclose(beta, fit.coefficients.double()) and intercept == pytest.approx(
        fit.intercept)


@pytest.mark.parametrize("wrong, says", [
    (lambda z, y, w, alpha: lime_surrogate(z, y, w, alpha, weights=torch.ones(len(z))),
     "your surrogate ignores the kernel weights"),
    (lambda z, y, w, alpha: lime_surrogate(
        z, y, w, alpha, weights=torch.exp(-(1 - (z.mean(1)).sqrt()) ** 2 / w ** 2)),
     "the lime package's is its square root"),
    (lambda z, y, w, alpha: lime_surrogate(
        z, y, w, alpha, weights=torch.exp(-(1 - z.mean(1)) ** 2 / w ** 2).sqrt()),
     "LIME's is the cosine distance"),
    (lambda z, y, w, alpha: lime_surrogate(z, y, w, alpha, penalty=0.0),
     "you left out the penalty"),
    (lambda z, y, w, alpha: (lime_surrogate(z, y, w, alpha)[0], 0.0), None),
], ids=["no-kernel", "no-square-root", "share-off-distance", "no-penalty", "no-intercept"])
def test_lime_check_names_the_mistake(wrong, says):
    message = assert_caught(exercises.check_lime_surrogate, wrong, 1, says)
    if says is None:  # the right beta with the intercept dropped: the quoted intercept is 0
        assert re.search(r"yours are \[[^\]]+\] and 0\.", message), message


def test_lime_check_wants_beta_and_the_intercept():
    only_beta = exercises.check_lime_surrogate(lambda z, y, w, a: lime_surrogate(z, y, w, a)[0])
    assert "return two things, (beta, intercept)" in only_beta.message


def test_kernel_width_check_judges_the_prediction_by_the_measurement():
    measured = exercises._fresh_fidelities()
    print({k: round(v, 3) for k, v in measured.items()})
    assert measured["a"] < 0 < 0.9 < min(measured["b"], measured["c"])
    check = exercises.check_kernel_width
    assert check("a", measured).passed
    wrong = check("b", measured)
    assert not wrong.passed and f"{measured['a']:.2f}" in wrong.message
    off = check("a", dict(measured, c=measured["c"] - 0.2))
    assert not off.passed and f"{measured['c'] - 0.2:.3f}" in off.message
    assert check("a", {}).message.startswith(exercises.NOT_DONE)


def test_overfit_check_compares_fidelity_on_the_samples_and_on_fresh_ones():
    check = exercises.check_overfitted_surrogate
    few = check(dict(sample=0, samples=20))
    many = check(dict(sample=0, samples=200))
    assert few.passed and not many.passed, (few.message, many.message)
    fit, fresh = map(float, re.search(r"fidelity (-?[\d.]+) on its samples, (-?[\d.]+) on fresh",
                                      few.message).groups())
    assert fit >= exercises.FIT_TRUSTED and fresh <= exercises.FRESH_FAILS
    assert "still imitates the model" in many.message
    assert not check(dict(sample=0, samples=1)).passed
    assert check(...).message.startswith(exercises.NOT_DONE)
    print(few.message, many.message, sep="\n")


# ====================================================== chapter 01: the checks themselves
def share_inside(attribution, region, late_abs=False, signed=False):
    """The exercise's answer; late_abs / signed make the two typical mistakes."""
    if signed:
        mass = attribution.sum(dim=1)
    elif late_abs:
        mass = attribution.sum(dim=1).abs()
    else:
        mass = attribution.abs().sum(dim=1)
    return (mass * region).flatten(1).sum(1) / mass.flatten(1).sum(1)


def test_share_check_passes_the_share_and_it_is_mass_inside():
    from xai_course import local_global

    assert exercises.check_share_inside(share_inside).passed
    a = torch.tensor([[[[1.0, -3.0], [0.0, 2.0]]]])
    region = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert share_inside(a, region).item() == pytest.approx(4 / 6)
    assert local_global.mass_inside(a, region).item() == pytest.approx(4 / 6)


@pytest.mark.parametrize("wrong, says", [
    (lambda a, r: share_inside(a, r, signed=True), "you summed signed values"),
    (lambda a, r: share_inside(a, r, late_abs=True), "you took |.| after summing the channels"),
    (lambda a, r: 1 - share_inside(a, r), "the share outside the region"),
    (lambda a, r: share_inside(a, r).mean(), "not their mean"),
], ids=["signed", "abs-after-channels", "outside", "batch-mean"])
def test_share_check_names_the_mistake(wrong, says):
    assert_caught(exercises.check_share_inside, wrong, 1, says)


def test_shortcut_density_check_judges_the_prediction_by_the_measurement():
    from xai_course import gradients, local_global, zoo
    from xai_course.zoo import digits

    report = local_global.shortcut_report(
        zoo.load_model("shortcut-digits", "cpu"), zoo.dataset("shortcut-digits", n=20),
        zoo.dataset("shortcut-digits", split="moved", n=20),
        digits.shortcut_mark_mask("test", n=20), gradients.gradient)
    density = {"digit": report.digit_share / report.digit_area,
               "mark": report.mark_share / report.mark_area}
    print({k: round(v, 2) for k, v in density.items()})
    assert density["mark"] > 1.5 * density["digit"] > 1.5  # the mark draws the gradient
    check = exercises.check_shortcut_density
    assert check("b", density).passed
    wrong = check("a", density)
    assert not wrong.passed and f"{density['mark'] / density['digit']:.1f} times" in wrong.message
    shares = {"digit": report.digit_share, "mark": report.mark_share}  # forgot the areas
    forgot = check("b", shares)
    assert not forgot.passed and "digit_share / digit_area" in forgot.message
    assert check("b", ...).message.startswith(exercises.NOT_DONE)


def test_patch_check_measures_the_change_of_probability():
    from xai_course import local_global, zoo

    data = zoo.dataset("cluttered-digits", n=2)
    model = zoo.load_model("cluttered-digits", "cpu")
    before, after = local_global.patch_effect(model, data.x[1:2], data.y[1:2], 20, 4, 16)
    print(f"p(label) {before.item():.4f} -> {after.item():.4f}")
    check = exercises.check_patch_that_helps
    helps = check(dict(sample=1, top=20, left=4, size=16))
    assert helps.passed == (after.item() - before.item() >= exercises.HELPS) is True
    assert f"{after.item():.4f}" in helps.message
    hurts = check(dict(sample=0, top=20, left=4, size=16))
    assert not hurts.passed and "find one that raises it" in hurts.message
    assert "does not fit" in check(dict(sample=0, top=60, left=4, size=16)).message
    assert check(...).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 00: the checks themselves
def accuracy(model, data, restore=True, evaluate=True):
    """The exercise's answer; restore / evaluate off make the two mode mistakes."""
    mode = model.training
    if evaluate:
        model.eval()
    with torch.no_grad():
        right = (model(data.x).argmax(dim=1) == data.y).float().mean().item()
    if restore:
        model.train(mode)
    return right


def test_accuracy_check_passes_and_agrees_with_the_zoo():
    from xai_course import zoo

    assert exercises.check_accuracy(accuracy).passed
    model, data = zoo.load_model("digits", "cpu"), zoo.dataset("digits")
    assert accuracy(model, data) == pytest.approx(zoo.accuracy(model, data))
    print(f"digits model: accuracy {zoo.accuracy(model, data):.4f} on {len(data)} test digits")


@pytest.mark.parametrize("wrong, case, says", [
    (lambda model, data: accuracy(model, data) * len(data.y), 1, "that is the number right"),
    (lambda model, data: 100 * accuracy(model, data), 1, "that is a percentage"),
    (lambda model, data: accuracy(model, data, evaluate=False), 3, "classify in eval mode"),
    (lambda model, data: accuracy(model, data, restore=False), 3,
     "your function left the model in eval mode"),
], ids=["count", "percentage", "train-mode", "mode-not-restored"])
def test_accuracy_check_names_the_mistake(wrong, case, says):
    assert_caught(exercises.check_accuracy, wrong, case, says)


def test_digit_area_check_judges_the_prediction_by_the_measurement():
    from xai_course import zoo

    area = zoo.dataset("cluttered-digits", n=50).mask.float().mean().item()
    print(f"the digit covers {area:.3f} of a canvas")
    assert 0.05 < area < 0.2
    check = exercises.check_digit_area
    assert check("b", area).passed
    wrong = check("c", area)
    assert not wrong.passed and f"{area:.1%}" in wrong.message
    assert not check("b", area + 0.01).passed
    assert check("b", ...).message.startswith(exercises.NOT_DONE)


def test_confident_check_wants_a_plain_image_and_a_confident_model():
    from xai_course import zoo

    model = zoo.load_model("digits", "cpu")
    check = exercises.check_confident_on_nothing
    for value in (0.0, 0.5):
        image = torch.full((1, 1, 32, 32), value)
        with torch.no_grad():
            p = model(image).softmax(dim=1).max().item()
        print(f"plain image {value}: top probability {p:.3f}")
        assert check(image).passed == (p >= exercises.CONFIDENT)
    assert check(torch.zeros(1, 1, 32, 32)).passed
    digit = zoo.dataset("digits", n=1).x
    assert "every pixel must have the same value" in check(digit).message
    assert "shape (1, 1, 32, 32)" in check(torch.zeros(1, 32, 32)).message
    assert check(...).message.startswith(exercises.NOT_DONE)


def test_confident_mistake_check_recomputes_the_tours_answer():
    from xai_course import zoo

    check = exercises.check_confident_mistake
    model, data = zoo.load_model("reviews", "cpu"), zoo.dataset("reviews", n=64)
    with torch.no_grad():
        p = model(data.x).softmax(dim=1)
    sure, said = p.max(dim=1)
    wrong = (said != data.y).nonzero().flatten().tolist()
    confident = [i for i in wrong if sure[i] >= exercises.CONFIDENT]
    unsure = [i for i in wrong if sure[i] < exercises.CONFIDENT]
    print(f"reviews: mistakes {wrong}, confident {confident}")
    assert confident, "the tour's reviews hold no confident mistake to find"
    found = check(dict(model="reviews", sample=confident[0]))
    assert found.passed and f"{sure[confident[0]]:.2f}" in found.message, found.message
    right = next(i for i in range(64) if i not in wrong)
    assert "right, not a mistake" in check(dict(model="reviews", sample=right)).message
    if unsure:
        assert "not a confident one" in check(dict(model="reviews", sample=unsure[0])).message
    assert "one of the explorer's models" in check(dict(model="vgg16-imagenet", sample=0)).message
    assert "from 0 to 63" in check(dict(model="digits", sample=64)).message
    assert "the keys 'model', 'sample'" in check({"sample": 3}).message
    assert check(dict(model="digits", sample=...)).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 06: the checks themselves
def total_variation(x, power=2, directions=("down", "right")):
    """The exercise's answer; power / directions make the typical mistakes."""
    parts = {"down": x[..., 1:, :] - x[..., :-1, :], "right": x[..., :, 1:] - x[..., :, :-1]}
    return sum((parts[d].abs() ** power).flatten(1).sum(1) for d in directions)


def test_tv_check_passes_and_agrees_with_the_prior():
    from xai_course import activation_max

    assert exercises.check_total_variation(total_variation).passed
    x = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # two differences of 1
    assert total_variation(x).item() == activation_max.tv_penalty(x).item() == 2.0


@pytest.mark.parametrize("wrong, says", [
    (lambda x: total_variation(x, power=1), "you summed |differences|"),
    (lambda x: total_variation(x, directions=("down",)), "only the vertical neighbours"),
    (lambda x: total_variation(x).sum(), "not the batch's total"),
], ids=["absolute", "one-direction", "batch-total"])
def test_tv_check_names_the_mistake(wrong, says):
    assert_caught(exercises.check_total_variation, wrong, 1, says)


def test_snow_check_judges_the_prediction_by_the_measurement():
    from xai_course import activation_max

    images, p = exercises._snow()
    count = int(activation_max.digit_judge()(images).recognised(torch.arange(10)).sum())
    print(f"snow: mean probability {p.mean():.4f}, the judge recognises {count} of 10")
    assert p.mean() > 0.99 and count <= 2
    check = exercises.check_snow
    assert check("c", p.mean().item(), count).passed
    wrong = check("b", p.mean().item(), count)
    assert not wrong.passed and f"recognises {count} of 10" in wrong.message
    assert not check("c", 0.5, count).passed
    assert check("c", ..., count).message.startswith(exercises.NOT_DONE)


def test_preferred_check_compares_with_every_real_digit():
    from xai_course import activation_max, zoo

    model, test = zoo.load_model("digits", "cpu"), zoo.dataset("digits", split="test")
    check = exercises.check_preferred_to_every_digit
    for c in (3, 0):
        image = activation_max.maximize(model, ("class", c), (1, 32, 32), steps=5,
                                        init="noise", generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            above = model(image)[0, c] > model(test.x[test.y == c])[:, c].max()
        print(f"class {c}, 5 steps: above every real {c}: {bool(above)}")
        assert check(dict(target=c, steps=5)).passed == bool(above)
    assert check(dict(target=3, steps=5)).passed and not check(dict(target=0, steps=5)).passed
    assert not check(dict(target=3, steps=30)).passed  # more than FEW_STEPS
    assert check(...).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 07: the checks themselves
def capacity(R, lam, mean, std, normalise=True, variance_power=2, unit=1.0):
    """The exercise's answer; normalise / variance_power / unit make the typical mistakes."""
    r = (R - mean) / std if normalise else R
    var = (1 - lam) ** variance_power
    return -0.5 * (1 + torch.log(var) - (lam * r) ** 2 - var) / unit


def test_capacity_check_passes_and_is_zero_without_signal():
    from xai_course import bottleneck

    assert exercises.check_kl_capacity(capacity).passed
    R, zero = torch.tensor([0.0, 1.0, 3.0]), torch.zeros(3)
    assert capacity(R, zero, 0.0, 1.0).abs().max() == 0  # lambda = 0: nothing passes
    half = torch.full((3,), 0.5)
    assert torch.allclose(capacity(R, half, 0.0, 1.0),
                          bottleneck.kl_capacity(R, half, torch.tensor(0.0), torch.tensor(1.0)))


@pytest.mark.parametrize("wrong, says", [
    (lambda R, lam, m, s: capacity(R, lam, m, s, normalise=False), "you used R itself"),
    (lambda R, lam, m, s: capacity(R, lam, m, s, variance_power=1),
     "the copy's variance is (1 - lambda)^2"),
    (lambda R, lam, m, s: capacity(R, lam, m, s, unit=0.6931471805599453), "that is in bits"),
], ids=["not-normalised", "variance", "bits"])
def test_capacity_check_names_the_mistake(wrong, says):
    assert_caught(exercises.check_kl_capacity, wrong, 1, says)


def test_beta_and_layer_checks_judge_the_predictions_by_the_measurements():
    from xai_course import local_global, zoo

    bits = {beta: exercises._iba_bits("features.relu3", beta).flatten(1).sum(1).mean().item()
            for beta in (1, 100)}
    print({k: round(v, 1) for k, v in bits.items()})
    assert bits[100] < 0.1 * bits[1]
    assert exercises.check_beta("b", bits).passed
    wrong = exercises.check_beta("a", bits)
    assert not wrong.passed and f"{bits[100] / bits[1]:.3f} times" in wrong.message
    assert not exercises.check_beta("b", {1: bits[1], 100: 2 * bits[100]}).passed
    assert exercises.check_beta("b", ...).message.startswith(exercises.NOT_DONE)

    mask = zoo.dataset("cluttered-digits", n=4).mask
    shares = {k: local_global.mass_inside(exercises._iba_bits(layer, 10), mask).mean().item()
              for k, layer in exercises.IBA_LAYERS.items()}
    print({k: round(v, 3) for k, v in shares.items()})
    best = max(shares, key=shares.get)
    assert best == "b"  # the middle layer, as the chapter finds
    assert exercises.check_best_layer(best, shares).passed
    other = exercises.check_best_layer("c", shares)
    assert not other.passed and f"{shares['b']:.0%}" in other.message


def test_early_layer_check_measures_both_layers_on_the_canvas():
    from xai_course import evaluation, zoo
    from xai_course.bottleneck import feature_stats, iba

    model = zoo.load_model("cluttered-digits", "cpu")
    train = zoo.dataset("cluttered-digits", split="train", n=1000).x
    data = zoo.dataset("cluttered-digits", n=15)
    check = exercises.check_early_layer_wins
    for sample in (0, 14):  # the middle layer wins on the first, the early one on the second
        x, mask = data.x[sample:sample + 1], data.mask[sample:sample + 1] > 0
        target = int(data.y[sample])  # the label, as the explorer explains by default
        share = {}
        for layer in ("features.relu1", "features.relu3"):
            maps = iba(model, x, target, layer, stats=feature_stats(model, layer, train),
                       generator=torch.Generator().manual_seed(0))
            share[layer] = evaluation.energy_in_mask(maps, mask).item()
        feedback = check(dict(sample=sample))
        print(sample, share, feedback.message)
        early, middle = share["features.relu1"], share["features.relu3"]
        assert feedback.passed == (early >= middle + exercises.EARLY_WINS)
        assert f"{early:.0%} of its map on the digit at relu1 and {middle:.0%}" in \
            feedback.message
    assert check(dict(sample=14)).passed and not check(dict(sample=0)).passed
    assert "from 0 to 63" in check(dict(sample=-1)).message
    assert check(dict(sample=...)).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 08: the checks themselves
def shapley_by_enumeration(value, d, weight=None):
    """The exercise's answer; `weight(size, d)` replaces Shapley's weights for mistakes."""
    import itertools
    import math

    weight = weight or (lambda s, d: math.factorial(s) * math.factorial(d - s - 1)
                        / math.factorial(d))
    phi = torch.zeros(d, dtype=torch.float64)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for size in range(d):
            for coalition in itertools.combinations(others, size):
                phi[i] += weight(size, d) * (value(set(coalition) | {i}) - value(set(coalition)))
    return phi


def test_shapley_check_passes_enumeration_and_the_glove_game_is_right():
    assert exercises.check_shapley_by_enumeration(shapley_by_enumeration).passed
    glove = {frozenset(): 0, frozenset({0, 1}): 1, frozenset({0, 2}): 1, frozenset({0, 1, 2}): 1}
    phi = shapley_by_enumeration(lambda s: glove.get(frozenset(s), 0), 3)
    assert phi.tolist() == pytest.approx([2 / 3, 1 / 6, 1 / 6])  # computed by hand


@pytest.mark.parametrize("wrong, says", [
    (lambda value, d: shapley_by_enumeration(value, d, lambda s, d: 1 / 2 ** (d - 1)),
     "that is the Banzhaf value"),
    (lambda value, d: [value({i}) - value(set()) for i in range(d)],
     "each player's contribution alone"),
    (lambda value, d: -shapley_by_enumeration(value, d), "the wrong sign"),
    (lambda value, d: shapley_by_enumeration(value, d, lambda s, d: 1 / d), "efficiency"),
], ids=["equal-weights", "alone", "sign", "weights-not-summing-to-one"])
def test_shapley_check_names_the_mistake(wrong, says):
    assert_caught(exercises.check_shapley_by_enumeration, wrong, 1, says)


def test_efficiency_check_judges_the_prediction_by_the_measurement():
    from xai_course import shapley, zoo

    model, data = zoo.load_model("cluttered-digits", "cpu"), zoo.dataset("cluttered-digits", n=1)
    groups = exercises.quadrants()
    attribution = shapley.exact_shapley(model, data.x, 0.0, data.y, groups)
    total = shapley.player_values(attribution, groups).sum().item()
    with torch.no_grad():
        scores = model(torch.cat([data.x, torch.zeros_like(data.x)]))[:, int(data.y[0])]
    print(f"sum of the values {total:.4f}; S(x) {scores[0]:.4f}, S(black) {scores[1]:.4f}")
    assert total == pytest.approx((scores[0] - scores[1]).item(), abs=1e-4)
    check = exercises.check_efficiency
    assert check("b", total).passed
    assert "your prediction is not" in check("a", total).message
    painted = check("b", attribution.sum().item())  # summed over pixels, not players
    assert not painted.passed and "shapley.player_values" in painted.message
    assert check("b", ...).message.startswith(exercises.NOT_DONE)


def test_alone_check_compares_the_two_rankings():
    check = exercises.check_alone_misleads
    game = {(): 0, (0,): 1, (1,): 0, (2,): 0.5, (0, 1): 1, (0, 2): 1.5, (1, 2): 4, (0, 1, 2): 4}
    found = check(game)
    assert found.passed, found.message
    additive = {c: sum((1.0, 0.2, 0.5)[i] for i in c) for c in game}  # no interactions
    assert "leads both" in check(additive).message
    assert "missing" in check({(): 0}).message
    assert check(...).message.startswith(exercises.NOT_DONE)


def test_patient_check_finds_the_patients_whose_rankings_differ():
    from xai_course import zoo
    from xai_course.widgets.shapley import GROUPS, coalition_values, player_groups

    model, data = zoo.load_model("breast-cancer", "cpu"), zoo.dataset("breast-cancer", n=64)
    groups, names = player_groups(data.features, GROUPS)
    d = len(names)
    misled = []
    for sample in range(64):
        x = data.x[sample:sample + 1]
        v = coalition_values(model, x, int(data.y[sample]), groups)  # the label's score
        # the Shapley value written out: player i's contribution to every S without i,
        # weighted |S|! (d - |S| - 1)! / d!
        phi = [sum(math.factorial(bin(s).count("1")) * math.factorial(d - bin(s).count("1") - 1)
                   / math.factorial(d) * (v[s | 1 << i] - v[s]).item()
                   for s in range(2 ** d) if not s >> i & 1) for i in range(d)]
        alone = [(v[1 << i] - v[0]).item() for i in range(d)]
        if max(range(d), key=alone.__getitem__) != max(range(d), key=phi.__getitem__):
            misled.append(sample)
    print(f"patients whose alone-ranking crowns another player: {misled}")
    assert misled, "no patient of the explorer's 64 to find"
    check = exercises.check_alone_misleads_on_a_patient
    for sample in misled[:2]:
        found = check(dict(model="breast-cancer", sample=sample))
        assert found.passed, found.message
    other = next(i for i in range(64) if i not in misled)
    same = check(dict(model="breast-cancer", sample=other))
    assert not same.passed and "the same player" in same.message
    assert "the explorer's models" in check(dict(model="digits", sample=0)).message
    assert check(dict(model=..., sample=3)).message.startswith(exercises.NOT_DONE)


# ====================================================== chapter 09: the checks themselves
def remove_top(x, importance, fraction, fill, signed=False, over="example", keep=False,
               rounding=round, in_place=False):
    """The exercise's answer; the options make the typical mistakes."""
    n = len(x)
    values = importance if signed else importance.abs()
    groups = {"example": values.reshape(n, -1), "batch": values.reshape(1, -1),
              "channel": values.reshape(n * x.shape[1], -1)}[over]
    order = torch.sort(groups, dim=1, descending=True, stable=True).indices
    count = rounding(fraction * groups.shape[1])
    top = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, order[:, :count], True)
    replace = ~top.view(x.shape) if keep else top.view(x.shape)
    if in_place:
        x[replace] = fill.expand_as(x)[replace]
        return x
    return torch.where(replace, fill, x)


def remove_top_with_topk(x, importance, fraction, fill):
    """Right but for the ties: torch.topk does not promise the lower index first."""
    magnitude = importance.abs().reshape(len(x), -1)
    count = round(fraction * magnitude.shape[1])
    top = torch.zeros_like(magnitude, dtype=torch.bool)
    top.scatter_(1, magnitude.topk(count, dim=1).indices, True)
    return torch.where(top.view(x.shape), fill, x)


def test_removal_check_passes_and_agrees_with_remove_features():
    from xai_course import evaluation

    assert exercises.check_remove_top(remove_top).passed
    x = torch.arange(8.0).view(2, 1, 2, 2)
    importance = torch.tensor([-5.0, 1.0, 3.0, 0.0, 1.0, 1.0, -1.0, 2.0]).view(2, 1, 2, 2)
    fill = torch.full((1, 1, 1), -1.0)
    by_hand = torch.tensor([-1.0, 1.0, -1.0, 3.0, -1.0, 5.0, 6.0, -1.0]).view(2, 1, 2, 2)
    assert torch.equal(remove_top(x, importance, 0.5, fill), by_hand)  # ties: lower index
    assert torch.equal(evaluation.remove_features(x, evaluation.feature_ranks(importance), 0.5,
                                                  fill), by_hand)


@pytest.mark.parametrize("wrong, case, says", [
    (lambda x, e, t, f: remove_top(x, e, t, f, signed=True), 1, "ranked by the signed"),
    (lambda x, e, t, f: remove_top(x, e, t, f, over="batch"), 1, "the whole batch together"),
    (lambda x, e, t, f: remove_top(x, e, t, f, keep=True), 1, "that is KAR"),
    (lambda x, e, t, f: remove_top(x, e, t, f, over="channel"), 1, "each channel on its own"),
    (lambda x, e, t, f: remove_top(x, e, t, f, rounding=math.floor), 1, "down; use round()"),
    (lambda x, e, t, f: remove_top(x, e, t, f, rounding=math.ceil), 2, "up; use round()"),
    (lambda x, e, t, f: remove_top(x, e, t, f, in_place=True), 1, "changed x in place"),
    (remove_top_with_topk, 2, "ties to the lower index"),
], ids=["signed", "over-the-batch", "kar", "per-channel", "floor", "ceil", "in-place", "ties"])
def test_removal_check_names_the_mistake(wrong, case, says):
    assert_caught(exercises.check_remove_top, wrong, case, says)


def test_toy_check_judges_the_prediction_by_the_measurement():
    from xai_course import evaluation

    toy = evaluation.toy_roar(seeds=exercises.TOY_SEEDS, removed=(0, exercises.TOY_REMOVED))
    means = toy.groupby(["ranking", "removed", "retrained"]).accuracy.mean()
    print(means.round(4).to_dict())
    k = exercises.TOY_REMOVED
    accuracies = {"retrained": means["inverted", k, True],
                  "not retrained": means["inverted", k, False]}
    # the paper's finding: retrained, the 12 useless features cost nothing (all 16 give the
    # same accuracy); not retrained, they do
    assert accuracies["retrained"] == pytest.approx(means["inverted", 0, True], abs=0.01)
    assert accuracies["retrained"] > accuracies["not retrained"] + 0.01
    check = exercises.check_toy_retraining
    assert check("a", accuracies).passed
    wrong = check("b", accuracies)
    assert not wrong.passed and "your prediction is not" in wrong.message
    assert f"not retrained {accuracies['not retrained']:.3f}" in wrong.message
    swapped = {"retrained": accuracies["not retrained"], "not retrained": accuracies["retrained"]}
    bad = check("a", swapped)
    assert not bad.passed and "the rows with retrained False" in bad.message
    assert check("a", ...).message.startswith(exercises.NOT_DONE)
    assert check(..., accuracies).message.startswith(exercises.NOT_DONE)
    print(wrong.message, bad.message, sep="\n")


def test_oracle_check_finds_the_lowest_point_and_the_climb():
    from xai_course import evaluation

    table = evaluation.shipped_table("roar-cluttered-digits")
    oracle = table[table.estimator == "oracle"].groupby("fraction").accuracy.mean()
    print(oracle.round(3).to_dict())
    bottom, last = oracle.idxmin(), oracle.index.max()
    assert bottom < last and oracle[last] - oracle[bottom] > 0.2  # it climbs back
    check = exercises.check_oracle_climbs_back
    right = check(dict(fraction=bottom, accuracy=oracle[bottom]), oracle[last] - oracle[bottom])
    assert right.passed and "shape" in right.message
    one_seed = table[table.estimator == "oracle"].sort_values("accuracy").iloc[0]
    assert one_seed.fraction != bottom  # a single seed's minimum is elsewhere
    lonely = check(dict(fraction=one_seed.fraction, accuracy=one_seed.accuracy), 0.3)
    assert not lonely.passed and "Average the two seeds" in lonely.message
    print(lonely.message)
    off = check(dict(fraction=bottom, accuracy=oracle[bottom]), oracle[last])
    assert not off.passed and f"{oracle[last] - oracle[bottom]:.4f}" in off.message
    assert check(..., 0.3).message.startswith(exercises.NOT_DONE)
    print(right.message, off.message, sep="\n")


def test_randomisation_check_reads_the_last_step_of_the_cascade():
    from xai_course import evaluation, gradients, zoo

    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=5)
    x, target = data.x[4:5], int(data.y[4])
    check = exercises.check_survives_randomisation
    for name, method in (("Integrated Gradients", gradients.integrated_gradients),
                         ("gradient", gradients.gradient)):
        table = evaluation.sanity_check(model, method, x, target,
                                        generator=torch.Generator().manual_seed(0))
        last = table[table.step == table.step.max()].spearman.mean()
        feedback = check(dict(method=name, sample=4))
        print(f"{name}: Spearman {last:.3f} at the end; {feedback.message}")
        assert feedback.passed == (last >= exercises.SURVIVES)
        assert f"is {last:.2f}" in feedback.message
    assert check(dict(method="Integrated Gradients", sample=4)).passed
    assert not check(dict(method="gradient", sample=4)).passed
    assert "the explorer's methods" in check(dict(method="LIME", sample=0)).message
    assert "the explorer's methods" in check(dict(method=["gradient"], sample=0)).message
    assert check(dict(method="gradient", sample=...)).message.startswith(exercises.NOT_DONE)
