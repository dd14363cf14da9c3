"""Text to tokens to models and back: tokenizer, datasets and packing, the model, training, decoding, evaluation."""
import pretrain.model  # noqa: E402,F401  registers our canon model with transformers' Auto classes
