"""Reading, converting, downloading and caching weights.

``source.load_weights`` is the one entry point (a registered name, a file or a URL -> checked
tensors). Behind it: ``download`` (the cache protocol: pins, validation before trust,
quarantine), ``fetch`` (HTTP via requests, Google Drive via gdown, mirror folders), ``cache``
(layout, listing, clearing), ``trust`` (recorded hashes), ``files`` / ``pdparams`` (readers),
``convert`` (Paddle -> torch and the strict check), ``settings`` (environment variables),
``urls``, ``fileops``, ``errors``. See docs/reliability.md.
"""
