"""The Nile lesson at the bundled defaults: after STEPS training steps, an RNN's gradient has
died before it reaches the fact and an LSTM's has not, and the time-gradient views show it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from descent.engine.data.nile import OPENING_LEN
from descent.engine.inside import gradient_ratio
from descent.engine.records import Step
from descent.engine.scenario import load, resolve_name
from descent.engine.session import Session

STEPS = 200                 # about 200 training steps (a few seconds per cell)
MIN_GAP = 50                # test sentences with at least this many filler words


def trained(cell: str):
    session = Session(load(resolve_name("nile"), overrides=[f"model.layers[1].type={cell}"]))
    list(session.prepare())
    steps = [r for r in session.run(threading.Event(), steps=STEPS) if isinstance(r, Step)]
    return session, steps


def fact_ratio(session) -> tuple[float, int]:
    """Mean scaled gradient at the fact's last word over long-gap test sentences of one gap."""
    ds = session.dataset
    gaps = ds.extra_test["gap"]
    g = int(gaps.max())
    pick = np.flatnonzero(gaps == g)[:64]
    ratio = gradient_ratio(session.trainer, ds.x_test[pick], ds.y_test[pick], ds.mask_test[pick])["1"]
    return float(ratio[g + 1]), g                       # "?" at 0, fillers 1..g, the fact's last word at g + 1


@pytest.fixture(scope="module")
def runs():
    return {cell: trained(cell) for cell in ("rnn", "lstm")}


def test_rnn_gradient_dies_before_the_fact_lstm_keeps_it(runs):
    (rnn, _), (lstm, _) = runs["rnn"], runs["lstm"]
    r_rnn, gap = fact_ratio(rnn)
    r_lstm, _ = fact_ratio(lstm)
    assert gap >= MIN_GAP
    assert r_lstm > 0 and r_rnn < r_lstm / 1000, (r_rnn, r_lstm)


def test_the_two_time_gradient_views_differ(runs):
    from descent.tui.app.history import History
    from descent.tui.app.timegrads import TimeGradients, level, nile_layout

    texts, far = {}, {}
    for cell, (session, steps) in runs.items():
        history = History()
        for rec in steps:
            history.add(rec)
        view = TimeGradients()
        view.draw(history, nile_layout(session.scenario))
        texts[cell] = str(view.render_rows(100, 20, colour=False))
        gap = nile_layout(session.scenario)[1]
        far[cell] = level(steps[-1].time_grad_ratio["1"][gap + OPENING_LEN])   # the fact's first word
    assert texts["rnn"] != texts["lstm"]
    assert "F" in texts["rnn"].splitlines()[-3]                                # the fact is marked
    assert far["rnn"] < far["lstm"]
