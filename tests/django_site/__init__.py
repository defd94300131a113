"""A minimal Django project with the admin, put behind gate by tests/test_real_apps.py (run as its own
uvicorn process: Django's settings are process-wide)."""
