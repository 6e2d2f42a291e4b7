"""Who may sign in to the chat: accounts with salted scrypt hashes (`--auth`, `--auth-file`),
checked in constant time, and a throttle on sign-in attempts per user name and address, per
address, and (far looser) per user name from all addresses.

The web adapter calls `Accounts.sign_in` from Gradio's auth callback and turns a
`SignInThrottled` into HTTP 429; `python app.py --hash-password USER` prints a line for an
auth file with `hash_password`.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)


class AuthError(ValueError):
    """A bad --auth or --auth-file argument (one line)."""


class SignInThrottled(Exception):
    """Too many sign-in attempts for this user or address: `seconds` to wait; no password was checked."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many sign-in attempts; wait {seconds} s and try again")
        self.seconds = seconds


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1  # about 50 ms and 16 MiB per check
_HASH = re.compile(r"scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{32,})\$([0-9a-f]{64})")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=256 * n * r * p + (1 << 20))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password`: `scrypt$N$r$p$<salt hex>$<hash hex>`."""
    salt = os.urandom(16) if salt is None else salt
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _parse_hash(stored: str) -> tuple[bytes, int, int, int, bytes] | None:
    m = _HASH.fullmatch(stored)
    if not m:
        return None
    n, r, p = (int(m.group(i)) for i in (1, 2, 3))
    if n < 2 or n & (n - 1) or n > 1 << 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        return None
    return bytes.fromhex(m.group(4)), n, r, p, bytes.fromhex(m.group(5))


@dataclass
class _Attempts:
    failures: int = 0
    pending: int = 0  # attempts being checked now: counted as failures until they end
    next_at: float = 0.0
    times: deque | None = None  # the per-user record alone: times of its latest failures


class SignInThrottle:
    """Sign-in attempts per (user name, client address), per address and per user, with backoff.

    One shared record per key (failures, attempts in flight, the time the next attempt is
    allowed), under a lock: an attempt is admitted only when all its records allow one now, and
    an admitted attempt counts as a failure until it ends, so fifty attempts sent at once are
    one check, not fifty (a delay per request would let them all through). A refused attempt
    checks no password and is not counted.

    - (user, address): after the n-th failure the next attempt waits `first` x 2^(n-1) seconds
      (up to `cap`). Keyed by the address too, so a guesser elsewhere never locks the user (or
      the operator) out of their own address.
    - address: the same backoff after `free_per_address` failures (people behind one router
      mistype too), whichever users they tried.
    - user, from every address: once `user_limit` failures fall within `user_window` seconds,
      each further attempt for that user waits `user_wait` seconds, so a guesser spread over
      many addresses is still slowed, while the user waits at most that long.

    A success forgets that (user, address) record, and the address's failures by as many
    (they were this user's typing, as the success shows); a record with nothing to wait for is
    forgotten after `forget_after` seconds."""

    def __init__(self, *, first: float = 0.5, cap: float = 300.0, free_per_address: int = 10,
                 user_limit: int = 50, user_window: float = 900.0, user_wait: float = 30.0,
                 forget_after: float = 900.0, max_records: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.cap, self.free = first, cap, free_per_address
        self.user_limit, self.user_window, self.user_wait = user_limit, user_window, user_wait
        self.forget_after, self.max_records = forget_after, max_records
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, ...], _Attempts] = {}

    def _delay(self, n: int, free: int) -> float:
        n -= free
        return 0.0 if n <= 0 else min(self.cap, self.first * 2 ** min(n - 1, 60))

    def _keys(self, user: str, address: str) -> list[tuple[tuple[str, ...], int]]:
        user, address = str(user)[:200], str(address)[:100]
        return [(("pair", user, address), 0), (("address", address), self.free)]

    def _user(self, user: str, now: float) -> _Attempts:
        """The user's record across addresses, its failures older than the window dropped."""
        r = self._records.setdefault(("user", str(user)[:200]), _Attempts())
        if r.times is None:
            r.times = deque(maxlen=self.user_limit + 1)
        while r.times and r.times[0] < now - self.user_window:
            r.times.popleft()
        return r

    def _forget_old(self, now: float) -> None:
        def stale(r: _Attempts) -> bool:
            return not r.pending and now > r.next_at + self.forget_after and \
                not (r.times and now - r.times[-1] <= self.user_window)
        for key in [k for k, r in self._records.items() if stale(r)]:
            del self._records[key]
        if len(self._records) > self.max_records:  # a flood of names: the idle ones go first
            idle = sorted((r.next_at, k) for k, r in self._records.items() if not r.pending)
            for _, key in idle[:len(self._records) - self.max_records]:
                del self._records[key]

    def admit(self, user: str, address: str) -> float:
        """0.0 when this attempt may check its password now (it then counts until `failed` or
        `succeeded`); else the seconds to wait, and nothing is counted."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            keys = self._keys(user, address)
            u = self._user(user, now)
            wait = max([self._records[k].next_at - now for k, _ in keys if k in self._records] + [u.next_at - now])
            if wait > 0:
                if not u.pending and not u.times:
                    del self._records[("user", str(user)[:200])]
                return wait
            for key, free in keys:
                r = self._records.setdefault(key, _Attempts())
                r.pending += 1
                r.next_at = max(r.next_at, now + self._delay(r.failures + r.pending, free))
            u.pending += 1
            if len(u.times) + u.pending > self.user_limit:
                u.next_at = max(u.next_at, now + self.user_wait)
            return 0.0

    def failed(self, user: str, address: str) -> None:
        with self._lock:
            now = self._clock()
            for key, free in self._keys(user, address):
                r = self._records.setdefault(key, _Attempts())
                r.pending = max(0, r.pending - 1)
                r.failures += 1
                r.next_at = max(r.next_at, now + self._delay(r.failures + r.pending, free))
            u = self._user(user, now)
            u.pending = max(0, u.pending - 1)
            u.times.append(now)
            if len(u.times) >= self.user_limit:
                u.next_at = max(u.next_at, now + self.user_wait)

    def succeeded(self, user: str, address: str) -> None:
        """The (user, address) record is forgotten, and the address's failures by as many
        (they were this user's typing, as the success shows; failures against other users
        stay). The user's failures from other addresses stay counted for their window."""
        with self._lock:
            now = self._clock()
            (pair_key, _), (address_key, free) = self._keys(user, address)
            mine = self._records.pop(pair_key, _Attempts()).failures
            r = self._records.get(address_key)
            if r is not None:
                r.pending = max(0, r.pending - 1)
                r.failures = max(0, r.failures - mine)
                r.next_at = min(r.next_at, now + self._delay(r.failures + r.pending, free))
                if not r.pending and not r.failures:
                    del self._records[address_key]
            u = self._user(user, now)
            u.pending = max(0, u.pending - 1)


class Accounts:
    """Who may sign in: users with a password given on the command line (`--auth`) or a salted
    scrypt hash from a file (`--auth-file`). Checks take the same time whether or not the user
    exists, run off the server's event loop, and a failed one answers a second later. Attempts
    are throttled per user name and per client address (`SignInThrottle`): a throttled one is
    refused (`SignInThrottled`, with how long to wait) without its password being checked."""

    FAIL_DELAY = 1.0

    def __init__(self, *, throttle: SignInThrottle | None = None) -> None:
        self._users: dict[str, tuple[bytes, int, int, int, bytes]] = {}
        self._dummy = _parse_hash(hash_password(os.urandom(8).hex()))
        self._gate = threading.BoundedSemaphore(2)  # a flood of logins cannot take every core
        self.throttle = throttle or SignInThrottle()
        self.checked = 0  # passwords checked (a throttled attempt checks none)

    def __len__(self) -> int:
        return len(self._users)

    def names(self) -> list[str]:
        """The users, in the order they were given (--auth first, then the auth file's lines)."""
        return list(self._users)

    def add(self, user: str, *, password: str | None = None, hashed: str | None = None,
            where: str = "--auth") -> None:
        if not user or user != user.strip() or any(c.isspace() or c == ":" for c in user):
            raise AuthError(f"{where}: the user name {user!r} is empty or has spaces or colons")
        if user in self._users:
            raise AuthError(f"{where}: user {user!r} is given twice")
        if password is not None:
            if not password:
                raise AuthError(f"{where}: the password of {user!r} is empty")
            hashed = hash_password(password)
        parsed = _parse_hash(hashed or "")
        if parsed is None:
            raise AuthError(f"{where}: expected user:scrypt$N$r$p$SALT$HASH "
                            f"(make a line with: python app.py --hash-password {user})")
        self._users[user] = parsed

    def check(self, user: str, password: str) -> bool:
        record = self._users.get(user)
        salt, n, r, p, digest = record or self._dummy
        with self._gate:
            self.checked += 1
            ok = hmac.compare_digest(_scrypt(password or "", salt, n, r, p), digest)
        return ok and record is not None

    async def sign_in(self, user: str, password: str, address: str) -> bool:
        """Whether `user` signs in with `password` from client `address` (the check runs in a
        worker thread); SignInThrottled when the throttle refuses the attempt."""
        wait = self.throttle.admit(user, address)
        if wait > 0:
            seconds = math.ceil(wait)
            log.warning("refused a sign-in for %r from %s: too many attempts, %d s to wait", user[:80], address, seconds)
            raise SignInThrottled(seconds)
        try:
            ok = await asyncio.to_thread(self.check, user, password)
        except BaseException:
            self.throttle.failed(user, address)
            raise
        if ok:
            self.throttle.succeeded(user, address)
            return True
        self.throttle.failed(user, address)
        log.warning("failed sign-in for %r from %s", user[:80], address)
        await asyncio.sleep(self.FAIL_DELAY)
        return False


def load_accounts(auth: list[str] | None, auth_file: str | None) -> Accounts | None:
    """The accounts named by --auth USER:PASSWORD (repeatable) and --auth-file PATH (lines of
    USER:HASH; blank lines and # comments allowed); None when neither is given."""
    if not auth and not auth_file:
        return None
    accounts = Accounts()
    for item in auth or []:
        user, colon, password = item.partition(":")
        if not colon:
            raise AuthError("--auth expects USER:PASSWORD")
        accounts.add(user, password=password)
    if auth_file:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or type(e).__name__
            raise AuthError(f"cannot read the auth file {auth_file} ({why})") from None
        for no, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, colon, hashed = line.partition(":")
            where = f"{auth_file} line {no}"
            if not colon:
                raise AuthError(f"{where}: expected user:scrypt$N$r$p$SALT$HASH "
                                f"(make a line with: python app.py --hash-password USER)")
            accounts.add(user, hashed=hashed, where=where)
        if not len(accounts):
            raise AuthError(f"the auth file {auth_file} names no user")
    return accounts
