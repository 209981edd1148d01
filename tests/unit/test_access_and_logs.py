from __future__ import annotations

import json
import logging
import time
import uuid

from shared.intake.access import TokenKeys, access_token_valid, issue_access_token
from shared.intake.api_keys import hash_api_key
from shared.platform.log_setup import JsonFormatter, mask_personal_data


def test_access_token_opens_only_its_own_application() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    keys = TokenKeys("secret")
    token = issue_access_token(first, "secret", int(time.time()) + 3600)
    assert access_token_valid(first, token, keys)
    assert not access_token_valid(second, token, keys)
    assert not access_token_valid(first, token, TokenKeys("another secret"))
    assert not access_token_valid(first, "", keys)
    assert not access_token_valid(first, None, keys)
    assert len(token) >= 40


def test_api_keys_are_stored_as_hashes() -> None:
    digest = hash_api_key("osk_example")
    assert digest != "osk_example" and len(digest) == 64
    assert hash_api_key("osk_example") == digest


def test_personal_data_is_masked_in_log_lines() -> None:
    text = "vin XW7BF4FK60S123456 plate А123ВС777 latin A123BC77 passport 4510 123456 licence 7701123456 sts 77ХХ123456"
    masked = mask_personal_data(text)
    for secret in ("XW7BF4FK60S123456", "А123ВС777", "A123BC77", "4510 123456", "7701123456", "77ХХ123456"):
        assert secret not in masked, secret


def test_json_log_lines_hash_personal_extra_fields() -> None:
    # A field named like personal data is replaced by a keyed hash (equal values, equal hashes).
    record = logging.makeLogRecord({"msg": "accepted", "levelname": "INFO", "vin": "XW7BF4FK60S123456"})
    formatter = JsonFormatter("test")
    line = formatter.format(record)
    entry = json.loads(line)
    assert "XW7BF4FK60S123456" not in line
    assert entry["msg"] == "accepted" and entry["vin"].startswith("hmac:")
    assert formatter.format(record) == line
