"""``AutoConfig`` and ``AutoModel*``: the class is chosen by ``config.json``'s ``model_type``, as in transformers.

``ARCHITECTURES`` lists the model classes of each ``model_type``; an ``AutoModelFor<Task>`` picks
the one whose name ends in ``For<Task>``, as transformers names them. A new architecture adds
one entry here. (``AutoTokenizer`` lives with the tokenizers.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from minibert import albert, bert, deberta_v2, distilbert, electra, gte, modernbert, mpnet, nomic_bert, xlm_roberta
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


# model_type -> its base model and head classes.
ARCHITECTURES: dict[str, tuple[type[PreTrainedModel], ...]] = {
    "bert": (
        bert.BertModel,
        bert.BertForMaskedLM,
        bert.BertForPreTraining,
        bert.BertForNextSentencePrediction,
        bert.BertForSequenceClassification,
        bert.BertForTokenClassification,
        bert.BertForQuestionAnswering,
        bert.BertForMultipleChoice,
    ),
    "roberta": (
        bert.RobertaModel,
        bert.RobertaForMaskedLM,
        bert.RobertaForSequenceClassification,
        bert.RobertaForTokenClassification,
        bert.RobertaForQuestionAnswering,
        bert.RobertaForMultipleChoice,
    ),
    "albert": (
        albert.AlbertModel,
        albert.AlbertForMaskedLM,
        albert.AlbertForPreTraining,
        albert.AlbertForSequenceClassification,
        albert.AlbertForTokenClassification,
        albert.AlbertForQuestionAnswering,
        albert.AlbertForMultipleChoice,
    ),
    "xlm-roberta": (
        xlm_roberta.XLMRobertaModel,
        xlm_roberta.XLMRobertaForMaskedLM,
        xlm_roberta.XLMRobertaForSequenceClassification,
        xlm_roberta.XLMRobertaForTokenClassification,
        xlm_roberta.XLMRobertaForQuestionAnswering,
        xlm_roberta.XLMRobertaForMultipleChoice,
    ),
    "camembert": (
        xlm_roberta.CamembertModel,
        xlm_roberta.CamembertForMaskedLM,
        xlm_roberta.CamembertForSequenceClassification,
        xlm_roberta.CamembertForTokenClassification,
        xlm_roberta.CamembertForQuestionAnswering,
        xlm_roberta.CamembertForMultipleChoice,
    ),
    "distilbert": (
        distilbert.DistilBertModel,
        distilbert.DistilBertForMaskedLM,
        distilbert.DistilBertForSequenceClassification,
        distilbert.DistilBertForTokenClassification,
        distilbert.DistilBertForQuestionAnswering,
        distilbert.DistilBertForMultipleChoice,
    ),
    "electra": (
        electra.ElectraModel,
        electra.ElectraForMaskedLM,
        electra.ElectraForPreTraining,
        electra.ElectraForSequenceClassification,
        electra.ElectraForTokenClassification,
        electra.ElectraForQuestionAnswering,
        electra.ElectraForMultipleChoice,
    ),
    "mpnet": (
        mpnet.MPNetModel,
        mpnet.MPNetForMaskedLM,
        mpnet.MPNetForSequenceClassification,
        mpnet.MPNetForTokenClassification,
        mpnet.MPNetForQuestionAnswering,
        mpnet.MPNetForMultipleChoice,
    ),
    "deberta-v2": (
        deberta_v2.DebertaV2Model,
        deberta_v2.DebertaV2ForMaskedLM,
        deberta_v2.DebertaV2ForSequenceClassification,
        deberta_v2.DebertaV2ForTokenClassification,
        deberta_v2.DebertaV2ForQuestionAnswering,
        deberta_v2.DebertaV2ForMultipleChoice,
    ),
    "nomic_bert": (
        nomic_bert.NomicBertModel,
        nomic_bert.NomicBertForMaskedLM,
        nomic_bert.NomicBertForSequenceClassification,
        nomic_bert.NomicBertForTokenClassification,
    ),
    "modernbert": (
        modernbert.ModernBertModel,
        modernbert.ModernBertForMaskedLM,
        modernbert.ModernBertForSequenceClassification,
        modernbert.ModernBertForTokenClassification,
        modernbert.ModernBertForQuestionAnswering,
        modernbert.ModernBertForMultipleChoice,
    ),
    "gte": (gte.GteModel, gte.GteForMaskedLM, gte.GteForSequenceClassification, gte.GteForTokenClassification),
}


class _AutoModel:
    """Dispatches ``from_pretrained`` / ``from_config`` to the class of ``model_type`` for ``task``."""

    task: ClassVar[str] = "Model"  # the end of the class names: "Model", "ForMaskedLM", ...
    fallback: ClassVar[str | None] = None  # the task to use where an architecture has no class for ``task``

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is a dispatcher: use .from_pretrained(...) or .from_config(...)")

    @classmethod
    def model_class(cls, config: EncoderConfig) -> type[PreTrainedModel]:
        classes = ARCHITECTURES.get(config.model_type, ())
        for task in (cls.task, cls.fallback):
            match = next((c for c in classes if task and c.__name__.endswith(task)), None)
            if match is not None:
                return match
        known = [
            model_type
            for model_type in ARCHITECTURES
            if any(c.__name__.endswith(cls.task) for c in ARCHITECTURES[model_type])
        ]
        raise ConfigError(
            f"{cls.__name__} has no class for model_type {config.model_type!r}; it knows {', '.join(known)}"
        )

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
    task = "Model"


class AutoModelForMaskedLM(_AutoModel):
    task = "ForMaskedLM"


class AutoModelForPreTraining(_AutoModel):
    # RoBERTa and its kin were pre-trained with masked LM alone: their pre-training model is the MLM one.
    task, fallback = "ForPreTraining", "ForMaskedLM"


class AutoModelForNextSentencePrediction(_AutoModel):
    task = "ForNextSentencePrediction"


class AutoModelForSequenceClassification(_AutoModel):
    task = "ForSequenceClassification"


class AutoModelForTokenClassification(_AutoModel):
    task = "ForTokenClassification"


class AutoModelForQuestionAnswering(_AutoModel):
    task = "ForQuestionAnswering"


class AutoModelForMultipleChoice(_AutoModel):
    task = "ForMultipleChoice"
