"""``make demo`` (``engagement demo``): :mod:`.run` starts the embedded broker, a worker and a
simulated population; :mod:`.view` draws the live view; :mod:`.check` compares the gauges with
the changelog; :mod:`.page`, :mod:`.charts` and :mod:`.chromium` write the report page."""
