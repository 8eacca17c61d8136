"""xattr.amortized: the "tokens" backbone (text: token ids [B, T], a per-token head over
a frozen encoder).

The model is a bag of embeddings, f(ids) = sum over positions t with ids_t != MASK of
w . E[ids_t]: under the MASK baseline the game is additive, so the Shapley value of
position t is w . E[ids_t] (0 for a MASK token), a function of that token's state alone
that the per-token head can represent exactly (a linear map of the state).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_amortized import one_thread  # noqa: F401 (autouse: one torch thread)
from xattr.amortized import AmortizedExplainer
from xattr.explainers import ExactShapley

V, T, E, MASK = 30, 6, 8, 1
FIT = {"baselines": MASK, "epochs": 60, "batch_size": 32, "show_progress": False}


class Bag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embedding = nn.Embedding(V, E)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(V, E, generator=g))
        self.w = nn.Parameter(torch.randn(E, generator=g))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = (ids != MASK).unsqueeze(-1).to(self.w.dtype)
        return (self.embedding(ids) * keep).sum(1) @ self.w


def ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(2, V, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def trained():
    model = Bag().eval()
    ae = AmortizedExplainer(
        model, "tokens", input_shape=(T,), encoder=model.embedding, hidden=(64,), seed=0
    )
    before = model.embedding.weight.detach().clone()
    ae.fit(ids(300, 1), **FIT)
    assert torch.equal(model.embedding.weight, before)  # the encoder is frozen
    return model, ae


def test_tokens_recovers_the_shapley_values_of_a_bag_of_embeddings(trained):
    model, ae = trained
    x = ids(64, 2)
    phi = ae.attribute(x)
    exact = ExactShapley(model).attribute(x, baselines=MASK)
    assert phi.shape == x.shape and phi.dtype == torch.float32
    # relative squared error: the head learns w . E[id] per token (untrained: ~1)
    assert ((phi - exact) ** 2).mean() < 0.02 * (exact**2).mean()
    v_empty = model(torch.full((1, T), MASK))
    torch.testing.assert_close(phi.sum(1), model(x) - v_empty, rtol=0, atol=1e-4)


def test_tokens_save_load_round_trip(trained, tmp_path):
    model, ae = trained
    ae.save(tmp_path / "ae.pt")
    assert not any(k.startswith("encoder") for k in ae.net.state_dict())
    with pytest.raises(ValueError, match="encoder: the 'tokens' backbone needs"):
        AmortizedExplainer.load(tmp_path / "ae.pt", model)
    back = AmortizedExplainer.load(tmp_path / "ae.pt", model, encoder=model.embedding)
    x = ids(8, 3)
    assert torch.equal(back.attribute(x), ae.attribute(x))


def test_tokens_grouped_positions_are_efficient():
    """Positions grouped into d = 3 features: the head's per-token values are summed
    per feature; every element of a feature carries its value; efficiency exact."""
    model = Bag().eval()
    groups = torch.arange(T) // 2
    ae = AmortizedExplainer(
        model, "tokens", input_shape=(T,), feature_mask=groups, encoder=model.embedding
    )
    ae.fit(ids(40, 4), **{**FIT, "epochs": 2})
    x = ids(5, 5)
    phi = ae.attribute(x, return_input_shape=False)
    assert phi.shape == (5, 3)
    full = ae.attribute(x)
    torch.testing.assert_close(full, phi[:, groups])
    v_empty = model(torch.full((1, T), MASK))
    torch.testing.assert_close(phi.sum(1), model(x) - v_empty, rtol=0, atol=1e-4)


def test_tokens_bad_arguments():
    model = Bag().eval()
    emb = model.embedding
    with pytest.raises(ValueError, match="encoder: the 'tokens' backbone needs"):
        AmortizedExplainer(model, "tokens", input_shape=(T,))
    with pytest.raises(ValueError, match="encoder: only the 'tokens' backbone"):
        AmortizedExplainer(model, "mlp", input_shape=(T,), encoder=emb)
    with pytest.raises(ValueError, match="input_shape: the 'tokens' backbone explains"):
        AmortizedExplainer(model, "tokens", input_shape=(2, T), encoder=emb)
    with pytest.raises(ValueError, match=r"encoder: expected token states \[B, 6, E\]"):
        AmortizedExplainer(model, "tokens", input_shape=(T,), encoder=lambda i: i.float())
    with pytest.raises(TypeError, match="encoder: expected a module or callable"):
        AmortizedExplainer(model, "tokens", input_shape=(T,), encoder=3)
    ae = AmortizedExplainer(model, "tokens", input_shape=(T,), encoder=emb)
    with pytest.raises(TypeError, match="x_train: the 'tokens' backbone takes token ids"):
        ae.fit(torch.zeros(4, T), **FIT)
