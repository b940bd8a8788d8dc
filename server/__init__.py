"""ggserve's HTTP layer: thin OpenAI and Anthropic translators over the engine."""
