"""ozkernels in Jupyter Server: the extension app, its handlers and the background sync."""
