"""Create the database and one admin user: ``python -m tests.django_site.setup_db USER PASSWORD``."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_site.settings")

import django

django.setup()  # before the imports below: they need the app registry
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
get_user_model().objects.create_superuser(sys.argv[1], "admin@example.test", sys.argv[2])
