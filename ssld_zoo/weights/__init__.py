"""Reading, converting, downloading and caching weights."""
