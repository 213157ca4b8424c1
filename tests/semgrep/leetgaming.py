# Examples for .semgrep/leetgaming.yml, checked by `semgrep --test` (scripts/test): each
# "ruleid" line must be found by that rule, each "ok" line must not. Never imported.
# ruff: noqa
import random
import secrets

import jwt


async def queries(conn, name, ACCOUNT_COLUMNS, among):
    # ruleid: sql-built-from-strings
    await conn.execute(f"SELECT * FROM players WHERE name = '{name}'")
    # ruleid: sql-built-from-strings
    await conn.fetch("SELECT * FROM players WHERE name = '%s'" % name)
    # ruleid: sql-built-from-strings
    await conn.fetchone("SELECT * FROM players WHERE name = '{}'".format(name))
    # ok: sql-built-from-strings
    await conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id {among}", name)
    # ok: sql-built-from-strings
    await conn.execute("SELECT * FROM players WHERE name = ?", name)


def new_session_token():
    # ruleid: randomness-for-secrets
    return str(random.getrandbits(128))


def reset_code():
    # ok: randomness-for-secrets
    return secrets.token_urlsafe(16)


def shuffle_seeds(players):
    # ok: randomness-for-secrets
    random.shuffle(players)


def decode(token, key):
    # ruleid: jwt-decode-without-algorithms
    jwt.decode(token, key)
    # ruleid: jwt-decode-without-verification
    jwt.decode(token, key, algorithms=["HS256"], options={"verify_signature": False})
    # ok: jwt-decode-without-verification, jwt-decode-without-algorithms
    return jwt.decode(token, key, algorithms=["HS256"], audience="a", issuer="i")
