"""The config spec: every problem reported at once, unknown keys warned, the example in sync."""

from __future__ import annotations

import os
from datetime import time, timedelta
from pathlib import Path

import pytest

from agent.config import SECTION_CLASSES, load_config, parse_config_text
from agent.configspec import SPEC, render_example
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = """
[account]
email = "alice@example.org"
[imap]
host = "imap.example.org"
"""


def test_example_file_is_generated_from_the_spec() -> None:
    text = (ROOT / "config.toml.example").read_text()
    assert text == render_example(), "run: python -m agent.configspec > config.toml.example"


def test_example_file_loads_cleanly_and_names_every_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text((ROOT / "config.toml.example").read_text())
    path.chmod(0o600)
    config = load_config(path)
    assert config.warnings == ()
    text = path.read_text()
    for key in SPEC:
        assert f"# {key.name}:" in text, key.label


def test_dataclasses_and_spec_have_the_same_keys() -> None:
    for section, cls in SECTION_CLASSES.items():
        spec_keys = {k.name for k in SPEC if k.section == section}
        assert set(cls.__dataclass_fields__) == spec_keys, section


def test_minimal_config_gets_defaults() -> None:
    config = parse_config_text(MINIMAL)
    assert config.imap.port == 993
    assert config.imap.security == "ssl"
    assert config.imap.username == "alice@example.org"
    assert config.policy.cadence_days == 90
    assert config.policy.lead_days == 14
    assert config.policy.daily_picks == 3
    assert config.policy.two_way is True
    assert config.digest.time == time(7, 30)
    assert config.daemon.scan_interval == timedelta(minutes=30)
    assert config.smtp is None
    assert config.drafts.snooze_days == 30


def test_three_mistakes_give_one_error_naming_all_three() -> None:
    text = """
[account]
email = "not-an-address"
[imap]
host = "imap.example.org"
port = "993"
[policy]
cadence_days = 0
"""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text)
    problems = info.value.problems
    assert len(problems) == 3
    message = str(info.value)
    assert "3 configuration problems" in message
    assert "[account] email" in message
    assert "[imap] port" in message
    assert "[policy] cadence_days" in message


def test_unknown_keys_warn_with_a_suggestion() -> None:
    config = parse_config_text(MINIMAL + "[policy]\ncadense_days = 30\n[digets]\ntime='08:00'\n")
    assert any("[policy] cadense_days" in w and "cadence_days" in w for w in config.warnings)
    assert any("[digets]" in w and "digest" in w for w in config.warnings)


def test_missing_required_keys_and_sections() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("")
    text = str(info.value)
    assert "[account] email is missing" in text
    assert "[imap] host is missing" in text


def test_plaintext_refused_off_loopback() -> None:
    with pytest.raises(ConfigError, match="plaintext"):
        parse_config_text(MINIMAL + 'security = "none"\n')
    config = parse_config_text(MINIMAL.replace("imap.example.org", "127.0.0.1")
                               + 'security = "none"\n')
    assert config.imap.port == 143


def test_smtp_delivery_needs_smtp_section() -> None:
    with pytest.raises(ConfigError, match=r"\[digest\] delivery"):
        parse_config_text(MINIMAL + '[digest]\ndelivery = "smtp"\n')
    config = parse_config_text(MINIMAL + '[digest]\ndelivery = "smtp"\n[smtp]\n'
                               'host = "smtp.example.org"\nsecurity = "starttls"\n')
    assert config.smtp is not None
    assert config.smtp.port == 587
    assert config.smtp.username is None


def test_rules_are_validated_together() -> None:
    text = MINIMAL + """
[[policy.rule]]
match = "*@bigcorp.example"
cadence_days = 45
[[policy.rule]]
tag = "family"
ignore = "yes"
[[policy.rule]]
match = "nonsense"
cadence_days = 30
"""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text)
    message = str(info.value)
    assert "#2: ignore" in message
    assert "#3: match" in message
    ok = parse_config_text(MINIMAL + '[[policy.rule]]\nmatch = "*@BigCorp.example"\n'
                           'cadence_days = 45\n')
    assert ok.policy.rule[0].match == "*@bigcorp.example"


def test_bad_toml_and_bad_timezone() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config_text("[account\n")
    with pytest.raises(ConfigError, match="IANA"):
        parse_config_text(MINIMAL + '[digest]\ntimezone = "Mars/Olympus"\n')


def test_missing_file_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="followup init"):
        load_config(tmp_path / "nope.toml")


def test_world_readable_config_warns(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    os.chmod(path, 0o644)
    assert any("chmod 600" in w for w in load_config(path).warnings)
    os.chmod(path, 0o600)
    assert load_config(path).warnings == ()
