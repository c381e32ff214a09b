"""The HTTP process: the FastAPI app, its routes, AG-UI and the dashboard."""
