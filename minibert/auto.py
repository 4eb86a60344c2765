"""``AutoConfig`` and ``AutoModel*``: the class is chosen by ``config.json``'s ``model_type``, as in transformers.

Each ``AutoModel*`` class is a table from ``model_type`` to the model class of one task; a new
architecture adds its classes to the tables here. (``AutoTokenizer`` lives with the tokenizers.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from minibert import albert, bert
from minibert.config import EncoderConfig, config_class_for, read_config_json
from minibert.errors import ConfigError
from minibert.hub import resolve_config_file
from minibert.pretrained import PreTrainedModel


class AutoConfig:
    """Reads ``config.json`` and returns the config class its ``model_type`` names."""

    def __init__(self) -> None:
        raise TypeError("AutoConfig is a dispatcher: use AutoConfig.from_pretrained(...)")

    @staticmethod
    def from_pretrained(
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **overrides: Any,
    ) -> EncoderConfig:
        path = resolve_config_file(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        values = read_config_json(path)
        try:
            return config_class_for(values, path).from_dict(values, **overrides)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error


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
        """A new, randomly initialised model of the class ``config.model_type`` names."""
        return cls.model_class(config)(config)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path | None,
        *,
        config: EncoderConfig | None = None,
        **kwargs: Any,
    ) -> PreTrainedModel:
        """Load with the class that ``model_type`` names; ``kwargs`` as in ``PreTrainedModel.from_pretrained``."""
        if config is None:
            if pretrained_model_name_or_path is None:
                raise ValueError(f"{cls.__name__}.from_pretrained(None) needs config= to pick the model class")
            where = {k: kwargs[k] for k in ("revision", "cache_dir") if k in kwargs}
            config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **where)
        return cls.model_class(config).from_pretrained(pretrained_model_name_or_path, config=config, **kwargs)


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
