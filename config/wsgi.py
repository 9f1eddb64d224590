from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

# After Django is set up: the guard's decisions are answered in front of it.
from billing.guard_wsgi import GuardWsgi  # noqa: E402

application = GuardWsgi(django_application)

# The URLconf and every view it names are loaded now rather than on the first request;
# then what is loaded, which lives as long as the worker, is set aside from the garbage
# collector, whose full collections would otherwise walk it again and again (tens of
# milliseconds each in a process this size, every request in between waiting).
get_resolver().url_patterns  # noqa: B018 - the import of every view
gc.freeze()
