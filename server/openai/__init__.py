"""OpenAI Chat Completions: request models, translation to the engine, and routes."""
