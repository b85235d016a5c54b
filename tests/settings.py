"""The suite's settings: production settings plus throwaway secrets, unless the environment has its own.

faceportal/settings.py requires SECRET_KEY and FACEPORTAL_API_KEY_PEPPER whenever DATABASE_URL names
a server database (as `make test` does). Set here in os.environ, so the daphne and manage.py
subprocesses some tests start inherit the same values.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-" + "0" * 16)
os.environ.setdefault("FACEPORTAL_API_KEY_PEPPER", "test-only-api-key-pepper")

from faceportal.settings import *  # noqa: E402,F403
