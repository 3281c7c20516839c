"""The HTTP service: the Flask app, its auth, the server that runs it."""
