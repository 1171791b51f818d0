"""Reload failures are logged without the credentials a tracking URI can carry."""

from serving.model_holder import redact


def test_credentials_in_urls_are_masked() -> None:
    message = redact(
        ConnectionError("no postgresql://bob:s3cret@db:5432/mlflow, nor http://u:p@h/x; v=2")
    )
    assert message == "no postgresql://***@db:5432/mlflow, nor http://***@h/x; v=2"
    assert "s3cret" not in message
