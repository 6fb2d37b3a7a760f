"""Change streams: the records a change to a table makes, and the `@app.on_change` consumers that read them."""
