"""Benchmarks: ``python -m fruitseg.bench [classifier|photo|segmenter|app|load|all] [--json FILE] [--markdown FILE] [--quick]``.

classifier  images/s at batch 1 and 64, p50/p95 latency at batch 1, of the shipped path
            (``Classifier.logits``: the fastest of int8, Winograd float32, float32 and
            bfloat16 where native, timed once per machine; ``Classifier.inference_path``
            says which and why) and of each other path, against two baselines: tuned
            float32 (BN folded, channels-last, inference_mode) and the plain way (eager
            model, NCHW float32, default grad mode); the top-1 of shipped and plain on
            held-out frames (or agreement only on the bundled fixtures).
photo       the photo classifier at batch 1 against the same weights unfolded and run the
            plain way, and a one-fruit 1024x768 photo through segment-then-classify against the photo
            classifier on the whole photo alone.
segmenter   latency of ``Segmenter.predict`` at several sizes, and IoU against the exact
            masks of composite scenes, next to GrabCut and Otsu baselines on the same scenes.
app         the real app: round trip of each endpoint through ``gradio_client`` against the
            direct Python call, cold start of ``python app.py`` to its first answer, peak RSS.
load        concurrent clients on /classify and /lmd against an ``app.py`` subprocess:
            errors, latency, throughput and RSS growth of the server.

Every speed claim is a ratio against a baseline measured in the same process and run,
in interleaved rounds (A B B A ...) so that background load hits both sides alike.
Absolute times depend on the machine and its load; the JSON records both (``machine``).
The markdown report is printed to stdout. A model that cannot be loaded stops the run with
one line on stderr and exit status 2: nothing is measured on a stand-in.

One module per part (`classifier`, `photo`, `segmenter`, `app`, `load`), with what they share:
`timing` (interleaved rounds, summaries, ratios), `machine` (machine info, RSS), `inputs`
(held-out frames, scenes, fixtures), `baselines` (GrabCut, Otsu), `server` (``app.py`` in a
subprocess) and `report` (markdown). The command line is `fruitseg.bench.__main__`.
"""
