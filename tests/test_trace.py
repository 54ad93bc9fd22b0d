"""The recorder against each optimizer's published update rule, replayed in numpy (float64)."""

import numpy as np
import pytest
from tolerance import assert_close

from cfxl.engine.trace import Recorder
from cfxl.engine.train import Config, fit


def sgd(p, g, s, h, t):
    if h.get("momentum", 0):
        s["momentum_buffer"] = g.copy() if t == 1 else h["momentum"] * s["momentum_buffer"] + g
        g = s["momentum_buffer"]
    return p - h["lr"] * g


def adam(p, g, s, h, t):
    b1, b2 = h["betas"]
    s["exp_avg"] = b1 * s.get("exp_avg", 0) + (1 - b1) * g
    s["exp_avg_sq"] = b2 * s.get("exp_avg_sq", 0) + (1 - b2) * g * g
    denom = np.sqrt(s["exp_avg_sq"]) / np.sqrt(1 - b2 ** t) + h["eps"]
    return p - h["lr"] / (1 - b1 ** t) * s["exp_avg"] / denom


def adamw(p, g, s, h, t):
    """AdamW (Loshchilov & Hutter): the weights shrink by lr * weight_decay, then Adam's step on
    the gradient alone."""
    return adam(p * (1 - h["lr"] * h["weight_decay"]), g, s, h, t)


def rmsprop(p, g, s, h, t):
    a = h["alpha"]
    s["square_avg"] = a * s.get("square_avg", 0) + (1 - a) * g * g
    return p - h["lr"] * g / (np.sqrt(s["square_avg"]) + h["eps"])


def adagrad(p, g, s, h, t):
    s["sum"] = s.get("sum", 0) + g * g
    return p - h["lr"] * g / (np.sqrt(s["sum"]) + h["eps"])


RULES = {"sgd": sgd, "momentum": sgd, "adam": adam, "rmsprop": rmsprop, "adagrad": adagrad,
         "adamw": adamw}
LRS = {"sgd": 0.5, "momentum": 0.2, "adam": 0.05, "rmsprop": 0.01, "adagrad": 0.1, "adamw": 0.05}
DECOUPLED = {"adamw"}  # weight decay on the weights, not added to the gradient


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from cfxl.data.ratings import read_ratings

    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("trace") / "ratings.csv"
    pairs = [(u, m) for u in range(1, 7) for m in range(1, 9) if rng.random() < 0.7]
    lines = [f"{u},{m * 10},{rng.integers(1, 11) / 2},0" for u, m in pairs]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    return read_ratings(path)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("opt", list(RULES))
def test_replay_reproduces_every_step(small, opt, weight_decay):
    config = Config(model="dotbias", n_factors=3, opt=opt, lr=LRS[opt], weight_decay=weight_decay, bs=8, epochs=3,
                    schedule="constant",
                    dtype="float64", device="cpu", val_pct=0.0)
    trained = fit(config, small, recorder=Recorder(), progress=False)
    trace = trained.trace
    n_steps = 3 * int(np.ceil(len(small) / 8))
    assert trace.n_steps == n_steps
    assert trace.optimizer == {"sgd": "SGD", "momentum": "SGD", "adam": "Adam", "rmsprop": "RMSprop",
                               "adagrad": "Adagrad", "adamw": "AdamW"}[opt]
    hyper = dict(trace.hyper)
    for name, pt in trace.params.items():
        p, state = pt.value[0].copy(), {}
        # torch's fused kernels round where numpy rounds twice, and the differences add up along
        # the run: each quantity is judged against the largest size it, or what it sums, has had
        # (a parameter passing near zero, a running average of gradients changing sign)
        size_p, size_g = np.abs(p), np.zeros_like(p)
        for t in range(1, n_steps + 1):
            assert_close(pt.value[t - 1], p, scale=size_p)
            wd = 0.0 if opt in DECOUPLED else weight_decay
            g = pt.grad[t - 1] + wd * p
            size_g = np.maximum(size_g, np.abs(pt.grad[t - 1]) + wd * np.abs(p))
            assert_close(pt.grad_used[t - 1], g, scale=size_g)
            p = RULES[opt](p, g, state, {**hyper, "lr": trace.lr[t - 1]}, t)
            step = np.abs(pt.value_after[t - 1] - pt.value[t - 1])
            size_p = np.maximum(size_p, np.abs(pt.value_after[t - 1]) + step)
            assert_close(pt.value_after[t - 1], p, scale=size_p)
            scales = {"momentum_buffer": size_g / (1 - hyper.get("momentum", 0)),
                      "exp_avg": size_g}
            for key, value in state.items():
                assert_close(pt.state[key][t - 1], value, scale=scales.get(key, 0), err_msg=key)
            if "step" in pt.state:
                assert pt.state["step"][t - 1] == t
        expected_keys = {"sgd": set(), "momentum": {"momentum_buffer"}, "adam": {"exp_avg", "exp_avg_sq"},
                         "adamw": {"exp_avg", "exp_avg_sq"},
                         "rmsprop": {"square_avg"}, "adagrad": {"sum"}}[opt]
        assert expected_keys <= set(pt.state) and set(pt.state) - {"step"} == expected_keys, name
        # the final recorded value is the trained parameter
        final = dict(trained.model.named_parameters())[name + ".weight"].detach().numpy()
        np.testing.assert_array_equal(pt.value_after[-1], final)  # the same tensor


def test_follow_chosen_rows_and_lr_schedule(small):
    config = Config(model="dotbias", n_factors=2, opt="momentum", lr=0.1, schedule="1@0.1,1@0.01",
                    bs=16, dtype="float64", device="cpu", val_pct=0.0)
    trained = fit(config, small, recorder=Recorder({"u_weight": [1, 3], "i_bias": None}),
                  progress=False)
    trace = trained.trace
    assert set(trace.params) == {"u_weight", "i_bias"}
    u = trace.params["u_weight"]
    assert u.value.shape == (trace.n_steps, 2, 2)
    assert trace.params["i_bias"].value.shape == (trace.n_steps, small.n_movies, 1)
    full = trained.model.u_weight.weight.detach().numpy()
    np.testing.assert_array_equal(u.value_after[-1], full[[1, 3]])
    per_epoch = trace.n_steps // 2
    assert list(trace.lr) == [0.1] * per_epoch + [0.01] * per_epoch
    assert np.all(np.isfinite(trace.loss)) and trace.loss.shape == (trace.n_steps,)
