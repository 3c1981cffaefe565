"""Factories for source: workloads whose model library builds models from a config object, not keywords.

``hf_from_config``: a Hugging Face ``transformers`` model from a config given as plain keywords, randomly
initialised (seeded by the suite before the factory runs), nothing downloaded::

    source:
      framework: torch
      factory: suite.sources.factories:hf_from_config
      kwargs: {model: BertModel, model_type: bert, hidden_size: 128, num_hidden_layers: 2, ...}
"""
from __future__ import annotations


def hf_from_config(model: str, model_type: str, **config):
    """``transformers.<model>(AutoConfig.for_model(model_type, **config))`` in eval mode.

    Args:
        model: the model class of ``transformers`` (``BertModel``, ``LlamaForCausalLM``, ...).
        model_type: the config's model type (``bert``, ``llama``, ...).
        config: the config's fields (hidden size, layers, heads, vocabulary, ...).
    """
    import transformers

    cls = getattr(transformers, model, None)
    if cls is None:
        raise ValueError(f"transformers {transformers.__version__} has no model class {model!r}")
    cfg = transformers.AutoConfig.for_model(model_type, **config)
    return cls(cfg).eval()
