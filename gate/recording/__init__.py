"""What gate writes down about the pages it served and the choices visitors made.

Everything here records and reports; nothing here decides what a page may load. The request path hands
its outcomes to these modules and never waits on them for longer than a bounded queue allows.

- ``ledger``: per-page counts (tags served, stripped, fired), batched and flushed to the store.
- ``beacon``: POST /_gate/beacon, the hosts a page view actually contacted, checked against a page token.
- ``recorder``, ``journal``, ``receipts``: consent receipts, fsynced to a journal before the visitor's
  cookie is set, then written to the store; GET /_gate/receipts/<id>.
- ``store``: SQLite by default, PostgreSQL by URL; migrations and timeouts.
- ``report``, ``report_page``: GET /_gate/report (.json, .csv), the page marketing reads.
- ``metrics``, ``metrics_setup``: GET /_gate/metrics in Prometheus' text format.
- ``access``: the report token every reader above needs.
"""
