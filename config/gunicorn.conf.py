"""gunicorn's configuration: `gunicorn -c config/gunicorn.conf.py` (what `make run` starts).

Every value comes from the environment, with development defaults: PORT (8000) on HOST
(127.0.0.1; GUNICORN_BIND overrides both), WEB_CONCURRENCY worker processes (2) of
GUNICORN_THREADS threads (4), the access log in VAR_DIR/log/access.log (GUNICORN_ACCESS_LOG;
"-" for stdout, as a container wants), errors on stderr. Static files are served by
whitenoise inside the app, so no separate static server is needed.
"""

import os
from pathlib import Path

_var = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var")

wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or str(_var / "log" / "access.log")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Behind a proxy: the addresses whose X-Forwarded-* headers are trusted.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

if accesslog != "-":
    Path(accesslog).parent.mkdir(parents=True, exist_ok=True)
