"""A tiny Hugging Face BertModel (random weights, built from a config: no download), for --arch in the tests."""
import transformers

CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
          "vocab_size": 100, "max_position_embeddings": 16}


class TinyBert(transformers.BertModel):
    def __init__(self) -> None:
        super().__init__(transformers.BertConfig(**CONFIG))
