"""Password hashing for the test process: Django's PBKDF2 with 1,000 iterations instead of
1,000,000. At the real count every UserFactory user and form login cost 0.25 CPU seconds, some
700 worker-seconds of each suite pass. The algorithm's name and hash format are the real ones,
so processes the tests start with production settings verify these hashes (the iteration
count is stored in each) and upgrade them at a login, as they would an old hash."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
