"""The web UI: server-rendered pages (Jinja2, Vietnamese first, English catalogue via
Babel) over the JSON API, with one small plain-JavaScript file; nothing is fetched
from outside the controller."""
