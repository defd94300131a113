import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_site.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
