"""Text to tokens to models and back: tokenizer, datasets and packing, the model, training, decoding, evaluation."""
