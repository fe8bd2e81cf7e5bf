"""Run outputs: the progress line, the end-of-run summary, the report, the trained prompt format, the merged model."""
