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


def test_references():
    assert cell(2, 27) == "AB3" and cell(2, 27, absolute="rc") == "$AB$3"
    assert area(3, 1, 3, 5, absolute="c") == "$B4:$F4"
    assert on_sheet("data", "E7") == "data!E7"
    assert on_sheet("basic SGD", "E7") == "'basic SGD'!E7"

