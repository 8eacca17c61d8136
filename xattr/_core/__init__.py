"""What every layer above the ops shares (explainers, metrics, smoothing, baselines
and the modules to come import this, never each other's private modules):

- ``inputs``: Captum-style inputs and baselines, their checks, example sizes
- ``targets``: ``target=`` in Captum's forms (``Targets``)
- ``validation``: argument checks (and the ops' checks, for the layers above)
- ``budget`` / ``batching``: the memory budget and the rows per model call
- ``model``: every model call, its output checks and hints
- ``features``: feature groups, spreading per-feature values, group scores and ranks
- ``removal`` / ``game``: how features are removed and the coalition game v(S)
- ``attribution``: the explainer base classes
- ``progress``: progress bars
"""
