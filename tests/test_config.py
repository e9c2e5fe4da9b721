"""Configuration: file values, flags over them, and one clear line for every bad value."""

from __future__ import annotations

import socket

import pytest

from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.node.config import ConfigError, build_config, check_environment, read_config_file
from tests.framework.nodes import REPO


def test_the_shipped_config_file_is_valid_and_gives_the_defaults():
    config = build_config(read_config_file(REPO / "config.yaml"), {})
    assert config.params is MAIN
    assert (config.host, config.port, config.mine, config.peers) == ("127.0.0.1", 5000, True, ())
    assert config.data_dir.name == "main"
    assert config.wallet == config.data_dir / "wallet.json"
    assert config.mining_pause == 0


def test_a_clock_offset_is_taken_from_the_file_or_a_flag():
    assert build_config({}, {}).clock_offset == 0
    assert build_config({"clock_offset": -300}, {}).clock_offset == -300.0
    assert build_config({"clock_offset": -300}, {"clock_offset": 12.5}).clock_offset == 12.5


def test_regtest_asert_scales_mains_rule_to_a_short_spacing():
    config = build_config({"network": "regtest", "regtest_asert": 2}, {"max_hashrate": 5000})
    params = config.params
    assert params.genesis_hash == REGTEST.genesis_hash  # the same regtest chain, another difficulty rule
    assert params.target_spacing == 2
    assert not params.uses_asert(MAIN.asert_activation_height - 1)
    assert params.uses_asert(MAIN.asert_activation_height)
    ratio = MAIN.target_spacing // 2
    assert params.asert_half_life == MAIN.asert_half_life // ratio
    assert params.future_block_time_limit(100) == MAIN.asert_max_future_block_time // ratio
    assert config.mining_pause == 0  # no fixed easy target: no pause needed
    assert config.max_hashrate == 5000.0


def test_flags_override_the_file():
    config = build_config({"network": "main", "port": 6000}, {"network": "regtest", "port": 7000})
    assert config.params is REGTEST
    assert config.port == 7000
    assert config.mining_pause == 1.0  # regtest's default pause


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"port": "abc"}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"network": "testnet"}, "network"),
        ({"peers": ["ftp://x"]}, "peers"),
        ({"peers": "http://x"}, "peers"),
        ({"workers": 0}, "workers"),
        ({"mining_pause": -1}, "mining_pause"),
        ({"log_level": "loud"}, "log_level"),
        ({"clock_offset": "soon"}, "clock_offset"),
        ({"clock_offset": 10**9}, "clock_offset"),
        ({"max_hashrate": 0}, "max_hashrate"),
        ({"regtest_asert": 2}, "regtest_asert"),  # main: the rule is main's own already
        ({"network": "regtest", "regtest_asert": 0}, "regtest_asert"),
        ({"network": "regtest", "regtest_asert": 1.5}, "regtest_asert"),
        ({"address": "garbage"}, "address"),
        ({"network": "regtest", "address": address_from_pubkey_hash(bytes(20), MAIN.address_version)}, "address"),
    ],
)
def test_bad_values_name_the_key(values, names):
    with pytest.raises(ConfigError) as err:
        build_config(values, {})
    message = str(err.value)
    assert names in message
    assert "\n" not in message


def test_unknown_key_and_bad_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("network: main\nprot: 5000\n")
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        read_config_file(path)
    path.write_text("network: [main\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")


def test_port_in_use_and_unusable_data_dir(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port}"):
            check_environment(build_config({"port": port, "data_dir": str(tmp_path / "d")}, {}))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="data_dir"):
        check_environment(build_config({"data_dir": str(blocker / "sub"), "port": 1}, {}))


def test_listening_everywhere_advertises_the_machine_name():
    config = build_config({"host": "0.0.0.0", "port": 5000}, {})
    assert config.public_url == f"http://{socket.gethostname()}:5000"
    assert build_config({"host": "0.0.0.0", "public_url": "http://me.example:5000/"}, {}).public_url == (
        "http://me.example:5000"
    )
