"""How long the broker may hold a fetch of the agent's consumer that finds nothing new.

Faust hard-codes 1,500 ms. With it the agent received a steady 10,000 ev/s stream in bursts
every 1.5 s, and event -> snapshot latency followed (p50 ~1.9 s in `make bench`); at 20 ms the
envelopes arrive about as they are written. An idle consumer then sends 50 small fetches a
second, which costs nothing measurable. The ingest's consumer keeps aiokafka's 500 ms: measured,
a short wait there cost the backlog ~10 % and gave no latency back.
"""

from __future__ import annotations

FETCH_MAX_WAIT_MS = 20
