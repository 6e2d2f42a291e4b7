"""Who may sign in to the chat (rag.accounts): salted scrypt accounts from --auth and an auth
file, and the sign-in throttle (issue 34, finding 9)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.accounts import Accounts, AuthError, SignInThrottle, hash_password, load_accounts


def test_passwords_are_stored_salted_and_checked():
    a, b = hash_password("s3cret"), hash_password("s3cret")
    assert a != b and a.startswith("scrypt$16384$8$1$") and "s3cret" not in a
    accounts = Accounts()
    accounts.add("bob", hashed=a)
    accounts.add("alice", password="wonder")
    assert accounts.check("bob", "s3cret") and accounts.check("alice", "wonder")
    assert not accounts.check("bob", "wonder") and not accounts.check("carol", "s3cret")
    assert not accounts.check("bob", "")


def test_accounts_load_from_arguments_and_a_file(tmp_path):
    f = tmp_path / "users"
    f.write_text(f"# who may sign in\n\nbob:{hash_password('s3cret')}\n")
    accounts = load_accounts(["alice:won:der"], str(f))
    assert accounts.check("alice", "won:der") and accounts.check("bob", "s3cret") and len(accounts) == 2
    assert load_accounts(None, None) is None


@pytest.mark.parametrize("auth, text, message", [
    (["alice"], None, "--auth expects USER:PASSWORD"),
    ([":pw"], None, "the user name '' is empty"),
    (["al ice:pw"], None, "has spaces or colons"),
    (["alice:"], None, "the password of 'alice' is empty"),
    (["alice:a", "alice:b"], None, "user 'alice' is given twice"),
    (None, "bob\n", "line 1: expected user:scrypt$"),
    (None, "bob:plaintext\n", "line 1: expected user:scrypt$N$r$p$SALT$HASH (make a line with: "
                              "python app.py --hash-password bob)"),
    (None, "bob:scrypt$3$8$1$00112233445566778899aabbccddeeff$" + "0" * 64 + "\n", "line 1: expected"),
    (None, "# nobody\n", "names no user"),
    (None, b"\xff\xfe\x00bad", "cannot read the auth file"),
])
def test_bad_auth_arguments_are_one_line_errors(tmp_path, auth, text, message):
    path = None
    if text is not None:
        path = tmp_path / "users"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(AuthError) as e:
        load_accounts(auth, str(path) if path else None)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- findings 9: sign-in throttle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_sign_in_backs_off_per_user_and_a_success_forgets_it():
    clock = Clock()
    t = SignInThrottle(first=1.0, cap=8.0, free_per_address=3, clock=clock)
    waits = []
    for _ in range(5):
        assert t.admit("alice", "10.0.0.1") == 0.0
        t.failed("alice", "10.0.0.1")
        waits.append(t.admit("alice", "10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, up to the cap
    assert t.admit("alice", "10.0.0.1") == 0.0
    t.failed("alice", "10.0.0.1")
    assert t.admit("alice", "10.0.0.1") == 8.0
    assert t.admit("alice", "10.0.0.2") == 0.0  # the backoff is this address's, not alice's everywhere
    t.failed("alice", "10.0.0.2")
    clock.now += 8
    assert t.admit("alice", "10.0.0.1") == 0.0
    t.succeeded("alice", "10.0.0.1")
    assert t.admit("alice", "10.0.0.1") == 0.0  # the success forgot alice's failures
    t.succeeded("alice", "10.0.0.1")


def test_sign_in_backs_off_per_address_after_a_few_failures():
    clock = Clock()
    t = SignInThrottle(first=1.0, cap=60.0, free_per_address=3, clock=clock)
    for user in ("u1", "u2", "u3"):  # other users, one address: free until the fourth
        assert t.admit(user, "10.0.0.9") == 0.0
        t.failed(user, "10.0.0.9")
    assert t.admit("u4", "10.0.0.9") == 0.0
    t.failed("u4", "10.0.0.9")
    assert t.admit("u5", "10.0.0.9") == 1.0
    assert t.admit("u5", "10.0.0.8") == 0.0  # another address is not held up
    t.failed("u5", "10.0.0.8")
    clock.now += 1000  # forgotten after a quiet spell
    assert t.admit("u6", "10.0.0.9") == 0.0


def test_attempts_sent_at_once_are_one_check():
    t = SignInThrottle()
    barrier = threading.Barrier(50)

    def attempt(_):
        barrier.wait()
        return t.admit("alice", "10.0.0.1")

    with ThreadPoolExecutor(50) as pool:
        waits = list(pool.map(attempt, range(50)))
    assert waits.count(0.0) == 1 and all(w > 0 for w in waits if w)


def test_failures_from_another_address_do_not_lock_the_user_out():
    """A guesser at 10.0.0.9 trying "alice" whenever allowed, for a day: alice at 10.0.0.1 still
    signs in at once, and the guesser is held at the cap (about 12 guesses an hour)."""
    clock = Clock()
    t = SignInThrottle(clock=clock)
    guesses = 0
    for _ in range(24 * 60):  # it asks every minute
        if t.admit("alice", "10.0.0.9") == 0.0:
            guesses += 1
            t.failed("alice", "10.0.0.9")
        clock.now += 60
    assert guesses < 24 * 12 + 15
    if t.admit("alice", "10.0.0.9") == 0.0:  # (its wait may just be over)
        t.failed("alice", "10.0.0.9")
    assert 0 < t.admit("alice", "10.0.0.9") <= 300  # the guesser waits
    assert t.admit("alice", "10.0.0.1") == 0.0  # her own address: no wait
    t.succeeded("alice", "10.0.0.1")
    assert t.admit("alice", "10.0.0.1") == 0.0
    t.succeeded("alice", "10.0.0.1")


def test_a_guesser_spread_over_many_addresses_is_still_slowed():
    clock = Clock()
    t = SignInThrottle(user_limit=50, user_window=900.0, user_wait=30.0, clock=clock)
    for i in range(50):  # 50 failures for alice from 50 addresses, one a second
        assert t.admit("alice", f"10.1.0.{i}") == 0.0
        t.failed("alice", f"10.1.0.{i}")
        clock.now += 1
    assert t.admit("alice", "10.2.0.1") == 29.0  # any address now waits a short while
    assert t.admit("bob", "10.2.0.1") == 0.0  # other users are not held up
    t.succeeded("bob", "10.2.0.1")
    clock.now += 29
    assert t.admit("alice", "10.2.0.1") == 0.0  # then one attempt per wait, never a lockout
    assert t.admit("alice", "10.2.0.2") == 30.0
    t.failed("alice", "10.2.0.1")
    clock.now += 900  # the window passes: the limit is back to free
    assert t.admit("alice", "10.2.0.3") == 0.0
    t.succeeded("alice", "10.2.0.3")
