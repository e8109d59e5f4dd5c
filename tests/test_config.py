"""The one config dataclass: defaults, then a YAML file, then flags; bad keys and values named."""
from __future__ import annotations

import glob
import os
from dataclasses import fields

import pytest
from click.testing import CliRunner

from charrnn.cli import main
from charrnn.config import Config, load_yaml, resolve
from charrnn.errors import ConfigError

from conftest import CONFIGS


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_are_valid():
    config = Config()
    config.validate()
    assert config.hidden_size == 128 and config.activation == "tanh" and config.optimizer == "adam"
    assert config.clip == 5.0 and config.val_fraction == 0.05 and config.dtype == "float32"
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))))
def test_bundled_configs_are_valid(path):
    config, data = resolve(path), load_yaml(path)
    assert data, "an empty config says nothing"
    for key, value in data.items():  # every key the file sets is the config's (YAML may give 2e-3 as a string)
        assert getattr(config, key) == (float(value) if isinstance(getattr(config, key), float) else value), key


def test_bundled_config_names():
    names = {os.path.basename(p) for p in glob.glob(os.path.join(CONFIGS, "*.yaml"))}
    assert {"default.yaml", "hello.yaml", "shakespeare.yaml"} <= names


def test_file_then_flags(tmp_path):
    path = write(tmp_path, "hidden_size: 32\nlr: 0.01\nactivation: relu\nmax_steps: 10\n")
    config = resolve(path, {"hidden_size": 8, "lr": None, "seed": 7})
    assert config.hidden_size == 8  # the flag beats the file
    assert config.lr == 0.01 and config.activation == "relu" and config.max_steps == 10  # the file
    assert config.seed == 7  # a flag the file does not set
    assert config.batch_size == Config().batch_size  # neither: the default


def test_empty_file_gives_defaults(tmp_path):
    assert resolve(write(tmp_path, "# nothing\n")) == Config()


def test_integral_float_is_an_int_and_int_is_a_float(tmp_path):
    config = resolve(write(tmp_path, "hidden_size: 16.0\nlr: 1\n"))
    assert config.hidden_size == 16 and isinstance(config.hidden_size, int)
    assert config.lr == 1.0 and isinstance(config.lr, float)


@pytest.mark.parametrize("text, key", [
    ("hiden_size: 8\n", "hiden_size"),
    ("hidden_size: 8\nlearning_rate: 0.1\n", "learning_rate"),
])
def test_unknown_keys_are_rejected_by_name(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key):
        resolve(write(tmp_path, text))


@pytest.mark.parametrize("text, key", [
    ("hidden_size: abc\n", "hidden_size"),
    ("hidden_size: 1.5\n", "hidden_size"),
    ("hidden_size: true\n", "hidden_size"),
    ("lr: fast\n", "lr"),
    ("lr: [0.1]\n", "lr"),
    ("activation: 3\n", "activation"),
    ("activation: softmax\n", "activation"),
    ("optimizer: lbfgs\n", "optimizer"),
    ("dtype: float16\n", "dtype"),
    ("hidden_size: null\n", "hidden_size"),
    ("batch_size: 0\n", "batch_size"),
    ("lr: -0.1\n", "lr"),
    ("clip: -1\n", "clip"),
    ("val_fraction: 1.0\n", "val_fraction"),
    ("max_steps: 0\n", "max_steps"),
])
def test_wrong_types_and_values_are_rejected_by_name(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        resolve(write(tmp_path, text))
    message = str(info.value)
    assert message.startswith(key + ":") or repr(key) in message
    assert "\n" not in message


@pytest.mark.parametrize("changes, key", [
    ({"hidden_size": "abc"}, "hidden_size"),
    ({"lr": "0.1"}, "lr"),
    ({"activation": None}, "activation"),
    ({"max_steps": 2.5}, "max_steps"),
])
def test_constructor_checks_types_too(changes, key):
    """Config(...) from Python names the key as the YAML path does, not a bare TypeError."""
    with pytest.raises(ConfigError, match=key):
        Config(**changes)


@pytest.mark.parametrize("text", ["hidden_size: [1, 2\n", "a: b: c\n", "\tlr: 1\n", "key: 'open\n"])
def test_bad_yaml_is_one_line(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert "\n" not in message and path in message and "YAML" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(write(tmp_path, "- 1\n- 2\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(str(tmp_path / "nope.yaml"))


def test_every_field_has_a_train_flag_with_help():
    help_text = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    for f in fields(Config):
        assert f.metadata["help"]
        assert "--" + f.name.replace("_", "-") in help_text, f.name


def test_cli_reports_config_errors_in_one_line(tmp_path, tiny_corpus):
    path = write(tmp_path, "hidden_size: 8\nbogus: 1\n")
    result = CliRunner().invoke(main, ["train", tiny_corpus, "--config", path, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "bogus" in result.stderr
    assert not (tmp_path / "o").exists()
