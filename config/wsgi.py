from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# What is loaded now (the URLconf and every view) lives as long as the worker: set it
# aside so the garbage collector's full collections do not walk it during requests.
get_resolver().url_patterns  # noqa: B018 - imports every view
gc.freeze()
