"""``conveyor container`` picks its mode from the environment, in a fixed order."""

from __future__ import annotations

import pytest

from conveyor.errors import ConfigError
from conveyor.serving.platforms.launch import bundle_settings, choose_mode, is_loopback


def _never(_: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("env", "args", "mode"),
    [
        ({}, [], "registry"),
        ({"CONVEYOR_BUNDLE": "/models/b"}, [], "bundle"),
        ({}, ["serve"], "sagemaker"),
        ({"CONVEYOR_BUNDLE": "/b"}, ["serve"], "sagemaker"),
        ({"AZUREML_MODEL_DIR": "/var/azureml-app/m"}, [], "azureml"),
        ({"AZUREML_MODEL_DIR": "/m"}, ["serve"], "azureml"),
        ({"AIP_HTTP_PORT": "8080"}, [], "vertex"),
        ({"AIP_PREDICT_ROUTE": "/p", "AZUREML_MODEL_DIR": "/m"}, ["serve"], "vertex"),
        ({"CONVEYOR_PLATFORM": "azureml", "AIP_HTTP_PORT": "8080"}, [], "azureml"),
        ({"CONVEYOR_PLATFORM": "Registry", "CONVEYOR_BUNDLE": "/b"}, ["serve"], "registry"),
        ({"AIP_HTTP_PORT": ""}, ["other"], "registry"),
    ],
)
def test_the_mode_follows_the_documented_order(
    env: dict[str, str], args: list[str], mode: str
) -> None:
    choice = choose_mode(env, args, exists=_never)
    assert choice.mode == mode
    assert choice.reason


def test_an_unpacked_sagemaker_model_folder_means_sagemaker() -> None:
    choice = choose_mode({"CONVEYOR_BUNDLE": "/b"}, [], exists=lambda p: p == "/opt/ml/model")
    assert choice.mode == "sagemaker" and "/opt/ml/model" in choice.reason


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_PLATFORM"):
        choose_mode({"CONVEYOR_PLATFORM": "heroku"}, [])


def test_platform_settings_take_the_platforms_port_and_model_folder() -> None:
    vertex = bundle_settings(
        bundle=None,
        platform="vertex",
        flags={"port": None},
        env={"AIP_HTTP_PORT": "9000", "AIP_STORAGE_URI": "gs://b/m"},
    )
    assert (vertex.bundle, vertex.port, vertex.host) == ("gs://b/m", 9000, "0.0.0.0")
    sagemaker = bundle_settings(bundle=None, platform="sagemaker", flags={"port": 7000}, env={})
    assert (sagemaker.bundle, sagemaker.port) == ("/opt/ml/model", 7000)
    with pytest.raises(ConfigError, match="AZUREML_MODEL_DIR"):
        bundle_settings(bundle=None, platform="azureml", flags={}, env={})
    with pytest.raises(ConfigError, match="--bundle"):
        bundle_settings(bundle=None, platform=None, flags={}, env={})
    with pytest.raises(ConfigError, match="choose"):
        bundle_settings(bundle="/b", platform="heroku", flags={}, env={})


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
