"""XLM-RoBERTa and CamemBERT: RoBERTa's model under other names.

Both are RoBERTa trained on other data (100 languages; French) with a SentencePiece
vocabulary: the modules, the keys (``roberta.`` prefix included) and the numerics are
RoBERTa's. What differs is only the ``model_type`` their configs carry and the class names
transformers gives them, so each class here is RoBERTa's with its own config class.
Mirrors transformers/models/xlm_roberta/modeling_xlm_roberta.py and camembert/modeling_camembert.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minibert.bert import (
    EncoderModel,
    RobertaForMaskedLM,
    RobertaForMultipleChoice,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    RobertaPreTrainedModel,
)
from minibert.config import EncoderConfig, RobertaConfig


@dataclass(frozen=True)
class XLMRobertaConfig(RobertaConfig):
    """Mirrors ``transformers.XLMRobertaConfig``: RoBERTa's fields and defaults but the vocabulary size."""

    model_type: ClassVar[str] = "xlm-roberta"

    vocab_size: int = 30522  # transformers' default; real checkpoints set theirs (250002 for xlm-roberta-base)


@dataclass(frozen=True)
class CamembertConfig(RobertaConfig):
    """Mirrors ``transformers.CamembertConfig``: RoBERTa's fields and defaults but the vocabulary size."""

    model_type: ClassVar[str] = "camembert"

    vocab_size: int = 30522  # transformers' default; camembert-base sets 32005


class XLMRobertaPreTrainedModel(RobertaPreTrainedModel):
    config_class: ClassVar[type[EncoderConfig]] = XLMRobertaConfig

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return XLMRobertaModel


class XLMRobertaModel(XLMRobertaPreTrainedModel, RobertaModel):
    """``transformers.XLMRobertaModel``: RobertaModel."""


class XLMRobertaForMaskedLM(XLMRobertaPreTrainedModel, RobertaForMaskedLM):
    """``transformers.XLMRobertaForMaskedLM``: RobertaForMaskedLM."""


class XLMRobertaForSequenceClassification(XLMRobertaPreTrainedModel, RobertaForSequenceClassification):
    """``transformers.XLMRobertaForSequenceClassification``: RobertaForSequenceClassification."""


class XLMRobertaForTokenClassification(XLMRobertaPreTrainedModel, RobertaForTokenClassification):
    """``transformers.XLMRobertaForTokenClassification``: RobertaForTokenClassification."""


class XLMRobertaForQuestionAnswering(XLMRobertaPreTrainedModel, RobertaForQuestionAnswering):
    """``transformers.XLMRobertaForQuestionAnswering``: RobertaForQuestionAnswering."""


class XLMRobertaForMultipleChoice(XLMRobertaPreTrainedModel, RobertaForMultipleChoice):
    """``transformers.XLMRobertaForMultipleChoice``: RobertaForMultipleChoice."""


class CamembertPreTrainedModel(RobertaPreTrainedModel):
    config_class: ClassVar[type[EncoderConfig]] = CamembertConfig

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return CamembertModel


class CamembertModel(CamembertPreTrainedModel, RobertaModel):
    """``transformers.CamembertModel``: RobertaModel."""


class CamembertForMaskedLM(CamembertPreTrainedModel, RobertaForMaskedLM):
    """``transformers.CamembertForMaskedLM``: RobertaForMaskedLM."""


class CamembertForSequenceClassification(CamembertPreTrainedModel, RobertaForSequenceClassification):
    """``transformers.CamembertForSequenceClassification``: RobertaForSequenceClassification."""


class CamembertForTokenClassification(CamembertPreTrainedModel, RobertaForTokenClassification):
    """``transformers.CamembertForTokenClassification``: RobertaForTokenClassification."""


class CamembertForQuestionAnswering(CamembertPreTrainedModel, RobertaForQuestionAnswering):
    """``transformers.CamembertForQuestionAnswering``: RobertaForQuestionAnswering."""


class CamembertForMultipleChoice(CamembertPreTrainedModel, RobertaForMultipleChoice):
    """``transformers.CamembertForMultipleChoice``: RobertaForMultipleChoice."""
