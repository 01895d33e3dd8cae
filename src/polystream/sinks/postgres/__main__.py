"""``python -m polystream.sinks.postgres upgrade|current|check|sql``: the accounts schema
migrations from a shell, with the same settings as the workers (``POLYSTREAM_POSTGRES__*``)."""

from polystream.sinks.postgres.migrate import main

raise SystemExit(main())
