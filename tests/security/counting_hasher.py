"""A password hasher that counts how often it runs (PASSWORD_HASHERS in the staff-auth tests).

Counting proves a refused attempt never reached the (deliberately slow) hash, without timing.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class CountingHasher(PBKDF2PasswordHasher):
    algorithm = "counting_pbkdf2"
    iterations = 1000  # the count matters here, not the cost
    calls = 0

    def encode(self, password, salt, iterations=None):
        type(self).calls += 1
        return super().encode(password, salt, iterations)
