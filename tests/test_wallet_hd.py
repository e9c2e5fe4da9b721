"""BIP39 (recovery words) and BIP32 (key derivation) against the official test vectors.

BIP39's vectors (English, extra passphrase "TREZOR") are in bip-0039.mediawiki / Trezor's vectors.json; BIP32's
are "Test vector 1" and "Test vector 2" of bip-0032.mediawiki. The wallet uses an empty extra passphrase, but
the words -> seed function is the same.
"""

# ruff: noqa: E501  (the official vectors are kept whole, one per line, to compare with the BIPs)
from __future__ import annotations

import pytest
from mnemonic import Mnemonic

from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from simplecoin.wallet import hd
from simplecoin.wallet.hd import (
    ACCOUNT_PATH,
    CHANGE,
    COIN_TYPE,
    GAP_LIMIT,
    RECEIVE,
    PhraseError,
    account_key,
    derive_key,
    keys_in_use,
    new_phrase,
    seed_from_phrase,
)

BIP39 = [  # (entropy, words, seed with passphrase "TREZOR", master xprv)
    (
        "00000000000000000000000000000000",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
        "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF",
    ),
    (
        "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
        None,
    ),
    (
        "80808080808080808080808080808080",
        "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
        "d71de856f81a8acc65e6fc851a38d4d7ec216fd0796d0a6827a3ad6ed5511a30fa280f12eb2e47ed2ac03b5c462a0358d18d69fe4f985ec81778c1b370b652a8",
        None,
    ),
    (
        "ffffffffffffffffffffffffffffffff",
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
        "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
        None,
    ),
]


@pytest.mark.parametrize(("entropy", "words", "seed", "xprv"), BIP39)
def test_bip39_vectors(entropy: str, words: str, seed: str, xprv: str | None):
    assert Mnemonic("english").to_mnemonic(bytes.fromhex(entropy)) == words
    assert Mnemonic.to_seed(words, passphrase="TREZOR").hex() == seed
    assert Mnemonic("english").check(words)
    seed_from_phrase(words)  # accepted by the wallet's own check
    if xprv:
        assert hd.xprv(bytes.fromhex(seed)) == xprv


BIP32_1 = "000102030405060708090a0b0c0d0e0f"
BIP32_2 = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"
BIP32 = [
    (
        BIP32_1,
        "m",
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
    ),
    (
        BIP32_1,
        "m/0'",
        "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
    ),
    (
        BIP32_1,
        "m/0'/1",
        "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
    ),
    (
        BIP32_1,
        "m/0'/1/2'",
        "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
    ),
    (
        BIP32_1,
        "m/0'/1/2'/2",
        "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334",
    ),
    (
        BIP32_1,
        "m/0'/1/2'/2/1000000000",
        "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
    ),
    (
        BIP32_2,
        "m",
        "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U",
    ),
    (
        BIP32_2,
        "m/0",
        "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt",
    ),
    (
        BIP32_2,
        "m/0/2147483647'",
        "xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9",
    ),
    (
        BIP32_2,
        "m/0/2147483647'/1",
        "xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef",
    ),
    (
        BIP32_2,
        "m/0/2147483647'/1/2147483646'",
        "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc",
    ),
    (
        BIP32_2,
        "m/0/2147483647'/1/2147483646'/2",
        "xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j",
    ),
]


@pytest.mark.parametrize(("seed", "path", "xprv"), BIP32)
def test_bip32_vectors(seed: str, path: str, xprv: str):
    assert hd.xprv(bytes.fromhex(seed), path) == xprv


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        ("abandon " * 11 + "abandon", "checksum"),  # a valid word in the last place, wrong checksum
        ("abandon " * 11 + "bitcoinz", "not a word"),
        ("abandon " * 10 + "about", "12 words"),
    ],
)
def test_bad_phrases_are_refused_with_the_reason(words: str, problem: str):
    with pytest.raises(PhraseError, match=problem):
        seed_from_phrase(words)


def test_a_mistyped_word_is_found_with_the_words_it_may_have_meant():
    assert hd.unknown_words("abandon DEBRI ability zzz") == [(2, "debri"), (4, "zzz")]
    assert "debris" in hd.close_words("debri")
    assert "ability" in hd.close_words("abilty")
    assert hd.close_words("zzz") == []


def test_wallet_path_is_hardened_bip44_with_our_coin_type():
    assert ACCOUNT_PATH == f"m/44'/{COIN_TYPE}'/0'"
    assert COIN_TYPE not in (0, 1, 2, 60)  # not Bitcoin's, testnet's, Litecoin's or Ether's
    phrase = new_phrase()
    assert len(phrase.split()) == 12
    assert Mnemonic("english").check(phrase)
    seed = seed_from_phrase(phrase)
    account = account_key(seed)
    assert account.Depth().ToInt() == 3
    assert account.Index().ToInt() == 0x80000000  # hardened account 0
    # The same words give the same keys; receive and change chains differ.
    again = account_key(seed_from_phrase(phrase.upper()))
    assert derive_key(again, RECEIVE, 0) == derive_key(account, RECEIVE, 0)
    assert derive_key(account, RECEIVE, 0) != derive_key(account, CHANGE, 0)
    address = address_from_pubkey_hash(derive_key(account, RECEIVE, 0).pubkey_hash, REGTEST.address_version)
    assert address.startswith("r")


def test_the_gap_limit_scan_counts_up_to_the_last_used_key_on_each_chain():
    account = account_key(seed_from_phrase(BIP39[0][1]))
    receiving = {derive_key(account, RECEIVE, i).pubkey_hash for i in (0, 3, 3 + GAP_LIMIT)}  # a gap of 19: found
    change = {derive_key(account, CHANGE, i).pubkey_hash for i in (1, 2 + GAP_LIMIT)}  # a gap of 20: not found
    asked = []

    def is_used(key) -> bool:
        asked.append(key.pubkey_hash)
        return key.pubkey_hash in receiving | change

    assert keys_in_use(account, is_used) == (4 + GAP_LIMIT, 2)
    assert len(asked) == (4 + GAP_LIMIT + GAP_LIMIT) + (2 + GAP_LIMIT)
