"""Front doors over the llm2loss library that are not the library itself.

`app.serve` is the warm local query service (`llm2loss serve`): a FastAPI app that keeps each
audit's encoder and diagnosers loaded and answers estimate / compare / discover as JSON, with a
small web page in `app/static/`. `app.client` is its client, used by `llm2loss query --server`.
Nothing in `llm2loss` imports this package.
"""
