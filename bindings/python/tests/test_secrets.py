"""Issue 17 §1: no password in Python's str/repr of exceptions, pools or
stats, whatever characters it holds (the Rust corpus test covers the C
side in full)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

import sqlpool

HEAD, TAIL = "QmP7ab", "ZxW9cd"
PASSWORDS = [f"{HEAD}{c}{TAIL}" for c in ["/", "?", "#", "@", ":", "%", "+", "=", "&", "'", '"', " "]]
ERRORS = ["aplication_name=x", "sslmode=bogus", "max_sise=3", "busy_timeout=5", "application_name=p%zz"]


def clean(text: str) -> bool:
    return HEAD not in text and TAIL not in text


@pytest.mark.parametrize("pw", PASSWORDS)
def test_password_not_in_exceptions(pw):
    enc = quote(pw, safe="")
    uris = [f"postgresql://app:{enc}@127.0.0.1:1/db?{e}" for e in ERRORS]
    uris += [f"postgresql://app@127.0.0.1:1/db?pass%77ord={enc}&{e}" for e in ERRORS]
    uris.append(f"postgresql://app:{enc}@127.0.0.1:1/db?connect_timeout=1s")
    for uri in uris:
        with pytest.raises(sqlpool.Error) as info:
            sqlpool.Pool(uri)
        e = info.value
        for text in (str(e), repr(e), getattr(e, "json", ""), str(getattr(e, "details", ""))):
            assert clean(text), text


def test_password_not_in_pool_or_stats_repr(tmp_path):
    pool = sqlpool.Pool(f"sqlite:{tmp_path}/x.db")
    try:
        assert clean(repr(pool)) and clean(repr(pool.stats()))
    finally:
        pool.close()
