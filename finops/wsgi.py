from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")

django_application = get_wsgi_application()

# After Django is set up: the guard's decisions are answered in front of it.
from billing.guard_wsgi import GuardWsgi  # noqa: E402

application = GuardWsgi(django_application)
