"""Settings read secrets from a secrets folder (SECRETS_DIR) as SecretStr, and put passwords into URLs."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from shared.adapters import make_blob_store
from shared.auth import generate_key_pair, load_keys
from shared.settings import SECRETS_DIR_ENV, Settings

SECRET_FIELDS = (
    "s3_secret_key",
    "smtp_password",
    "auth_private_key",
    "database_password",
    "rabbitmq_password",
)


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    folder = tmp_path / "secrets"
    folder.mkdir()
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    for name in (*SECRET_FIELDS, "database_url", "rabbitmq_url", "s3_access_key"):
        monkeypatch.delenv(name.upper(), raising=False)
    return folder


def test_secret_fields_are_secret_strings_that_never_show_in_repr():
    for name in SECRET_FIELDS:
        assert "SecretStr" in str(Settings.model_fields[name].annotation), name
    settings = Settings(s3_secret_key="s3-very-secret", smtp_password="smtp-very-secret")
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


def test_files_in_the_secrets_folder_give_field_values(secrets_dir):
    private, public = generate_key_pair()
    (secrets_dir / "s3_secret_key").write_text("from-a-file\n")
    (secrets_dir / "auth_private_key").write_text(private)
    (secrets_dir / "auth_public_key").write_text(public)
    (secrets_dir / "unrelated_file").write_text("ignored")
    settings = Settings()
    assert settings.s3_secret_key.get_secret_value() == "from-a-file"
    keys = load_keys(settings)
    assert keys.private_key is not None
    assert make_blob_store(Settings(blob_backend="s3"))._client is not None  # builds with the file's key


def test_an_environment_variable_wins_over_a_file(secrets_dir, monkeypatch):
    (secrets_dir / "s3_secret_key").write_text("from-a-file")
    monkeypatch.setenv("S3_SECRET_KEY", "from-the-environment")
    assert Settings().s3_secret_key.get_secret_value() == "from-the-environment"


def test_a_missing_secrets_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="SECRETS_DIR"):
        Settings()


def test_database_password_goes_into_each_services_url(secrets_dir, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://intake@postgres:5432/campaign")
    (secrets_dir / "database_password").write_text("p@ss/word:1")
    url = make_url(Settings().database_url_for("intake"))
    assert (url.username, url.password, url.host, url.database) == (
        "intake",
        "p@ss/word:1",
        "postgres",
        "campaign",
    )
    assert (
        Settings(database_password=None).database_url_for("x")
        == "postgresql+psycopg://intake@postgres:5432/campaign"
    )


def test_rabbitmq_password_goes_into_the_broker_url(secrets_dir, monkeypatch):
    import pika

    monkeypatch.setenv("RABBITMQ_URL", "amqp://campaign@rabbitmq:5672/campaign")
    (secrets_dir / "rabbitmq_password").write_text("r@bbit/pw")
    params = pika.URLParameters(Settings().broker_url())
    assert (params.credentials.username, params.credentials.password) == ("campaign", "r@bbit/pw")
    assert (params.host, params.port, params.virtual_host) == ("rabbitmq", 5672, "campaign")
    assert Settings(rabbitmq_password=None).broker_url() == "amqp://campaign@rabbitmq:5672/campaign"
