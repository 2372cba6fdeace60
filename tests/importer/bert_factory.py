"""A tiny Hugging Face BERT classifier built from a config (nothing downloaded), for import tests."""

from __future__ import annotations

VOCAB = 1000


def build_bert(num_labels: int = 3, hidden: int = 64, layers: int = 2):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        num_labels=num_labels,
        max_position_embeddings=128,
    )
    return BertForSequenceClassification(config).eval()
