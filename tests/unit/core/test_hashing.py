from __future__ import annotations

from relatch.core.hashing import Argon2Params, Hasher

FAST = Argon2Params(memory_kib=1024, time_cost=1, parallelism=1)


def test_hash_is_argon2id_and_verifies() -> None:
    h = Hasher(FAST)
    stored = h.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert h.verify(stored, "correct horse battery")
    assert not h.verify(stored, "wrong password!")


def test_missing_hash_runs_dummy_verify_and_fails() -> None:
    h = Hasher(FAST)
    assert not h.verify(None, "anything at all")


def test_garbage_hash_is_a_mismatch_not_a_crash() -> None:
    assert not Hasher(FAST).verify("not-a-hash", "anything at all")


def test_needs_rehash_when_parameters_rise() -> None:
    old = Hasher(FAST).hash("correct horse battery")
    stronger = Hasher(Argon2Params(memory_kib=2048, time_cost=2, parallelism=1))
    assert stronger.needs_rehash(old)
    assert not Hasher(FAST).needs_rehash(old)
