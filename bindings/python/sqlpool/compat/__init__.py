"""Drop-in modules for code written against other Python database libraries:

- :mod:`sqlpool.compat.pysqlx_engine` — PySQLXEngine's engine, pools and ``LOG_CONFIG``
- :mod:`sqlpool.compat.psqlpy` — psqlpy's ``ConnectionPool`` / ``PSQLPool``

Change the import line (``from pysqlx_engine import ...`` ->
``from sqlpool.compat.pysqlx_engine import ...``); the rest runs on sqlpool.
"""
