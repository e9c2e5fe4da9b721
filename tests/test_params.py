"""Network parameters: fixed genesis blocks, subsidy schedule, distinct address prefixes."""

from __future__ import annotations

import pytest

from simplecoin.core.amounts import COIN
from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.params import MAIN, NETWORKS, REGTEST
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.validation import check_block


@pytest.mark.parametrize("params", [MAIN, REGTEST], ids=lambda p: p.name)
def test_genesis_is_the_constant_and_valid(params):
    genesis = params.genesis_block
    assert genesis.header.hash_hex() == params.genesis_hash_hex
    assert genesis.hash == params.genesis_hash
    assert check_proof_of_work(genesis.hash, genesis.header.bits, params.pow_limit) is None
    check_block(genesis, params)


def test_genesis_differs_per_network_and_is_built_from_constants_only():
    assert MAIN.genesis_hash != REGTEST.genesis_hash
    rebuilt = MAIN.replace(coinbase_maturity=MAIN.coinbase_maturity)  # a fresh object builds it again
    assert rebuilt.genesis_block.serialize() == MAIN.genesis_block.serialize()


@pytest.mark.parametrize("params", [MAIN, REGTEST], ids=lambda p: p.name)
def test_subsidy_halves_and_total_supply_stays_under_max_money(params):
    assert params.subsidy(0) == 50 * COIN
    assert params.subsidy(params.halving_interval - 1) == 50 * COIN
    assert params.subsidy(params.halving_interval) == 25 * COIN
    assert params.subsidy(64 * params.halving_interval) == 0
    total = sum(params.subsidy(h * params.halving_interval) * params.halving_interval for h in range(64))
    assert total <= params.max_money


def test_main_supply_is_bitcoins():
    total = sum(MAIN.subsidy(h * MAIN.halving_interval) * MAIN.halving_interval for h in range(64))
    assert total == 2_099_999_997_690_000  # Bitcoin's total supply in satoshis


def test_addresses_say_their_network():
    pkh = bytes(range(20))
    main_address = address_from_pubkey_hash(pkh, MAIN.address_version)
    regtest_address = address_from_pubkey_hash(pkh, REGTEST.address_version)
    assert main_address[0] == "S"
    assert regtest_address[0] == "r"
    assert pubkey_hash_from_address(main_address, MAIN.address_version) == pkh
    with pytest.raises(ValueError, match="another network"):
        pubkey_hash_from_address(main_address, REGTEST.address_version)
    # Not a Bitcoin address either: Bitcoin's P2PKH version is 0, P2SH 5, testnet 111 and 196.
    assert {MAIN.address_version, REGTEST.address_version}.isdisjoint({0, 5, 111, 196})


def test_mistyped_address_fails_its_checksum():
    address = address_from_pubkey_hash(bytes(range(20)), MAIN.address_version)
    typo = address[:10] + ("a" if address[10] != "a" else "b") + address[11:]
    with pytest.raises(ValueError, match="checksum"):
        pubkey_hash_from_address(typo, MAIN.address_version)


def test_networks_by_name():
    assert NETWORKS == {"main": MAIN, "regtest": REGTEST}
    assert MAIN.coinbase_maturity * MAIN.target_spacing <= 10 * 60  # a new miner spends within minutes
