"""Asking a multimodal language model which body parts touch: prompts, image encoding, the
OpenAI-compatible client, the on-disk cache and the parser of its Markdown tables."""

# Defaults of the contacts command; every one can be overridden on its command line.
DEFAULT_MODEL = "gpt-4o"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
