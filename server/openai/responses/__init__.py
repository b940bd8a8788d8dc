"""The OpenAI Responses API: request models, input items -> engine messages, tools, the store,
and the renderers of output items and typed stream events."""
