"""Anthropic Messages: request models, translation to the engine, and routes."""
