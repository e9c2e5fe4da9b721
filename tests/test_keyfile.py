"""The wallet file: 0600, never overwritten, several keys, clear errors."""

from __future__ import annotations

import json

import pytest

from simplecoin.core.keys import pubkey_hash_from_address
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.wallet import hd
from simplecoin.wallet.keyfile import PassphraseNeeded, WalletFile, WalletFileError, WrongPassphrase


def test_created_private_and_readable_back(tmp_path):
    path = tmp_path / "wallet.json"
    wallet = WalletFile.create(path, REGTEST, label="rewards")
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = WalletFile.load(path, REGTEST)
    assert [k.address for k in loaded.keys] == [wallet.keys[0].address]
    assert loaded.keys[0].key.pubkey_hash == pubkey_hash_from_address(wallet.keys[0].address, REGTEST.address_version)
    assert loaded.keys[0].label == "rewards"


def test_never_overwritten(tmp_path):
    path = tmp_path / "wallet.json"
    first = WalletFile.create(path, REGTEST)
    with pytest.raises(WalletFileError, match="already exists"):
        WalletFile.create(path, REGTEST)
    assert WalletFile.load(path, REGTEST).keys[0].address == first.keys[0].address


def test_holds_several_addresses_and_stays_private(tmp_path):
    path = tmp_path / "wallet.json"
    wallet = WalletFile.create(path, REGTEST).add_key("savings").add_key("shop")
    loaded = WalletFile.load(path, REGTEST)
    assert [k.label for k in loaded.keys] == ["", "savings", "shop"]
    assert len({k.address for k in loaded.keys}) == 3
    assert [k.address for k in loaded.keys] == [k.address for k in wallet.keys]
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "wallet.json.new").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "not a SimpleCoin wallet"),
        (
            '{"format": "simplecoin-wallet", "version": 1, "network": "regtest", "keys": [{"secret": "zz"}]}',
            "malformed",
        ),
        (
            '{"format": "simplecoin-wallet", "version": 1, "network": "regtest", "keys": [{"secret": "00"}]}',
            "malformed",
        ),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "wallet.json"
    path.write_text(content)
    with pytest.raises(WalletFileError, match=message):
        WalletFile.load(path, REGTEST)


def test_other_network_and_missing_file(tmp_path):
    path = tmp_path / "wallet.json"
    WalletFile.create(path, REGTEST)
    with pytest.raises(WalletFileError, match="network 'regtest'"):
        WalletFile.load(path, MAIN)
    with pytest.raises(WalletFileError, match="cannot read"):
        WalletFile.load(tmp_path / "missing.json", REGTEST)
    assert json.loads(path.read_text())["network"] == "regtest"


def test_encrypted_file_needs_the_right_passphrase(tmp_path):
    path = tmp_path / "wallet.json"
    wallet = WalletFile.create(path, REGTEST, passphrase="correct horse").add_key("second")
    text = path.read_text()
    assert all(k.key.secret.hex() not in text for k in wallet.keys)
    assert WalletFile.is_encrypted(path, REGTEST)
    assert [a for a, _ in WalletFile.addresses(path, REGTEST)] == [k.address for k in wallet.keys]
    with pytest.raises(PassphraseNeeded):
        WalletFile.load(path, REGTEST)
    with pytest.raises(WalletFileError, match="wrong passphrase"):
        WalletFile.load(path, REGTEST, passphrase="wrong horse")
    opened = WalletFile.load(path, REGTEST, passphrase="correct horse")
    assert [k.key.secret for k in opened.keys] == [k.key.secret for k in wallet.keys]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_sealed_secret_moved_to_another_address_does_not_open(tmp_path):
    path = tmp_path / "wallet.json"
    WalletFile.create(path, REGTEST, passphrase="pw").add_key()
    data = json.loads(path.read_text())
    data["keys"][0]["sealed_secret"], data["keys"][1]["sealed_secret"] = (
        data["keys"][1]["sealed_secret"],
        data["keys"][0]["sealed_secret"],
    )
    path.write_text(json.dumps(data))
    with pytest.raises(WalletFileError, match="wrong passphrase"):
        WalletFile.load(path, REGTEST, passphrase="pw")


def test_a_wrong_passphrase_is_its_own_error(tmp_path):
    """wallet.py forgets a typed passphrase that is wrong (and asks again) only on this error."""
    path = tmp_path / "wallet.json"
    WalletFile.create_hd(path, REGTEST, hd.new_phrase(), passphrase="pw")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        WalletFile.load(path, REGTEST, passphrase="not it")


@pytest.mark.parametrize("kind", ["loose keys", "recovery words"])
def test_an_existing_file_is_encrypted_in_place_with_the_same_keys(tmp_path, kind):
    path = tmp_path / "wallet.json"
    if kind == "loose keys":
        plain = WalletFile.create(path, REGTEST, label="mining rewards").add_key()
    else:
        plain = WalletFile.create_hd(path, REGTEST, hd.new_phrase(), label="mining rewards").add_key()
    plain.encrypted("correct horse")
    text = path.read_text()
    assert WalletFile.is_encrypted(path, REGTEST)
    assert all(k.key.secret.hex() not in text for k in plain.keys)
    if plain.seed is not None:
        assert plain.seed.hex() not in text
    opened = WalletFile.load(path, REGTEST, passphrase="correct horse")
    assert [(k.address, k.label, k.path, k.key.secret) for k in opened.keys] == [
        (k.address, k.label, k.path, k.key.secret) for k in plain.keys
    ]
    assert opened.seed == plain.seed
    assert path.stat().st_mode & 0o777 == 0o600
    assert opened.add_key().keys[-1].address in {a for a, _ in WalletFile.addresses(path, REGTEST)}
    with pytest.raises(WalletFileError, match="already encrypted"):
        plain.encrypted("another")
