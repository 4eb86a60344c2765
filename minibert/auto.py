"""``AutoModel*``: pick the model class from ``config.json``'s ``model_type``, as transformers does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from minibert import albert, bert
from minibert.config import AutoConfig, EncoderConfig
from minibert.errors import ConfigError
from minibert.pretrained import PreTrainedModel


class _AutoModel:
    """Dispatches ``from_pretrained`` / ``from_config`` through ``_classes[model_type]``."""

    _classes: ClassVar[dict[str, type[PreTrainedModel]]] = {}

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is a dispatcher: use .from_pretrained(...) or .from_config(...)")

    @classmethod
    def model_class(cls, config: EncoderConfig) -> type[PreTrainedModel]:
        if config.model_type not in cls._classes:
            raise ConfigError(
                f"{cls.__name__} has no class for model_type {config.model_type!r}; it knows {', '.join(cls._classes)}"
            )
        return cls._classes[config.model_type]

    @classmethod
    def from_config(cls, config: EncoderConfig) -> PreTrainedModel:
        return cls.model_class(config)(config)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> PreTrainedModel:
        """Load with the class that ``model_type`` names; ``kwargs`` as in ``PreTrainedModel.from_pretrained``."""
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOAD_ARGUMENTS}
        config = AutoConfig.from_pretrained(name_or_path, revision=revision, cache_dir=cache_dir, **overrides)
        return cls.model_class(config).from_pretrained(
            name_or_path, config=config, revision=revision, cache_dir=cache_dir, **kwargs
        )


_LOAD_ARGUMENTS = {"dtype", "device", "ignore_mismatched_sizes", "attn_implementation"}


class AutoModel(_AutoModel):
    _classes = {"bert": bert.BertModel, "roberta": bert.RobertaModel, "albert": albert.AlbertModel}


class AutoModelForMaskedLM(_AutoModel):
    _classes = {"bert": bert.BertForMaskedLM, "roberta": bert.RobertaForMaskedLM, "albert": albert.AlbertForMaskedLM}


class AutoModelForPreTraining(_AutoModel):
    # RoBERTa was pre-trained with masked LM alone, so its pre-training model is the MLM one.
    _classes = {
        "bert": bert.BertForPreTraining,
        "roberta": bert.RobertaForMaskedLM,
        "albert": albert.AlbertForPreTraining,
    }


class AutoModelForNextSentencePrediction(_AutoModel):
    _classes = {"bert": bert.BertForNextSentencePrediction}


class AutoModelForSequenceClassification(_AutoModel):
    _classes = {
        "bert": bert.BertForSequenceClassification,
        "roberta": bert.RobertaForSequenceClassification,
        "albert": albert.AlbertForSequenceClassification,
    }


class AutoModelForTokenClassification(_AutoModel):
    _classes = {
        "bert": bert.BertForTokenClassification,
        "roberta": bert.RobertaForTokenClassification,
        "albert": albert.AlbertForTokenClassification,
    }


class AutoModelForQuestionAnswering(_AutoModel):
    _classes = {
        "bert": bert.BertForQuestionAnswering,
        "roberta": bert.RobertaForQuestionAnswering,
        "albert": albert.AlbertForQuestionAnswering,
    }


class AutoModelForMultipleChoice(_AutoModel):
    _classes = {
        "bert": bert.BertForMultipleChoice,
        "roberta": bert.RobertaForMultipleChoice,
        "albert": albert.AlbertForMultipleChoice,
    }
