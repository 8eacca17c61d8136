"""Captum's text helpers from ``captum.attr``: TokenReferenceBase and the interpretable
embedding layer (configure / remove / indices_to_embeddings), with Captum's behaviour
(its own test cases) and explainers run on the embeddings they give."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn

import xattr
from xattr import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)
from xattr.explainers.interpretable_embedding import InterpretableEmbeddingError

ca = pytest.importorskip("captum.attr")
F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:.*interpretable embedding layer")


class Inner(nn.Module):
    """A custom embedding module that takes keyword arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.inner_embedding = nn.Embedding(10, 4)

    def forward(self, input: Tensor, another_input: Tensor | None = None) -> Tensor:
        e = self.inner_embedding(input)
        return e if another_input is None else e + self.inner_embedding(another_input)


class TextNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding1 = nn.Embedding(10, 4)
        self.embedding2 = Inner()
        self.fc = nn.Linear(4, 3)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.fc(torch.tanh(self.embedding1(a) + self.embedding2(b)).mean(1))


A = torch.tensor([[2, 5, 0, 1], [3, 3, 9, 0]])
B = torch.tensor([[3, 0, 0, 2], [1, 2, 4, 8]])


@pytest.mark.parametrize("idx, length", [(0, 5), (7, 3), (2, 0)])
def test_token_reference_matches_captum(idx, length):
    ours = TokenReferenceBase(reference_token_idx=idx).generate_reference(length, "cpu")
    theirs = ca.TokenReferenceBase(reference_token_idx=idx).generate_reference(
        length, torch.device("cpu")
    )
    assert ours.dtype == torch.int64 and ours.shape == theirs.shape
    if length:  # Captum's empty reference is torch.tensor([]), float32; ours stays int64
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    assert TokenReferenceBase().reference_token_idx == 0


def test_configure_and_remove_as_captum():
    model = TextNet().eval()
    out = model(A, B)
    emb1 = configure_interpretable_embedding_layer(model, "embedding1")
    assert model.embedding1 is emb1 and isinstance(emb1, InterpretableEmbeddingBase)
    assert (emb1.num_embeddings, emb1.embedding_dim, emb1.full_name) == (10, 4, "embedding1")
    inner = configure_interpretable_embedding_layer(model, "embedding2.inner_embedding")
    assert model.embedding2.inner_embedding is inner
    # the model now runs on embeddings computed outside it
    e1, e2 = emb1.indices_to_embeddings(A), inner.indices_to_embeddings(B)
    assert e1.shape == (2, 4, 4)
    assert torch.equal(model(e1, e2), out)
    for name in ("embedding1", "embedding2.inner_embedding"):  # configured twice
        with pytest.raises(AssertionError, match="already configured"):
            configure_interpretable_embedding_layer(model, name)
        with pytest.raises(ValueError, match="already configured"):
            configure_interpretable_embedding_layer(model, name)
    remove_interpretable_embedding_layer(model, inner)
    assert type(model.embedding2.inner_embedding) is nn.Embedding
    remove_interpretable_embedding_layer(model, emb1)
    assert type(model.embedding1) is nn.Embedding
    assert torch.equal(model(A, B), out)


def test_custom_module_with_keyword_arguments():
    model = TextNet().eval()
    out = model(A, B)
    expected = model.embedding2(input=B, another_input=A)
    emb = configure_interpretable_embedding_layer(model, "embedding2")
    assert emb.num_embeddings is None and emb.embedding_dim is None
    got = emb.indices_to_embeddings(input=B, another_input=A)
    assert torch.equal(got, expected)
    assert torch.equal(emb(input=got), got)  # the first keyword argument passes through
    assert torch.equal(model(A, emb.indices_to_embeddings(B)), out)
    remove_interpretable_embedding_layer(model, emb)
    assert type(model.embedding2) is Inner


def test_configure_warns_as_captum():
    model = TextNet()
    with pytest.warns(UserWarning, match="remove_interpretable_embedding_layer"):
        emb = configure_interpretable_embedding_layer(model, "embedding1")
    remove_interpretable_embedding_layer(model, emb)


def test_integrated_gradients_on_embeddings_match_captum_and_layer_ig():
    """IG on the embeddings (the tutorials' recipe) = Captum's = xattr's
    LayerIntegratedGradients at the embedding layer with the reference tokens."""
    model = TextNet().to(F64).eval()
    ref = TokenReferenceBase(0).generate_reference(4, "cpu").expand(2, 4)
    kw = dict(target=1, n_steps=20, method="riemann_trapezoid")  # Captum's exact rule
    lig = xattr.LayerIntegratedGradients(model, model.embedding1)
    layer_ig = lig.attribute((A, B), baselines=(ref, B), **kw)
    emb = configure_interpretable_embedding_layer(model, "embedding1")
    try:
        x = emb.indices_to_embeddings(A)
        base = emb.indices_to_embeddings(ref)
        ours = xattr.IntegratedGradients(model).attribute(
            x, base, additional_forward_args=(B,), **kw
        )
        theirs = ca.IntegratedGradients(model).attribute(
            x, base, additional_forward_args=(B,), **kw
        )
    finally:
        remove_interpretable_embedding_layer(model, emb)
    # Captum rounds its step sizes to float32 (`torch.tensor(step_sizes).float()`)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-8)
    torch.testing.assert_close(ours, layer_ig, rtol=0, atol=1e-12)


def test_works_with_captums_functions_both_ways():
    model = TextNet().eval()
    ours = configure_interpretable_embedding_layer(model, "embedding1")
    ca.remove_interpretable_embedding_layer(model, ours)  # Captum reads the same fields
    assert type(model.embedding1) is nn.Embedding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ca.configure_interpretable_embedding_layer(model, "embedding1")
    with pytest.raises(AssertionError, match="already configured"):
        configure_interpretable_embedding_layer(model, "embedding1")
    remove_interpretable_embedding_layer(model, theirs)
    assert type(model.embedding1) is nn.Embedding


def test_errors_name_the_argument():
    model = TextNet()
    with pytest.raises(ValueError, match="embedding_layer_name: TextNet has no attribute 'embed'"):
        configure_interpretable_embedding_layer(model, "embed")
    with pytest.raises(ValueError, match="'embedding2.nope'"):
        configure_interpretable_embedding_layer(model, "embedding2.nope.x")
    with pytest.raises(TypeError, match="embedding_layer_name"):
        configure_interpretable_embedding_layer(model, "")
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        configure_interpretable_embedding_layer(lambda x: x, "embedding1")
    model.scale = 3.0
    with pytest.raises(TypeError, match="'scale' is a float, not a layer"):
        configure_interpretable_embedding_layer(model, "scale")
    with pytest.raises(TypeError, match="interpretable_emb: expected"):
        remove_interpretable_embedding_layer(model, model.embedding1)
    with pytest.raises(TypeError, match="reference_token_idx: expected an int"):
        TokenReferenceBase(0.5)
    with pytest.raises(TypeError, match="sequence_length: expected an int"):
        TokenReferenceBase().generate_reference(2.0, "cpu")
    with pytest.raises(ValueError, match="sequence_length: must be >= 0"):
        TokenReferenceBase().generate_reference(-1, "cpu")
    emb = InterpretableEmbeddingBase(nn.Embedding(3, 2), "e")
    with pytest.raises(InterpretableEmbeddingError, match="no input"):
        emb()
