"""Asking a multimodal language model which body parts touch: prompts, image encoding, the
OpenAI-compatible client, the on-disk cache and the parser of its Markdown tables."""
