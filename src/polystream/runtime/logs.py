"""Log levels of the client libraries under the workers.

opensearch-py logs one INFO line per HTTP request (``POST /_bulk [status:200 request:0.1s]``):
at thousands of events per second that is a line per batch per process, costing CPU in the
hot loop and burying the lines that matter. Their warnings and errors still come through.
"""

from __future__ import annotations

import logging

#: Loggers that speak per request at INFO.
CHATTY_CLIENT_LOGGERS = ("opensearch", "opensearchpy.trace", "elastic_transport", "urllib3",
                         "kafka", "pymongo")


def quiet_client_logs(level: int = logging.WARNING) -> None:
    for name in CHATTY_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(level)
