"""torch's update rules as formula templates (cfxl.sheets.rules): each rule, rendered as Python
arithmetic in the templates' order of operations, takes torch.optim's single-tensor steps."""

import math

import pytest
import torch
from tolerance import assert_close


from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.rules import RULES, render

FEW_ROUNDINGS = 4 * 2.0 ** -52
SETTINGS = {"lr": 0.05, "momentum": 0.9, "alpha": 0.99, "eps": 1e-8, "beta1": 0.9, "beta2": 0.999,
            "weight_decay": 0.01}
OPTIMIZERS = {
    "sgd": lambda p, s: torch.optim.SGD([p], lr=s["lr"], weight_decay=s["weight_decay"],
                                        foreach=False),
    "momentum": lambda p, s: torch.optim.SGD([p], lr=s["lr"], momentum=s["momentum"],
                                             weight_decay=s["weight_decay"], foreach=False),
    "adagrad": lambda p, s: torch.optim.Adagrad([p], lr=s["lr"], eps=s["eps"],
                                                weight_decay=s["weight_decay"], foreach=False),
    "rmsprop": lambda p, s: torch.optim.RMSprop([p], lr=s["lr"], alpha=s["alpha"], eps=s["eps"],
                                                weight_decay=s["weight_decay"], foreach=False),
    "adam": lambda p, s: torch.optim.Adam([p], lr=s["lr"], betas=(s["beta1"], s["beta2"]),
                                          eps=s["eps"], weight_decay=s["weight_decay"],
                                          foreach=False),
    # decoupled: the parameter shrinks by lr * weight_decay, the moments see the plain gradient
    "adamw": lambda p, s: torch.optim.AdamW([p], lr=s["lr"], betas=(s["beta1"], s["beta2"]),
                                            eps=s["eps"], weight_decay=s["weight_decay"],
                                            foreach=False),
}


def python(template: str, now: dict, was: dict) -> float:
    """A template evaluated as Python float arithmetic: what a sheet computes from its cells."""
    def ref(kind, name, mod):
        if kind == "$":
            return repr(1 - SETTINGS[name[2:]] if name.startswith("1-") else SETTINGS[name])
        return repr((was if mod else now)[name])

    return eval(render(template, ref).replace("SQRT(", "math.sqrt(").replace("^", "**"),
                {"math": math})


@pytest.mark.parametrize("opt", sorted(RULES))
def test_each_rule_takes_torchs_steps(opt):
    rule = RULES[opt]
    assert set(OPTIMIZERS) == set(RULES)
    p = torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64, requires_grad=True)
    optimizer = OPTIMIZERS[opt](p, SETTINGS)
    was = [dict.fromkeys(rule.states, 0.0) for _ in range(3)]  # torch's empty state as zeros
    for step in range(1, 6):
        optimizer.zero_grad()
        (3 * (p - 0.25) ** 2 + p ** 4).sum().backward()
        now = [{"param": p[i].item(), "dloss": p.grad[i].item(), "step": float(step),
                "lr": SETTINGS["lr"]} for i in range(3)]
        for i in range(3):
            for stage in rule.stages:
                now[i][stage.name] = python(stage.formula, now[i], was[i])
            now[i]["new"] = python(rule.new_value, now[i], was[i])
        optimizer.step()
        for i in range(3):
            # torch's add_(alpha=), lerp_ and addcmul_ kernels may fuse a multiply and an
            # add (one rounding where Python rounds twice): a few roundings of the operands apart
            e = now[i]
            assert_close(e["new"], p[i].item(), rtol=FEW_ROUNDINGS,
                         scale=abs(e["param"]) + abs(e["new"] - e["param"]))
            for name in rule.states:
                state = optimizer.state[p][name][i].item()
                assert_close(e[name], state, rtol=FEW_ROUNDINGS,
                             scale=abs(was[i][name]) + abs(e["grad"]) + e["grad"] ** 2)
            p.data[i] = now[i]["new"]  # carry on from the rule's value, as a sheet does
        was = now


def test_the_tables_readings():
    assert RULES["adam"].states == ("exp_avg", "exp_avg_sq")
    assert RULES["momentum"].states == ("momentum_buffer",)
    assert RULES["adam"].reads("{step}") and RULES["adam"].reads("{$1-beta1}")
    assert not RULES["momentum"].reads("{step}")
    assert RULES["sgd"].new_value == "{param}-{lr}*{grad}"
    adamw = RULES["adamw"]
    assert adamw.states == RULES["adam"].states and adamw.step == RULES["adam"].step
    assert adamw.new_value.startswith("{param}*(1-{lr}*{$weight_decay})-")
    assert adamw.decoupled and not RULES["adam"].decoupled
    assert not any("weight_decay" in s.formula for s in adamw.stages)  # not in the moments


def test_references():
    assert cell(2, 27) == "AB3" and cell(2, 27, absolute="rc") == "$AB$3"
    assert area(3, 1, 3, 5, absolute="c") == "$B4:$F4"
    assert on_sheet("data", "E7") == "data!E7"
    assert on_sheet("basic SGD", "E7") == "'basic SGD'!E7"



def test_eve_is_the_lessons_rule_as_numpy_runs_it():
    """The lesson's Eve, its templates evaluated as Python floats row by row and epoch by
    epoch, gives cfxl.records.graddesc.lesson's numpy run bit for bit."""
    from cfxl.records import graddesc
    from cfxl.sheets.rules import EVE_EPOCH, LESSON_RULES

    rule = LESSON_RULES["eve"]
    assert rule.states == ("mom", "ms") and rule.hyper == ("beta1", "beta2", "beta3")
    d = graddesc.data(seed=3)
    r = graddesc.lesson("eve", d)
    h = r.hyper
    hyper = {"beta1": h.betas[0], "beta2": h.betas[1], "beta3": h.beta3}

    def run(template: str, now: dict, was: dict) -> float:
        def ref(kind, name, mod):
            if kind == "$":
                return repr(1 - hyper[name[2:]] if name.startswith("1-") else hyper[name])
            return f"({float((was if mod else now)[name])!r})"  # -x^2 is (-x)^2 in a sheet
        return eval(render(template, ref).replace("SQRT(", "math.sqrt(").replace("^", "**")
                    .replace("ABS(", "abs(").replace("MIN(", "min("), {"math": math})

    n = len(d.x)
    epoch = {"d": r.epoch_start["d"]}
    for e in range(1, h.epochs + 1):
        now = {"ft_1": r.epoch_extra["ft_1"][e - 1], "ft_2": r.epoch_extra["ft_2"][e - 1]}
        for stage in EVE_EPOCH:
            now[stage.name] = run(stage.formula, now, epoch)
        assert (now["r"], now["d"]) == (r.epoch_extra["r"][e - 1], r.epoch_extra["d"][e - 1])
        epoch = now
        for j in range(2):
            was = {k: float(r.state_start[k][j]) for k in rule.states}
            if e > 1:
                was = {k: float(r.state[k][(e - 1) * n - 1, j]) for k in rule.states}
            for i in range((e - 1) * n, e * n):
                row = {"param": (r.b, r.a)[j][i], "dloss": r.grad[i, j], "lr": h.lr,
                       "d": now["d"]}
                for stage in rule.stages:
                    row[stage.name] = run(stage.formula, row, was)
                    assert row[stage.name] == r.state[stage.name][i, j]
                assert run(rule.new_value, row, was) == (r.new_b, r.new_a)[j][i]
                was = row
