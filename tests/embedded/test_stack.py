"""The secrets the embedded stack generates: long enough for their algorithms, kept per Airflow home,
and a short one left by an older version replaced (PyJWT warns below HS512's 64 bytes)."""

from __future__ import annotations

import base64
import stat
import warnings

import jwt
import pytest

from adclick_ops.embedded.stack import HMAC_KEY_BYTES, airflow_env

# the secret files of the Airflow home, by the setting they fill in
KEYS = dict([("AIRFLOW__API_AUTH__JWT_SECRET", ".jwt_secret"), ("AIRFLOW__API__SECRET_KEY", ".api_secret_key")])


@pytest.fixture
def clean_env(monkeypatch):
    for key in [*KEYS, "AIRFLOW__CORE__FERNET_KEY"]:
        monkeypatch.delenv(key, raising=False)


def test_generated_secrets_fit_hs512_and_are_kept(tmp_path, clean_env):
    env = airflow_env(tmp_path / "home")
    for key, name in KEYS.items():
        secret = env[key]
        assert len(secret.encode()) >= HMAC_KEY_BYTES
        assert (tmp_path / "home" / name).read_text() == secret
        assert stat.S_IMODE((tmp_path / "home" / name).stat().st_mode) == 0o600
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # InsecureKeyLengthWarning would raise here
            token = jwt.encode({"sub": "x"}, secret, algorithm="HS512")
            assert jwt.decode(token, secret, algorithms=["HS512"])["sub"] == "x"
    assert len(base64.urlsafe_b64decode(env["AIRFLOW__CORE__FERNET_KEY"])) == 32
    assert airflow_env(tmp_path / "home") == env  # the same home keeps its secrets


@pytest.mark.parametrize("length", [0, 16, 43, HMAC_KEY_BYTES - 1])
def test_a_short_secret_of_an_older_version_is_replaced(tmp_path, clean_env, length):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".jwt_secret").write_text("s" * length)
    fernet = base64.urlsafe_b64encode(b"k" * 32).decode()
    (home / ".fernet_key").write_text(fernet)
    env = airflow_env(home)
    secret = env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(secret) >= HMAC_KEY_BYTES and secret != "s" * length
    assert (home / ".jwt_secret").read_text() == secret
    assert env["AIRFLOW__CORE__FERNET_KEY"] == fernet  # a valid key stays: the database's secrets are encrypted with it
