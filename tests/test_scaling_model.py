"""The DDP scaling model: fits recover known parameters, predictions match hand-computed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from liquidbench.results import scaling_model as sm

WHERE = "sine / cfc / cpu"
SIZES = [4096 * 2 ** k for k in range(9)]  # 4 kB .. 1 MB, the probe's default sizes


# Noise of constant spread (seconds), the assumption of ordinary least squares: with noise that grows
# with the time (multiplicative) the OLS intervals are too narrow.
def allreduce_rows(form, alpha, beta, widths=(2, 4, 8), noise=0.5e-6, seed=1):
    """Probe-like rows from a form: 7 samples per (width, size) with normal noise of sd ``noise`` seconds."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in widths:
        for m in SIZES:
            t = float(sm.allreduce_time(form, n, m, alpha, beta))
            rows.append((n, m, (t + rng.normal(0, noise, 7)).tolist()))
    return rows


def step_samples(c0, c1, batches, noise=20e-6, seed=2):
    rng = np.random.default_rng(seed)
    return [(c0 + c1 * b + rng.normal(0, noise, 7)).tolist() for b in batches]


def hand_prediction(scaling, form="ring", exposed=1.0):
    # c0 = 1 ms, c1 = 0.01 ms/sample, alpha = 50 us, beta = 1 ns/byte, gradient 40 kB, batch 64, 6400 samples
    return sm.predict(sm.given_compute(1e-3, 1e-5), sm.given_allreduce(50e-6, 1e-9, form=form), batch_size=64,
                      n_train=6400, gradient_bytes=40_000, scaling=scaling, widths=[1, 2, 4], exposed=exposed)


@pytest.mark.parametrize("form", ["ring", "tree"])
def test_allreduce_fit_recovers_alpha_beta_and_the_form(form):
    alpha, beta = 30e-6, 1e-10  # 30 us per step, 10 GB/s
    fit = sm.fit_allreduce(allreduce_rows(form, alpha, beta), where=WHERE)
    assert fit.ok and fit.reason == "" and fit.source == "fitted" and fit.form == form
    other = next(f for f in fit.forms if f.form != form)
    assert fit.model.rss < other.rss / 100  # the generating form fits far better
    assert fit.model.alpha.value == pytest.approx(alpha, rel=0.03)
    assert fit.model.beta.value == pytest.approx(beta, rel=0.03)
    assert fit.model.alpha.low <= alpha <= fit.model.alpha.high
    assert fit.model.beta.low <= beta <= fit.model.beta.high
    assert fit.model.points == 3 * len(SIZES)
    # per width: latency a_n and per-byte b_n of t = a_n + b_n m
    assert [w.width for w in fit.widths] == [2, 4, 8] and all(w.ok and w.r2 > 0.99 for w in fit.widths)
    a8, b8 = (float(v) for v in sm.coefficients(form, 8))
    assert fit.widths[2].latency.value == pytest.approx(a8 * alpha, rel=0.1)
    assert fit.widths[2].per_byte.value == pytest.approx(b8 * beta, rel=0.05)
    assert f"{form} form chosen" in fit.notes[-1]


def test_form_coefficients_by_hand():
    assert [tuple(map(float, sm.coefficients("ring", n))) for n in (1, 2, 4, 8)] == [
        (0.0, 0.0), (2.0, 1.0), (6.0, 1.5), (14.0, 1.75)]
    # tree: 2 ceil(log2 n) for both terms; n = 3 and 5 round up
    assert [tuple(map(float, sm.coefficients("tree", n))) for n in (1, 2, 3, 4, 5, 8)] == [
        (0.0, 0.0), (2.0, 2.0), (4.0, 4.0), (4.0, 4.0), (6.0, 6.0), (6.0, 6.0)]
    assert float(sm.allreduce_time("ring", 4, 40_000, 50e-6, 1e-9)) == pytest.approx(6 * 50e-6 + 1.5 * 40e-6, rel=1e-12)
    with pytest.raises(ValueError, match="'butterfly'.*ring, tree"):
        sm.coefficients("butterfly", 2)


def test_compute_fit_recovers_c0_c1():
    batches = [1, 8, 32, 64, 128, 256]
    fit = sm.fit_compute(batches, step_samples(1e-3, 1e-5, batches), where=WHERE)
    assert fit.ok and fit.source == "fitted" and fit.points == 6 and fit.notes == ()
    assert fit.c0.value == pytest.approx(1e-3, rel=0.02) and fit.c1.value == pytest.approx(1e-5, rel=0.02)
    assert fit.c0.low <= 1e-3 <= fit.c0.high and fit.c1.low <= 1e-5 <= fit.c1.high
    assert fit.r2 > 0.999 and fit.corr < 0  # intercept and slope of x > 0 are anti-correlated
    # exact data on a line: the medians (not means) are fitted, and the fit is exact
    exact = sm.fit_compute([2, 4, 8], [[0.5, 3.0, 3.0, 3.0], [5.0, 5.0, 99.0], [9.0]], where=WHERE)
    assert (exact.c0.value, exact.c1.value, exact.r2) == (pytest.approx(1.0), pytest.approx(1.0), 1.0)


def test_hand_computed_speedups_weak_and_strong():
    # t_c(64) = 1 ms + 64 * 0.01 ms = 1.64 ms; ring all-reduce of 40 kB:
    #   n = 2: 2 * 1 * 50 us + 2 * 1/2 * 40 us = 140 us;  n = 4: 2 * 3 * 50 us + 2 * 3/4 * 40 us = 360 us
    weak = hand_prediction("weak").table
    # steps ceil(6400 / (n 64)) = 100, 50, 25; epochs 100 * 1.64 ms, 50 * 1.78 ms, 25 * 2.00 ms
    assert weak["steps"].tolist() == [100, 50, 25] and weak["per_process_batch"].tolist() == [64, 64, 64]
    assert weak["allreduce_s"].tolist() == pytest.approx([0.0, 140e-6, 360e-6], rel=1e-9)
    assert weak["epoch_s"].tolist() == pytest.approx([0.164, 0.089, 0.050], rel=1e-9)
    assert weak["speedup"].tolist() == pytest.approx([1.0, 164 / 89, 164 / 50], rel=1e-9)
    assert weak["efficiency"].tolist() == pytest.approx([1.0, 82 / 89, 0.82], rel=1e-9)
    # strong: b_n = 64 / n = 64, 32, 16; 100 steps each; steps 1.64, 1.32 + 0.14, 1.16 + 0.36 ms
    strong = hand_prediction("strong").table
    assert strong["per_process_batch"].tolist() == [64, 32, 16] and strong["steps"].tolist() == [100] * 3
    assert strong["epoch_s"].tolist() == pytest.approx([0.164, 0.146, 0.152], rel=1e-9)
    assert strong["speedup"].tolist() == pytest.approx([1.0, 164 / 146, 164 / 152], rel=1e-9)
    assert strong["efficiency"].tolist() == pytest.approx([1.0, 82 / 146, 41 / 152], rel=1e-9)
    # given parameters have no uncertainty: the band is the point
    assert strong["speedup_low"].tolist() == pytest.approx(strong["speedup"].tolist(), rel=1e-12)
    assert strong["epoch_s_high"].tolist() == pytest.approx(strong["epoch_s"].tolist(), rel=1e-12)
    assert list(strong.columns) == sm.TABLE_COLUMNS


def test_hand_computed_tree_form_and_exposed_factor():
    # tree, n = 2: 2 * 50 us + 2 * 40 us = 180 us -> epoch 50 * 1.82 ms; n = 4: 4 * 50 + 4 * 40 = 360 us
    tree = hand_prediction("weak", form="tree").table
    assert tree["speedup"].tolist() == pytest.approx([1.0, 164 / 91, 164 / 50], rel=1e-9)
    # half the ring all-reduce exposed: n = 2 step 1.64 + 0.07 ms, n = 4 step 1.64 + 0.18 ms
    half = hand_prediction("weak", exposed=0.5)
    assert half.table["step_s"].tolist() == pytest.approx([1.64e-3, 1.71e-3, 1.82e-3], rel=1e-9)
    assert half.exposed == 0.5 and "exposed factor 0.5" in half.notes[-1]
    # three times the isolated all-reduce (ranks waiting for each other): n = 2 step 1.64 + 0.42 ms
    triple = hand_prediction("weak", exposed=3.0)
    assert triple.table["step_s"].tolist() == pytest.approx([1.64e-3, 2.06e-3, 2.72e-3], rel=1e-9)


def test_knee_where_latency_dominates():
    # weak, t_c = 64 * 10 us = 0.64 ms, latency 2 (n-1) 50 us, bandwidth negligible (1 TB/s)
    p = sm.predict(sm.given_compute(0.0, 1e-5), sm.given_allreduce(50e-6, 1e-12), batch_size=64, n_train=5120,
                   gradient_bytes=40_000, scaling="weak", widths=[1, 2, 4, 8])
    # E(n) = 0.64 / (0.64 + 0.1 (n-1) + bandwidth): 0.865 at n = 2, 0.681 at n = 4
    assert p.table["efficiency"].tolist()[:3] == pytest.approx([1.0, 0.64 / 0.74004, 0.64 / 0.94006], rel=1e-9)
    assert (p.knee.width, p.knee.at, p.knee.dominant, p.knee.cause) == (2, 2, "all-reduce", "latency")
    assert p.knee.reason == "all-reduce latency 2(n-1)*alpha = 100 us, 14 % of the step at n=2"
    # the step itself: compute until the latency 0.7 ms at n = 8 passes 0.64 ms
    assert p.table["dominant"].tolist() == ["compute", "compute", "compute", "all-reduce"]


def test_knee_where_compute_overhead_dominates():
    # strong, c0 = 0.1 ms, c1 64 = 0.64 ms, all-reduce negligible: E(n) = 0.74 / (n (0.1 + 0.64 / n)) about
    p = sm.predict(sm.given_compute(1e-4, 1e-5), sm.given_allreduce(1e-9, 0.0), batch_size=64, n_train=6400,
                   gradient_bytes=40_000, scaling="strong", widths=[1, 2, 4, 8])
    assert p.table["efficiency"].tolist() == pytest.approx(
        [1.0, 0.74 / 0.840004, 0.74 / 1.040024, 0.74 / 1.440112], rel=1e-9)
    assert (p.knee.width, p.knee.at, p.knee.dominant, p.knee.cause) == (4, 4, "compute", "overhead")
    assert p.knee.reason == ("compute no longer shrinks: t_c(b)=c0+c1*b with c0 = 100 us, 38 % of the step "
                             "at n=4 (b = 16)")
    assert set(p.table["dominant"]) == {"compute"}
    # a knee at n = 1 is explained at the next width; strong scaling skips widths that do not divide 64
    q = sm.predict(sm.given_compute(1e-3, 1e-5), sm.given_allreduce(1e-9, 0.0), batch_size=64, n_train=6400,
                   gradient_bytes=0, scaling="strong", widths=[2, 3, 4])
    assert q.table["width"].tolist() == [1, 2, 4] and "widths [3] skipped" in q.notes[0]
    assert (q.knee.width, q.knee.at, q.knee.cause) == (1, 2, "overhead")


def test_monte_carlo_intervals_hold_the_point_and_are_seeded():
    batches = [1, 8, 32, 64, 128, 256]
    compute = sm.fit_compute(batches, step_samples(1e-3, 1e-5, batches, noise=100e-6), where=WHERE)
    comm = sm.fit_allreduce(allreduce_rows("ring", 30e-6, 1e-10, noise=5e-6), where=WHERE)
    kw = dict(batch_size=64, n_train=6400, gradient_bytes=40_000, scaling="weak", widths=[1, 2, 8, 64], samples=500)
    t = sm.predict(compute, comm, **kw).table
    for col in ("epoch_s", "speedup", "efficiency"):
        assert (t[f"{col}_low"] <= t[col]).all() and (t[col] <= t[f"{col}_high"]).all()
    assert (t["speedup_high"] - t["speedup_low"]).iloc[1:].gt(0).all()  # real uncertainty past n = 1
    assert (t["speedup_low"].iloc[0], t["speedup_high"].iloc[0]) == (1.0, 1.0)
    assert t.equals(sm.predict(compute, comm, **kw).table)
    assert not t.equals(sm.predict(compute, comm, **kw, seed=1).table)


def test_compare_measured_against_predicted():
    p = hand_prediction("weak")
    out = sm.compare(p, {4: 3.0, 2: (1.8, 1.7, 1.9)})
    assert out["width"].tolist() == [2, 4]
    assert out["rel_error"].tolist() == pytest.approx([(164 / 89 - 1.8) / 1.8, (3.28 - 3.0) / 3.0], rel=1e-9)
    assert out["in_band"].tolist() == [False, False] and out["measured_low"].iloc[0] == 1.7
    # a scaling-table-like frame (n, speedup, speedup_ci_low/high); the measured value inside a real band
    band = p.table.assign(speedup_low=p.table["speedup"] * 0.9, speedup_high=p.table["speedup"] * 1.1)
    measured = pd.DataFrame({"n": [2], "speedup": [164 / 89 * 1.05], "speedup_ci_low": [1.7],
                             "speedup_ci_high": [2.0]})
    got = sm.compare(band, measured)
    assert got["in_band"].tolist() == [True] and got["rel_error"].iloc[0] == pytest.approx(1 / 1.05 - 1)
    with pytest.raises(ValueError, match=r"widths \[8\] measured but not predicted"):
        sm.compare(p, {8: 5.0})
    with pytest.raises(ValueError, match="expected positive"):
        sm.compare(p, {2: 0.0})


def test_too_few_points_refused():
    with pytest.raises(ValueError, match=r"step probe of sine / cfc / cpu: 2 distinct batch size.*at least 3"):
        sm.fit_compute([8, 16, 16], [[1.0], [2.0], [2.1]], where=WHERE)
    rows = [(2, m, [1e-5 + m * 1e-10]) for m in (1024, 4096)] + [(4, m, [1e-5]) for m in (1, 2, 3)]
    with pytest.raises(ValueError, match=r"all-reduce probe of sine / cfc / cpu, width 2: 2 distinct message size"):
        sm.fit_allreduce(rows, where=WHERE)
    with pytest.raises(ValueError, match="width 1 .*expected an integer >= 2"):
        sm.fit_allreduce([(1, 1024, [1e-5])], where=WHERE)
    with pytest.raises(ValueError, match="batch 8: timing samples must be finite"):
        sm.fit_compute([8, 16, 32], [[math.nan], [2.0], [3.0]], where=WHERE)


def test_negative_fit_is_unfit_and_prediction_refuses_it():
    # step times of -1 ms + 10 us * b: an overhead below zero, far outside noise
    batches = [200, 300, 400, 500]
    bad = sm.fit_compute(batches, step_samples(-1e-3, 1e-5, batches, noise=1e-6), where=WHERE)
    assert not bad.ok and bad.reason.startswith("step probe of sine / cfc / cpu: c0 = -0.001")
    assert "below 0 (expected >= 0)" in bad.reason
    with pytest.raises(ValueError, match=r"compute fit \(step probe\) of sine / cfc / cpu is unfit: .*c0 = -0.001"):
        sm.predict(bad, sm.given_allreduce(1e-5, 1e-9), batch_size=64, n_train=640, gradient_bytes=0, scaling="weak")
    # a negative estimate whose interval holds 0: clamped, with a note
    # medians 0.9, 2.1, 2.9 ms at b = 1, 2, 3, each row weighted by 1 / its median: the solution of
    # 1 = c0 / t + c1 b / t in least squares, c0 = -0.1445 ms, c1 = 1.0566 ms, 1 dof
    b, t = np.array([1.0, 2.0, 3.0]), np.array([0.9e-3, 2.1e-3, 2.9e-3])
    (c0, c1), *_ = np.linalg.lstsq(np.column_stack([1 / t, b / t]), np.ones(3), rcond=None)
    clamped = sm.fit_compute([1, 2, 3], [[0.9e-3], [2.1e-3], [2.9e-3]], where=WHERE)
    assert clamped.ok and clamped.c0.value == 0.0 and clamped.c0.low == 0.0 and clamped.c0.high > 0
    assert clamped.c1.value == pytest.approx(c1, rel=1e-9) and f"c0 = {c0:.4g} < 0" in clamped.notes[0]
    assert "clamped to 0" in clamped.notes[0]
    # an all-reduce width whose latency is far below 0: the whole all-reduce fit is unfit
    # width 4: t = -50 us + 1 ns/byte * m over 100 kB .. 1 MB, all times positive
    rows = allreduce_rows("ring", 30e-6, 1e-10, widths=(2, 8), noise=0.1e-6)
    rows += [(4, m, [-50e-6 + 1e-9 * m + d for d in (-1e-7, 0.0, 1e-7)]) for m in (1e5, 2e5, 5e5, 1e6)]
    comm = sm.fit_allreduce(rows, where=WHERE)
    assert not comm.ok and "width 4: latency a_n = " in comm.reason
    assert comm.widths[1].width == 4 and not comm.widths[1].ok and comm.widths[0].ok
    with pytest.raises(ValueError, match="all-reduce fit of sine / cfc / cpu is unfit: .*width 4"):
        sm.predict(sm.given_compute(1e-3, 1e-5), comm, batch_size=64, n_train=640, gradient_bytes=0, scaling="weak")


def test_bad_prediction_arguments_refused():
    compute, comm = sm.given_compute(1e-3, 1e-5), sm.given_allreduce(50e-6, 1e-9)
    kw = dict(batch_size=64, n_train=6400, gradient_bytes=40_000, scaling="weak")
    for change, message in [({"widths": [1, 0, 2]}, "width 0 .*expected an integer >= 1"),
                            ({"batch_size": 0}, "batch_size 0"), ({"n_train": 0}, "n_train 0"),
                            ({"gradient_bytes": -1}, "gradient_bytes -1"), ({"scaling": "both"}, "'weak' or 'strong'"),
                            ({"exposed": -0.5}, r"exposed -0.5 .*a number >= 0"),
                            ({"exposed": float("inf")}, "exposed inf"), ({"threshold": 0}, "threshold 0")]:
        with pytest.raises(ValueError, match=message):
            sm.predict(compute, comm, **{**kw, **change})
    with pytest.raises(ValueError, match="alpha = -1e-05 s"):
        sm.given_allreduce(-1e-5, 1e-9, where="nccl / h100")


def test_one_width_says_ring_and_tree_agree():
    fit = sm.fit_allreduce(allreduce_rows("ring", 30e-6, 1e-10, widths=(2,)), where=WHERE)
    ring, tree = fit.forms
    assert fit.ok and fit.form == "ring"
    assert any("one width (n=2) measured: ring and tree fit it equally well" in n for n in fit.notes)
    # at n = 2 they are the same line: equal residuals, tree's beta half of ring's (2 m beta against m beta)
    assert ring.rss == pytest.approx(tree.rss, rel=1e-6)
    assert tree.beta.value == pytest.approx(ring.beta.value / 2, rel=1e-9)
    assert ring.alpha.value == pytest.approx(tree.alpha.value, rel=1e-9)
