"""The lesson's models: shapes, ranges, initialisation and parameter names."""

import pytest
import torch

from cfxl.engine.models import DotProduct, EmbeddingDot, EmbeddingDotBias, EmbeddingNet, make_model, param_names


def test_dot_product_is_the_lessons_example():
    a = torch.tensor([[1.0, 2], [3, 4]])
    b = torch.tensor([[2.0, 2], [10, 10]])
    assert DotProduct()(a, b).tolist() == [6.0, 70.0]


@pytest.mark.parametrize("kind", ["dot", "dotbias", "net"])
def test_forward_shape(kind):
    torch.manual_seed(0)
    model = make_model(kind, 7, 11, 4, y_range=(0.5, 5.0))
    users, movies = torch.tensor([0, 6, 3]), torch.tensor([10, 0, 5])
    assert model(users, movies).shape == (3,)


def test_embedding_dot_init_range_and_value():
    torch.manual_seed(0)
    m = EmbeddingDot(20, 30, 5)
    w = torch.cat([m.u_weight.weight.flatten(), m.i_weight.weight.flatten()])
    assert 0 <= w.min() and w.max() <= 0.05
    u, i = torch.tensor([2]), torch.tensor([7])
    expected = (m.u_weight.weight[2] * m.i_weight.weight[7]).sum()
    assert torch.allclose(m(u, i), expected.reshape(1))


def test_dot_bias_is_sigmoid_range_of_dot_plus_biases():
    torch.manual_seed(0)
    m = EmbeddingDotBias(5, 6, 3, y_range=(0.5, 5.0)).double()
    for p in m.parameters():
        assert p.abs().max() <= 0.01
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-3, 3)  # large values so the sigmoid saturates somewhere
    u, i = torch.arange(5), torch.tensor([0, 1, 2, 3, 5])
    x = (m.u_weight.weight[u] * m.i_weight.weight[i]).sum(1) + m.u_bias.weight[u, 0] + m.i_bias.weight[i, 0]
    expected = torch.sigmoid(x) * 4.5 + 0.5
    assert torch.equal(m(u, i), expected)  # the same operations in the same order
    assert ((m(u, i) > 0.5) & (m(u, i) < 5.0)).all()


def test_net_range_is_widened_by_half_a_star_and_dropout_off_in_eval():
    torch.manual_seed(0)
    m = EmbeddingNet(5, 6, 4, y_range=(1.0, 5.0))
    assert m.y_range == (0.5, 5.5)
    with torch.no_grad():
        m.lin2.bias.fill_(100.0)
    m.eval()
    out = m(torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert torch.allclose(out, torch.tensor([5.5, 5.5]))
    assert torch.equal(out, m(torch.tensor([0, 1]), torch.tensor([2, 3])))


def test_param_names_use_fastai_vocabulary():
    assert list(param_names(make_model("dotbias", 3, 4, 2, y_range=(0.5, 5)))) == \
        ["u_weight", "i_weight", "u_bias", "i_bias"]
    assert list(param_names(make_model("net", 3, 4, 2, y_range=(0.5, 5)))) == \
        ["u_weight", "i_weight", "lin1.weight", "lin1.bias", "lin2.weight", "lin2.bias"]


def test_sparse_embeddings_give_sparse_gradients():
    m = make_model("dotbias", 3, 4, 2, y_range=(0.5, 5), sparse=True)
    m(torch.tensor([0, 1]), torch.tensor([2, 3])).sum().backward()
    assert m.u_weight.weight.grad.is_sparse
