"""Explainers: Captum's attribution methods on xattr's kernels, plus our own.

Gradient methods: Saliency, InputXGradient, IntegratedGradients, GradientShap,
NoiseTunnel, LayerIntegratedGradients, LayerGradCam (with
``LayerAttribution.interpolate``), DeepLift, DeepLiftShap, GuidedBackprop,
Deconvolution, GuidedGradCam, ShapleyIntegratedGradients (IG from
coalition baselines stratified by size). Perturbation methods (each computes a
game v(S) chosen by ``removal=``): FeatureAblation, Occlusion, KernelShap, Lime,
ShapleyValueSampling, Banzhaf, MeanWhenIncluded (RISE-like mean of v(S) over the
coalitions holding a feature), ExactShapley (ShapleyValues under Captum's name);
FeaturePermutation (FeatureAblation's game with every feature shuffled across the batch).
Captum's text helpers: TokenReferenceBase, configure_interpretable_embedding_layer /
remove_interpretable_embedding_layer (InterpretableEmbeddingBase).
"""

from xattr.explainers.banzhaf import Banzhaf
from xattr.explainers.deep_lift import DeepLift, DeepLiftShap
from xattr.explainers.exact_shapley import ExactShapley, ShapleyValues
from xattr.explainers.feature_ablation import FeatureAblation
from xattr.explainers.feature_permutation import FeaturePermutation
from xattr.explainers.gradient_shap import GradientShap
from xattr.explainers.guided_backprop import Deconvolution, GuidedBackprop
from xattr.explainers.guided_grad_cam import GuidedGradCam
from xattr.explainers.input_x_gradient import InputXGradient
from xattr.explainers.integrated_gradients import IntegratedGradients
from xattr.explainers.interpretable_embedding import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)
from xattr.explainers.kernel_shap import KernelShap
from xattr.explainers.layer_grad_cam import LayerGradCam
from xattr.explainers.layer_integrated_gradients import LayerIntegratedGradients
from xattr.explainers.lime import Lime, LinearSurrogate
from xattr.explainers.mean_when_included import MeanWhenIncluded
from xattr.explainers.noise_tunnel import NoiseTunnel
from xattr.explainers.occlusion import Occlusion
from xattr.explainers.registry import EXPLAINERS, ExplainerInfo, explainer_names
from xattr.explainers.removal import BaselineRemoval, ConditionalRemoval, MarginalRemoval
from xattr.explainers.saliency import Saliency
from xattr.explainers.shapley_integrated_gradients import ShapleyIntegratedGradients
from xattr.explainers.shapley_value_sampling import ShapleyValueSampling

__all__ = [
    "EXPLAINERS",
    "ExplainerInfo",
    "explainer_names",
    "Banzhaf",
    "BaselineRemoval",
    "ConditionalRemoval",
    "DeepLift",
    "DeepLiftShap",
    "Deconvolution",
    "ExactShapley",
    "ShapleyValues",
    "FeatureAblation",
    "FeaturePermutation",
    "GradientShap",
    "GuidedBackprop",
    "GuidedGradCam",
    "InputXGradient",
    "IntegratedGradients",
    "KernelShap",
    "LayerGradCam",
    "LayerIntegratedGradients",
    "Lime",
    "LinearSurrogate",
    "MarginalRemoval",
    "MeanWhenIncluded",
    "NoiseTunnel",
    "Occlusion",
    "Saliency",
    "ShapleyIntegratedGradients",
    "ShapleyValueSampling",
    "InterpretableEmbeddingBase",
    "TokenReferenceBase",
    "configure_interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
]
