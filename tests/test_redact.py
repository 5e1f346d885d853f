"""Masking the kit's secrets: URL passwords always, known secrets in every escaped form."""

from __future__ import annotations

import json
import logging
import sys

from loadkit.core.redact import Redactor, SecretFilter, mask_url_credentials, url_secrets

KEY = 'key-with"quote&amp<lt>-123456'


def test_url_passwords_are_masked_whatever_their_length() -> None:
    text = "GET http://user:pw@host:80/x and redis://:p@127.0.0.1/0 and http://plain/"
    assert mask_url_credentials(text) == (
        "GET http://user:***@host:80/x and redis://:***@127.0.0.1/0 and http://plain/"
    )


def test_url_secrets_are_the_raw_and_decoded_password() -> None:
    assert url_secrets("http://u:p%40ss-word@h/") == ["p%40ss-word", "p@ss-word"]
    assert url_secrets("http://u@h/") == [] and url_secrets(None) == []


def test_a_secret_is_masked_raw_and_as_json_html_csv_and_url_escape_it() -> None:
    redactor = Redactor([KEY])
    for form in (
        KEY,
        json.dumps(KEY),
        "key-with&quot;quote&amp;amp&lt;lt&gt;-123456",
        '"key-with""quote&amp<lt>-123456"',
        "key-with%22quote%26amp%3Clt%3E-123456",
    ):
        assert "123456" not in redactor.mask(f"before {form} after"), form  # fmt: skip


def test_short_secrets_are_masked_only_inside_urls() -> None:
    redactor = Redactor(["pass"])
    assert redactor.mask("password http://u:pass@h/") == "password http://u:***@h/"


def test_log_filter_masks_messages_and_tracebacks() -> None:
    record_filter = SecretFilter(Redactor([KEY]))
    try:
        raise ValueError(f"bad header {KEY}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (KEY,), None)
        record.exc_info = sys.exc_info()
    record_filter.filter(record)
    assert record.getMessage() == "sent ***"
    assert record.exc_text and KEY not in record.exc_text and "bad header ***" in record.exc_text


def test_errors_are_masked_where_locust_keeps_them_http_and_job_rows_alike() -> None:
    from locust.env import Environment

    from loadkit.plugin.locust_adapter import log_outside_total, mask_errors_at_source

    environment = Environment()
    runner = environment.create_local_runner()
    mask_errors_at_source(environment.stats, runner, Redactor([KEY]).mask)
    environment.stats.log_error("GET", "/x", f"HTTP 401 for key {KEY}")
    log_outside_total(environment, "JOB", "import", 5.0, 0, ValueError(f"job saw {KEY}"))
    environment.stats.log_error("GET", "/y", ConnectionError("refused"))
    runner.log_exception("local", f"boom {KEY}", f"Traceback ... {KEY}")
    kept = [e.to_name() for e in environment.stats.errors.values()]
    assert kept == ["GET /x: HTTP 401 for key ***", "JOB import: ValueError('job saw ***')",
                    "GET /y: ConnectionError('refused')"]  # fmt: skip
    assert environment.stats.total.num_failures == 2  # the JOB row stays out of the total
    (row,) = runner.exceptions.values()
    assert (row["msg"], row["traceback"]) == ("boom ***", "Traceback ... ***")
    runner.quit()
